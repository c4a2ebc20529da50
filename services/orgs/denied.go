package orgs

import (
	"context"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// DeniedRecorder records calls refused by authentication or authorization
// as `denied` events in the orgs outbox.
func DeniedRecorder(st store.Store, written func(), log *zap.Logger) server.DeniedRecorder {
	return func(ctx context.Context, d server.Denied) {
		ev := outbox.DeniedEvent(ctx, d)
		if err := st.RecordEvent(ctx, ev); err != nil {
			log.Error("record denied event", zap.String("request_id", ev.GetRequestId()), zap.Error(err))
			return
		}
		if written != nil {
			written()
		}
	}
}
