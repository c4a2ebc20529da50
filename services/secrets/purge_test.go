package secrets

import (
	"context"
	"testing"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/vault"
)

// TestPurgeTakesWhatTheLogMissed: a value the backend holds but the change
// log does not (with Vault: a write whose unit of work failed after Vault
// took it) is purged with its organization, at every scope in it, and an
// organization made again under the id starts with no values and no log.
func TestPurgeTakesWhatTheLogMissed(t *testing.T) {
	for _, name := range []string{"keyring", "vault"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestService(t, parents{})
			if name == "vault" {
				addr, token := startVault(t)
				b, err := vault.New(ctx, vault.Config{Addr: addr, Token: config.NewSecret(token)})
				if err != nil {
					t.Fatal(err)
				}
				s.backend = b
			}
			if _, err := s.SetVariable(ctx, &secretsv1.SetVariableRequest{Parent: "orgs/acme", VariableId: "LOGGED", Variable: &secretsv1.Variable{Value: "x"}}); err != nil {
				t.Fatal(err)
			}
			for _, scope := range []string{"orgs/acme", "orgs/acme/servers/gh", "orgs/acme/users/kim"} {
				key := backend.Key{Org: "acme", Scope: scope, Kind: backend.Variable, Name: "ORPHAN"}
				if _, err := s.backend.Put(ctx, s.store.Read(), key, []byte("old-tenant-value"), backend.Any, backend.Write{}); err != nil {
					t.Fatal(err)
				}
			}
			other := backend.Key{Org: "acme2", Scope: "orgs/acme2", Kind: backend.Variable, Name: "KEPT"}
			if _, err := s.backend.Put(ctx, s.store.Read(), other, []byte("v"), backend.Any, backend.Write{}); err != nil {
				t.Fatal(err)
			}
			resp, err := s.PurgeScope(ctx, &secretsv1.PurgeScopeRequest{Scope: "orgs/acme"})
			if err != nil || resp.GetDeleted() != 4 {
				t.Fatalf("purge = %v, %v; want 4 deleted", resp, err)
			}
			for _, scope := range []string{"orgs/acme", "orgs/acme/servers/gh", "orgs/acme/users/kim"} {
				if l, err := s.backend.List(ctx, s.store.Read(), scope, backend.Variable); err != nil || len(l) != 0 {
					t.Fatalf("%s after the purge: %v, %v", scope, l, err)
				}
			}
			if l, _ := s.backend.List(ctx, s.store.Read(), "orgs/acme2", backend.Variable); len(l) != 1 {
				t.Fatalf("the purge of acme reached acme2: %v", l)
			}
			if rev, err := s.store.Read().Revision(ctx, "acme"); err != nil || rev != 0 {
				t.Fatalf("the purged organization's change log: revision %d, %v", rev, err)
			}
		})
	}
}
