package orgs

import (
	"context"
	"errors"

	"go.uber.org/zap"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// DeniedRecorder records calls refused by authentication or authorization
// as `denied` events in the orgs outbox. Refusals of unauthenticated callers
// go to agg, which counts them into the installation's log; a refusal that
// names an organization that does not exist goes to the installation's log
// too, so no chain is started for an id nobody holds (and a later
// organization of that id inherits nothing).
func DeniedRecorder(st store.Store, agg *outbox.DeniedAggregator, log *zap.Logger) server.DeniedRecorder {
	return func(ctx context.Context, d server.Denied) {
		if agg.Add(ctx, d) {
			return
		}
		ev := outbox.DeniedEvent(ctx, d)
		if ev.Organization != auditlog.NoOrg {
			if _, err := st.GetOrganization(ctx, ev.Organization); errors.Is(err, errs.ErrNotFound) {
				ev.Organization = auditlog.NoOrg
			}
		}
		if err := st.RecordEvent(ctx, ev); err != nil {
			log.Error("record denied event", zap.String("request_id", ev.GetRequestId()), zap.Error(err))
			return
		}
	}
}

// RecordEvent returns a function that writes ev to the orgs outbox (whose
// commit wakes the relay), for events that go with no change (aggregated
// refusals).
func RecordEvent(st store.Store) func(context.Context, *auditv1.Event) error { return st.RecordEvent }
