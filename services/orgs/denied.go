package orgs

import (
	"context"
	"strings"
	"unicode"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// DeniedRecorder records calls refused by authentication or authorization
// as `denied` events in the orgs outbox, in the log of the organization the
// call named (`-` when it named none). The presented credential is never
// part of the event.
func DeniedRecorder(st store.Store, written func(), log *zap.Logger) server.DeniedRecorder {
	return func(ctx context.Context, d server.Denied) {
		org := auditlog.NoOrg
		if strings.HasPrefix(d.Resource, "orgs/") {
			if id, _, _ := strings.Cut(strings.TrimPrefix(d.Resource, "orgs/"), "/"); id != "" && id != "-" {
				org = id
			}
		}
		ev := outbox.NewEvent(ctx, org, ActionOf(d.Method), d.Resource)
		ev.Outcome = auditlog.OutcomeDenied
		ev.Metadata = map[string]string{"method": d.Method, "permission": d.Permission, "reason": d.Reason}
		if err := st.RecordEvent(ctx, ev); err != nil {
			log.Error("record denied event", zap.String("request_id", ev.GetRequestId()), zap.Error(err))
			return
		}
		if written != nil {
			written()
		}
	}
}

// ActionOf derives `<service>.<resource>.<verb>` from a full gRPC method
// name: `/pylee.orgs.v1.OrgsService/ListOrganizations` is
// `orgs.organization.list`.
func ActionOf(fullMethod string) string {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	parts := strings.Split(svc, ".")
	service := "unknown"
	if len(parts) >= 2 {
		service = parts[1]
	}
	verbEnd := 1
	for verbEnd < len(method) && !unicode.IsUpper(rune(method[verbEnd])) {
		verbEnd++
	}
	verb, resource := strings.ToLower(method[:verbEnd]), method[verbEnd:]
	if resource == "" {
		resource = "call"
	}
	resource = strings.TrimSuffix(strings.ToLower(resource[:1])+resource[1:], "s")
	return service + "." + resource + "." + verb
}
