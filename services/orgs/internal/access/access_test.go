package access

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

func TestAncestors(t *testing.T) {
	tests := map[string]string{
		"orgs/a":                                "orgs/a,",
		"orgs/a/servers/s/tools/t":              "orgs/a/servers/s/tools/t,orgs/a/servers/s,orgs/a,",
		"orgs/a/registries/r":                   "orgs/a/registries/r,orgs/a,",
		"orgs/a/registries/r/servers/s":         "orgs/a/registries/r/servers/s,orgs/a/registries/r,orgs/a,orgs/a/servers/s,",
		"orgs/a/registries/r/servers/s/tools/t": "orgs/a/registries/r/servers/s/tools/t,orgs/a/registries/r/servers/s,orgs/a/registries/r,orgs/a,orgs/a/servers/s/tools/t,orgs/a/servers/s,",
		"orgs/a/registries/r/entries/s":         "orgs/a/registries/r/entries/s,orgs/a/registries/r,orgs/a,orgs/a/servers/s,",
		"":                                      "",
		"users/u":                               "users/u,",
	}
	for in, want := range tests {
		if got := strings.Join(Ancestors(in), ","); got != want {
			t.Errorf("Ancestors(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuiltinRolesAreWithinTheCatalog(t *testing.T) {
	for _, r := range append(BuiltinRoles, RoleInstallationOwner) {
		for p := range r.Permissions {
			if !Known(p) {
				t.Errorf("%s holds unknown permission %s", r.Name, p)
			}
		}
	}
	// Least privilege: each role below owner lacks something owner has.
	for _, r := range BuiltinRoles[1:] {
		if len(r.Permissions) >= len(RoleOwner.Permissions) {
			t.Errorf("%s holds as much as owner", r.Name)
		}
	}
	if RoleAdmin.Permissions["orgs.delete"] || RoleUser.Permissions["bindings.create"] || RoleAuditor.Permissions["secrets.write"] {
		t.Error("a role holds a permission it must not")
	}
}

func lookup(name string) (Role, bool) { return BuiltinRole(name) }

func TestDecide(t *testing.T) {
	bindings := []Binding{
		{Name: "orgs/a/bindings/1", Resource: "orgs/a", Role: "roles/user", Principal: "users/u"},
		{Name: "orgs/a/servers/s/tools/t/bindings/2", Resource: "orgs/a/servers/s/tools/t", Role: "roles/developer", Principal: "orgs/a/teams/dev"},
		{Name: "orgs/a/registries/prod/bindings/3", Resource: "orgs/a/registries/prod", Role: "roles/admin", Principal: "orgs/a/serviceAccounts/ci"},
	}
	tests := []struct {
		principals []string
		perm, res  string
		allowed    bool
		binding    string
	}{
		{[]string{"users/u"}, "tools.invoke", "orgs/a/servers/s/tools/x", true, "orgs/a/bindings/1"},
		{[]string{"users/u"}, "servers.update", "orgs/a/servers/s", false, ""},
		{[]string{"users/u"}, "tools.invoke", "orgs/b/servers/s/tools/x", false, ""},
		{[]string{"users/v", "orgs/a/teams/dev"}, "versions.publish", "orgs/a/servers/s/tools/t", true, "orgs/a/servers/s/tools/t/bindings/2"},
		{[]string{"users/v", "orgs/a/teams/dev"}, "versions.publish", "orgs/a/servers/s", false, ""},
		{[]string{"orgs/a/serviceAccounts/ci"}, "entries.pin", "orgs/a/registries/prod/entries/s", true, "orgs/a/registries/prod/bindings/3"},
		{[]string{"orgs/a/serviceAccounts/ci"}, "servers.update", "orgs/a/registries/prod/servers/s", true, "orgs/a/registries/prod/bindings/3"},
		{[]string{"orgs/a/serviceAccounts/ci"}, "servers.update", "orgs/a/servers/s", false, ""},
		{[]string{"users/nobody"}, "orgs.list", "", true, ""},
	}
	for _, tt := range tests {
		d := Decide(tt.principals, tt.perm, tt.res, bindings, lookup)
		if d.Allowed != tt.allowed || d.Binding != tt.binding {
			t.Errorf("Decide(%v, %s, %s) = %+v, want %v %s", tt.principals, tt.perm, tt.res, d, tt.allowed, tt.binding)
		}
	}
}

// reference is a second, deliberately naive model of the rules: walk up
// the resource by trimming the last collection/id pair; a path through a
// registry also walks the server's own path.
func reference(principals []string, perm, res string, bindings []Binding) bool {
	if SelfPermissions[perm] {
		return true
	}
	var walk []string
	for r := res; ; {
		walk = append(walk, r)
		if r == "" {
			break
		}
		parts := strings.Split(r, "/")
		if len(parts) <= 2 {
			r = ""
		} else {
			r = strings.Join(parts[:len(parts)-2], "/")
		}
	}
	if i := strings.Index(res, "/registries/"); i >= 0 {
		if _, after, ok := strings.Cut(res[i:], "/servers/"); ok {
			walk = append(walk, reference2(res[:i]+"/servers/"+after)...)
		}
		if _, after, ok := strings.Cut(res[i:], "/entries/"); ok && !strings.Contains(after, "/") {
			walk = append(walk, reference2(res[:i]+"/servers/"+after)...)
		}
	}
	for _, b := range bindings {
		held := false
		for _, p := range principals {
			held = held || p == b.Principal
		}
		on := false
		for _, w := range walk {
			on = on || w == b.Resource
		}
		role, _ := BuiltinRole(b.Role)
		if held && on && role.Permissions[perm] {
			return true
		}
	}
	return false
}

func reference2(res string) []string {
	var out []string
	for r := res; r != ""; {
		out = append(out, r)
		parts := strings.Split(r, "/")
		if len(parts) <= 2 {
			break
		}
		r = strings.Join(parts[:len(parts)-2], "/")
	}
	return out
}

func TestDecideAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	orgs := []string{"a", "b"}
	resources := func(org string) []string {
		return []string{"orgs/" + org, "orgs/" + org + "/registries/r1", "orgs/" + org + "/registries/r2",
			"orgs/" + org + "/servers/s1", "orgs/" + org + "/servers/s2", "orgs/" + org + "/servers/s1/tools/t1",
			"orgs/" + org + "/servers/s1/tools/t2", "orgs/" + org + "/registries/r1/servers/s1",
			"orgs/" + org + "/registries/r1/servers/s1/tools/t1", "orgs/" + org + "/registries/r2/entries/s2"}
	}
	principals := []string{"users/u1", "users/u2", "orgs/a/teams/t", "orgs/a/serviceAccounts/ci", "orgs/b/teams/t"}
	var perms []string
	for _, p := range Permissions {
		perms = append(perms, p.Name)
	}
	cases := 0
	for graph := 0; graph < 200; graph++ {
		var bindings []Binding
		for i := rng.Intn(8); i >= 0; i-- {
			org := orgs[rng.Intn(2)]
			res := resources(org)[rng.Intn(7)] // bindings sit on orgs, registries, servers, tools
			bindings = append(bindings, Binding{Name: fmt.Sprint(res, "/bindings/", i), Resource: res,
				Role: BuiltinRoles[rng.Intn(len(BuiltinRoles))].Name, Principal: principals[rng.Intn(len(principals))]})
		}
		for c := 0; c < 100; c++ {
			ps := []string{principals[rng.Intn(2)]}
			if rng.Intn(2) == 0 {
				ps = append(ps, principals[2+rng.Intn(3)])
			}
			perm := perms[rng.Intn(len(perms))]
			res := resources(orgs[rng.Intn(2)])[rng.Intn(10)]
			got := Decide(ps, perm, res, bindings, lookup).Allowed
			if want := reference(ps, perm, res, bindings); got != want {
				t.Fatalf("graph %d: Decide(%v, %s, %s) = %v, reference %v; bindings %+v", graph, ps, perm, res, got, want, bindings)
			}
			cases++
		}
	}
	t.Logf("%d random checks over 200 random binding graphs agree with the reference model", cases)
}
