package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/services/deploy/internal/instance"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
	"github.com/pyleeai/pylee/services/deploy/internal/store"
)

// Module is the deploy target: it runs what each registry pins.
func Module() module.Module {
	return module.Module{Name: Target, Needs: []string{"audit", "orgs", "registry", "secrets"}, Init: initModule, Migrations: &store.Migrations}
}

// MigrateStore applies the pending migrations to the deploy database at
// url (tests prepare template databases with it).
func MigrateStore(ctx context.Context, url string) error { return store.Migrate(ctx, url) }

func initModule(ctx context.Context, p module.Process) error {
	st, err := store.Open(ctx, p.DatabaseURL(Target))
	if err != nil {
		return err
	}
	relay, err := p.AuditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	st.AfterCommit(relay.Notify)
	orgsConn, err := p.Conn("orgs")
	if err != nil {
		return fmt.Errorf("deploy needs the orgs service: %w", err)
	}
	regConn, err := p.Conn("registry")
	if err != nil {
		return fmt.Errorf("deploy needs the registry service: %w", err)
	}
	secConn, err := p.Conn("secrets")
	if err != nil {
		return fmt.Errorf("deploy needs the secrets service: %w", err)
	}
	token := p.ServiceToken()
	set := p.Settings().Deploy
	c := NewController(
		grpcRegistry{orgs: orgsv1.NewOrgsServiceClient(orgsConn), reg: registryv1.NewRegistryServiceClient(regConn), token: token},
		grpcSecrets{client: secretsv1.NewSecretsServiceClient(secConn), token: token},
		runtime.Local(set.AllowCommand, set.DockerHost, ownerID(p.DatabaseURL(Target))), st,
		Options{WarmFor: set.WarmFor, UserIdle: set.UserIdle, Discover: set.Discover,
			Instance: instance.Options{HealthInterval: set.HealthInterval, SessionIdle: p.Settings().MCPSessionIdle}}, p.Log())
	c.GuardInstances(GatewayOnly(p.Authenticators()))
	if err := c.RegisterMetrics(p.Server().Registry()); err != nil {
		return err
	}
	p.Background(func(ctx context.Context) {
		if err := c.Start(ctx); err != nil {
			p.Log().Sugar().Errorw("the deploy controller did not start", "error", err)
			return
		}
		<-ctx.Done()
	})
	// Instances stop before the store closes.
	p.Server().AddCleanup("deploy store", func(context.Context) error { return st.Close() })
	p.Server().AddCleanup("deploy instances", func(context.Context) error { c.Stop(); return nil })
	NewService(c, p.PageTokens()).Register(p.Server())
	return nil
}

// GatewayOnly admits requests to instance addresses that carry the
// gateway's service credential as a bearer token.
func GatewayOnly(a auth.Authenticator) func(*http.Request) error {
	return func(r *http.Request) error {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return fmt.Errorf("a bearer credential is required")
		}
		p, err := a.Authenticate(r.Context(), config.NewSecret(tok))
		if err != nil || p.Kind != auth.KindService || !auth.MayCall(p, []string{"gateway"}) {
			return fmt.Errorf("only the gateway may call an instance")
		}
		return nil
	}
}

// ownerID names this deploy target's containers: stable across restarts
// (it derives from the target's database), distinct between targets.
func ownerID(databaseURL string) string {
	sum := sha256.Sum256([]byte(databaseURL))
	return hex.EncodeToString(sum[:8])
}
