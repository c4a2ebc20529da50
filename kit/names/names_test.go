package names

import (
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	// Each parser against valid names, empty segments, a wrong
	// collection, extra segments and invalid UTF-8.
	parsers := map[string]func(string) (fmt.Stringer, error){
		"org":      func(s string) (fmt.Stringer, error) { return ParseOrg(s) },
		"registry": func(s string) (fmt.Stringer, error) { return ParseRegistry(s) },
		"server":   func(s string) (fmt.Stringer, error) { return ParseServer(s) },
		"tool":     func(s string) (fmt.Stringer, error) { return ParseTool(s) },
		"team":     func(s string) (fmt.Stringer, error) { return ParseTeam(s) },
		"member":   func(s string) (fmt.Stringer, error) { return ParseMember(s) },
		"user":     func(s string) (fmt.Stringer, error) { return ParseUser(s) },
		"token":    func(s string) (fmt.Stringer, error) { return ParseToken(s) },
		"binding":  func(s string) (fmt.Stringer, error) { return ParseBinding(s) },
	}
	tests := []struct {
		parser string
		name   string
		want   fmt.Stringer // nil: invalid
	}{
		{"org", "orgs/acme", Org{Org: "acme"}},
		{"org", "orgs/Acme_1", Org{Org: "Acme_1"}}, // the form only: ids are checked at the edge
		{"org", "orgs/", nil},
		{"org", "orgs", nil},
		{"org", "", nil},
		{"org", "users/acme", nil},
		{"org", "orgs/acme/servers/gh", nil},
		{"org", "orgs/ac\xffme", nil},

		{"registry", "orgs/acme/registries/prod", Registry{Org: "acme", Registry: "prod"}},
		{"registry", "orgs//registries/prod", nil},
		{"registry", "orgs/acme/registries/", nil},
		{"registry", "orgs/acme/servers/prod", nil},
		{"registry", "orgs/acme/registries/prod/entries/gh", nil},
		{"registry", "orgs/acme/registries/pr\xc3od", nil},

		{"server", "orgs/acme/servers/github", Server{Org: "acme", Server: "github"}},
		{"server", "orgs/acme/servers//", nil},
		{"server", "orgs/acme/server/github", nil},
		{"server", "orgs/acme/servers/github/versions/1.0.0", nil},
		{"server", "/orgs/acme/servers/github", nil},
		{"server", "orgs/acme/servers/github/", nil},

		{"tool", "orgs/acme/servers/gh/tools/create_issue.v2", Tool{Org: "acme", Server: "gh", Tool: "create_issue.v2"}},
		{"tool", "orgs/acme/servers/gh/tools/", nil},
		{"tool", "orgs/acme/registries/gh/tools/t", nil},
		{"tool", "orgs/acme/servers/gh/tools/t/x", nil},

		{"team", "orgs/acme/teams/dev", Team{Org: "acme", Team: "dev"}},
		{"team", "orgs/acme/teams/", nil},
		{"team", "orgs/teams/dev/x", nil},
		{"team", "acme/dev", nil},

		{"member", "orgs/acme/members/jane@example.com", Member{Org: "acme", User: "jane@example.com"}},
		{"member", "orgs/acme/members/", nil},
		{"member", "orgs/acme/member/jane", nil},

		{"user", "users/jane", User{User: "jane"}},
		{"user", "users/me", User{User: "me"}},
		{"user", "users/", nil},
		{"user", "users/a/b", nil},
		{"user", "user/jane", nil},
		{"user", "users/\xff", nil},

		{"token", "users/me/tokens/ab12", Token{Parent: "users/me", Token: "ab12"}},
		{"token", "orgs/acme/serviceAccounts/ci/tokens/ab12", Token{Parent: "orgs/acme/serviceAccounts/ci", Token: "ab12"}},
		{"token", "/tokens/ab12", nil},
		{"token", "users/me/tokens/", nil},
		{"token", "users/me/tokens/a/b", nil},
		{"token", "users/me/bindings/a", nil},
		{"token", "users/me/tokens/\xff", nil},

		{"binding", "orgs/acme/servers/gh/bindings/x1", Binding{Resource: "orgs/acme/servers/gh", Binding: "x1"}},
		{"binding", "orgs/acme/bindings/b/bindings/c", Binding{Resource: "orgs/acme/bindings/b", Binding: "c"}},
		{"binding", "bindings/x", nil},
		{"binding", "orgs/acme/bindings/", nil},
		{"binding", "orgs/acme/tokens/x", nil},
	}
	for _, tt := range tests {
		got, err := parsers[tt.parser](tt.name)
		if tt.want == nil {
			if err == nil {
				t.Errorf("Parse%s(%q) = %#v, want an error", tt.parser, tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse%s(%q) = %#v, %v; want %#v", tt.parser, tt.name, got, err, tt.want)
			continue
		}
		// What parses formats back to itself.
		if got.String() != tt.name {
			t.Errorf("Parse%s(%q).String() = %q", tt.parser, tt.name, got.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	// Validators show these to clients: they name the expected form.
	if _, err := ParseServer("orgs/acme/servers"); err == nil || err.Error() != "must have the form orgs/{org}/servers/{server}" {
		t.Errorf("ParseServer error = %v", err)
	}
	if _, err := ParseServer("orgs//servers/gh"); err == nil || !strings.Contains(err.Error(), "{org} is empty") {
		t.Errorf("ParseServer error = %v", err)
	}
	if _, err := ParseOrg("orgs/\xff"); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("ParseOrg error = %v", err)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name fmt.Stringer
		want string
	}{
		{Org{Org: "acme"}, "orgs/acme"},
		{Registry{Org: "acme", Registry: "prod"}, "orgs/acme/registries/prod"},
		{Server{Org: "acme", Server: "gh"}, "orgs/acme/servers/gh"},
		{Tool{Org: "acme", Server: "gh", Tool: "t"}, "orgs/acme/servers/gh/tools/t"},
		{Entry{Org: "acme", Registry: "prod", Server: "gh"}, "orgs/acme/registries/prod/entries/gh"},
		{Approval{Org: "acme", Registry: "prod", Approval: "a1"}, "orgs/acme/registries/prod/approvals/a1"},
		{Team{Org: "acme", Team: "dev"}, "orgs/acme/teams/dev"},
		{Role{Org: "acme", Role: "reader"}, "orgs/acme/roles/reader"},
		{ServiceAccount{Org: "acme", ServiceAccount: "ci"}, "orgs/acme/serviceAccounts/ci"},
		{Member{Org: "acme", User: "jane"}, "orgs/acme/members/jane"},
		{Invitation{Org: "acme", Invitation: "i1"}, "orgs/acme/invitations/i1"},
		{Event{Org: "acme", Event: "e1"}, "orgs/acme/events/e1"},
		{User{User: "jane"}, "users/jane"},
		{Token{Parent: "users/jane", Token: "t1"}, "users/jane/tokens/t1"},
		{Binding{Resource: "orgs/acme", Binding: "b1"}, "orgs/acme/bindings/b1"},
		// Empty ids format as the concatenation would: callers that
		// format unvalidated input get what they gave.
		{Org{}, "orgs/"},
		{Registry{Org: "acme"}, "orgs/acme/registries/"},
	}
	for _, tt := range tests {
		if got := tt.name.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := (Tool{Org: "acme", Server: "gh", Tool: "t"}).ServerName(); got != (Server{Org: "acme", Server: "gh"}) {
		t.Errorf("ServerName = %#v", got)
	}
	if got := (Member{Org: "acme", User: "jane"}).UserName(); got != (User{User: "jane"}) {
		t.Errorf("UserName = %#v", got)
	}
}

func TestOrgID(t *testing.T) {
	tests := []struct{ name, id, org string }{
		{"orgs/acme", "acme", "orgs/acme"},
		{"orgs/acme/servers/gh/tools/t", "acme", "orgs/acme"},
		{"orgs/-", "-", "orgs/-"},
		{"orgs/", "", ""},
		{"orgs//servers/gh", "", ""},
		{"users/jane", "", ""},
		{"roles/owner", "", ""},
		{"", "", ""},
		{"orgsx/acme", "", ""},
	}
	for _, tt := range tests {
		if got := OrgID(tt.name); got != tt.id {
			t.Errorf("OrgID(%q) = %q, want %q", tt.name, got, tt.id)
		}
		if got := OrgOf(tt.name); got != tt.org {
			t.Errorf("OrgOf(%q) = %q, want %q", tt.name, got, tt.org)
		}
	}
}

func TestAllocations(t *testing.T) {
	// OrgID is on every access decision; a name is formatted in one
	// allocation.
	if n := testing.AllocsPerRun(100, func() { _ = OrgID("orgs/acme/servers/gh/tools/t") }); n != 0 {
		t.Errorf("OrgID allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Tool{Org: "acme", Server: "gh", Tool: "t"}.String() }); n != 1 {
		t.Errorf("Tool.String allocates %v times", n)
	}
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"orgs/acme/servers/gh", "orgs//servers/x", "orgs/a/servers/b/c", "", "/", "orgs/a/servers/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseServer(name)
		if err != nil {
			return
		}
		if s.String() != name || s.Org == "" || s.Server == "" || strings.Contains(s.Org+s.Server, "/") {
			t.Fatalf("ParseServer(%q) = %#v", name, s)
		}
	})
}

func BenchmarkOrgID(b *testing.B) {
	for b.Loop() {
		_ = OrgID("orgs/acme/servers/gh/tools/t")
	}
}

func BenchmarkToolString(b *testing.B) {
	t := Tool{Org: "acme", Server: "gh", Tool: "t"}
	for b.Loop() {
		_ = t.String()
	}
}
