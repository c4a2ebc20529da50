package audit

import (
	"context"
	"path/filepath"

	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/audit/internal/store"
)

// Module is the audit target: the hash-chained log every other target
// delivers its events to.
func Module() module.Module {
	return module.Module{Name: Target, Init: initModule, Migrations: &store.Migrations}
}

func initModule(ctx context.Context, p module.Process) error {
	st, err := OpenStore(ctx, p.DatabaseURL(Target))
	if err != nil {
		return err
	}
	p.Server().AddCleanup("audit store", func(context.Context) error { return st.Close() })
	set := p.Settings()
	key, err := LoadOrCreateKey(set.AuditSigningKey.Reveal(), filepath.Join(set.DataDir, "audit-signing.key"))
	if err != nil {
		return err
	}
	svc := New(st, key, p.PageTokens(), p.Log()).UseAuthorizer(p.Authorizer())
	svc.Register(p.Server())
	if !p.Runs("orgs") {
		// Without the orgs outbox in this process, refusals go straight to
		// the log.
		agg := outbox.NewDeniedAggregator(svc.RecordEvent, set.DeniedWindow, p.Log().Named("denied"))
		p.Background(agg.Run)
		p.Server().SetDeniedRecorder(svc.DeniedRecorder(agg))
	}
	interval := set.CheckpointInterval
	if interval <= 0 {
		interval = CheckpointInterval
	}
	p.Background(func(ctx context.Context) { svc.RunCheckpointer(ctx, interval) })
	return nil
}
