package secrets

import (
	"context"
	"testing"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
)

// TestScopes: the four scopes, a user named by e-mail (an OIDC user)
// included, and what is not a scope.
func TestScopes(t *testing.T) {
	for scope, want := range map[string]bool{
		"orgs/acme": true, "orgs/acme/registries/prod": true, "orgs/acme/servers/gh": true, "orgs/acme/users/kim": true,
		"orgs/acme/users/kim@acme.test": true, "orgs/acme/users/kim+dev@acme.test": true,
		"": false, "orgs": false, "orgs/ACME": false, "orgs/acme/teams/x": false, "orgs/acme/users/": false,
		"orgs/acme/users/a b": false, "orgs/acme/users/a\x00b": false, "orgs/acme/users/\xff": false,
		"orgs/acme/registries/Prod": false, "orgs/acme/users/kim/secrets": false, "users/kim": false,
	} {
		if _, err := checkScope(scope); (err == nil) != want {
			t.Errorf("checkScope(%q) = %v, want ok=%v", scope, err, want)
		}
	}
	for name, want := range map[string]bool{"users/kim": true, "users/kim@acme.test": true, "users/": false, "users/a/b": false, "kim": false} {
		if err := checkUser(name); (err == nil) != want {
			t.Errorf("checkUser(%q) = %v, want ok=%v", name, err, want)
		}
	}
	// A value at an e-mail user's scope, set and resolved.
	ctx := context.Background()
	s := newTestService(t, parents{})
	if _, err := s.SetSecret(ctx, &secretsv1.SetSecretRequest{Parent: "orgs/acme/users/kim@acme.test", SecretId: "TOKEN",
		Secret: &secretsv1.Secret{Value: "v"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Resolve(ctx, &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/prod", Server: "orgs/acme/servers/gh", User: "users/kim@acme.test"})
	if err != nil || len(resp.GetValues()) != 1 || resp.GetValues()[0].GetScope() != "orgs/acme/users/kim@acme.test" {
		t.Fatalf("resolve for an e-mail user: %v, %v", resp, err)
	}
}
