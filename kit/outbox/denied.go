package outbox

import (
	"context"
	"strings"
	"unicode"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/server"
)

// DeniedEvent is the audit event of a call refused by authentication or
// authorization: in the log of the organization the call named (`-` when
// it named none), outcome `denied`. The presented credential is never part
// of it.
func DeniedEvent(ctx context.Context, d server.Denied) *auditv1.Event {
	org := auditlog.NoOrg
	if strings.HasPrefix(d.Resource, "orgs/") {
		if id, _, _ := strings.Cut(strings.TrimPrefix(d.Resource, "orgs/"), "/"); id != "" && id != "-" {
			org = id
		}
	}
	ev := NewEvent(ctx, org, ActionOf(d.Method), d.Resource)
	ev.Outcome = auditlog.OutcomeDenied
	ev.Metadata = map[string]string{"method": d.Method, "permission": d.Permission, "reason": d.Reason}
	return ev
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
	if method == "" {
		return service + ".call.unknown"
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
