package outbox_test

import (
	"context"
	"testing"

	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
)

func TestActionOf(t *testing.T) {
	for in, want := range map[string]string{
		"/pylee.orgs.v1.OrgsService/ListOrganizations": "orgs.organization.list",
		"/pylee.orgs.v1.OrgsService/GetOrganization":   "orgs.organization.get",
		"/pylee.audit.v1.AuditService/AppendEvents":    "audit.event.append",
		"/pylee.audit.v1.AuditService/GetPublicKey":    "audit.publicKey.get",
		"/pylee.orgs.v1.OrgsService/VerifyToken":       "orgs.token.verify",
		"/pylee.audit.v1.AuditService/":                "audit.call.unknown",
		"registry.official.read":                       "registry.official.read", // a plain HTTP route
	} {
		if got := outbox.ActionOf(in); got != want {
			t.Errorf("ActionOf(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDeniedEvent(t *testing.T) {
	ev := outbox.DeniedEvent(context.Background(), server.Denied{Method: "/pylee.orgs.v1.OrgsService/GetOrganization",
		Permission: "orgs.get", Resource: "orgs/acme/x", Reason: "the token is not valid: unauthenticated"})
	if ev.Organization != "acme" || ev.Outcome != "denied" || ev.Actor.Kind != "anonymous" || ev.Metadata["permission"] != "orgs.get" {
		t.Fatalf("event = %v", ev)
	}
	if ev := outbox.DeniedEvent(context.Background(), server.Denied{Method: "/pylee.orgs.v1.OrgsService/ListOrganizations"}); ev.Organization != "-" {
		t.Fatalf("no-org event = %v", ev)
	}
}
