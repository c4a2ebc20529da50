package actions_test

import (
	"testing"

	"github.com/pyleeai/pylee/cmd/pylee/internal/actions"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/services/orgs"
)

// TestCatalog: every RPC has an action of three parts, the ones whose name
// did not give the recorded action declare it, and the audit service's
// incarnation marker is the organization's create action.
func TestCatalog(t *testing.T) {
	seen := map[string]string{}
	for _, a := range actions.All() {
		// <service>.<resource>.<verb>, or the data plane's tools.<verb>
		// (the audit service takes exactly these).
		if parts := splitDots(a.Name); len(parts) != 3 && !(len(parts) == 2 && parts[0] == "tools" && a.Method == "") {
			t.Errorf("%s: action %q is not <service>.<resource>.<verb>", a.Method, a.Name)
		}
		if prev, ok := seen[a.Name]; ok && a.Method == "" {
			t.Errorf("%q listed twice (%s)", a.Name, prev)
		}
		seen[a.Name] = a.Method
	}
	for method, want := range map[string]string{
		"/pylee.orgs.v1.AccessService/DeleteToken":            "orgs.token.revoke",
		"/pylee.orgs.v1.AccessService/AddTeamMember":          "orgs.team.addMember",
		"/pylee.registry.v1.RegistryService/Approve":          "registry.approval.approve",
		"/pylee.orgs.v1.OrgsService/ListOrganizations":        "orgs.organization.list",
		"/pylee.registry.v1.RegistryService/ImportServerJson": "registry.version.create",
	} {
		if got := seen[want]; got == "" {
			t.Errorf("%s: %s missing from the catalog", method, want)
		}
	}
	if orgs.ActionCreate != auditlog.ActionOrganizationCreate {
		t.Fatalf("the organization's create action %q is not the audit service's incarnation marker %q", orgs.ActionCreate, auditlog.ActionOrganizationCreate)
	}
	if !actions.Known("orgs.token.revoke") || actions.Known("orgs.token.delete") {
		t.Fatal("DeleteToken's action is not the declared one")
	}
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
