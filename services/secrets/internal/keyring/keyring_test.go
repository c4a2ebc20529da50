package keyring_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/backendtest"
	entsealed "github.com/pyleeai/pylee/services/secrets/internal/ent/sealedvalue"
	"github.com/pyleeai/pylee/services/secrets/internal/keyring"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func newKEK(t *testing.T) keyring.KEK {
	t.Helper()
	raw := make([]byte, keyring.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := keyring.ParseKEK(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func stores(t *testing.T) map[string]func(t *testing.T) *store.Store {
	open := func(t *testing.T, url string) *store.Store {
		st, err := store.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return map[string]func(t *testing.T) *store.Store{
		"SQLite":   func(t *testing.T) *store.Store { return open(t, dbtest.MigratedSQLiteURL(t, store.Migrate)) },
		"Postgres": func(t *testing.T) *store.Store { return open(t, dbtest.PostgresURL(t, "secrets", store.Migrate)) },
	}
}

// TestConformance: the keyring holds the backend contract on SQLite and
// PostgreSQL (the same suite runs on a real Vault in package vault).
func TestConformance(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) (backend.Backend, func(ctx context.Context, fn func(tx backend.Tx) error) error) {
				st := open(t)
				kr := keyring.New(st, newKEK(t))
				return kr, func(ctx context.Context, fn func(tx backend.Tx) error) error {
					return st.Tx(ctx, func(tx *store.Tx) error { return fn(tx) })
				}
			})
		})
	}
}

// TestTampering: a ciphertext moved to another name, scope, organization
// or version does not open; a wrong key does not start; rotation re-wraps
// every data key while both keys open them.
func TestTampering(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			kek := newKEK(t)
			kr := keyring.New(st, kek)
			put := func(key backend.Key, v string) {
				if err := st.Tx(ctx, func(tx *store.Tx) error {
					_, err := kr.Put(ctx, tx, key, []byte(v), backend.Any, backend.Write{Fingerprint: "f", Creator: "users/a"})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			a := backend.Key{Org: "acme", Scope: "orgs/acme", Kind: backend.Secret, Name: "A"}
			b := backend.Key{Org: "acme", Scope: "orgs/acme/servers/gh", Kind: backend.Secret, Name: "A"}
			put(a, "value-of-a")
			put(b, "value-of-b")
			if raw, err := st.Read().Client().SealedValue.Query().All(ctx); err != nil {
				t.Fatal(err)
			} else {
				for _, r := range raw {
					if strings.Contains(string(r.Ciphertext), "value-of") || strings.Contains(string(r.WrappedKey), "value-of") {
						t.Fatal("a value in plain text in the database")
					}
				}
			}
			// Copy a's sealed value and data key onto b's row.
			ra, err := st.Read().Client().SealedValue.Query().Where(entsealed.Key(a.String())).Only(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Read().Client().ExecContext(ctx, "UPDATE sealed_values SET ciphertext = $1, wrapped_key = $2 WHERE key = $3",
				ra.Ciphertext, ra.WrappedKey, b.String()); err != nil {
				t.Fatal(err)
			}
			if _, _, err := kr.Get(ctx, nil, b, 0); !errors.Is(err, keyring.ErrTampered) {
				t.Fatalf("a ciphertext moved to another scope opened: %v", err)
			}
			if v, _, err := kr.Get(ctx, nil, a, 0); err != nil || string(v) != "value-of-a" {
				t.Fatalf("the original: %q, %v", v, err)
			}
			// Rotation stops at a value that does not open, naming it.
			if _, err := keyring.New(st, newKEK(t), kek).Rewrap(ctx); !errors.Is(err, keyring.ErrTampered) {
				t.Fatalf("rewrap over a tampered value: %v", err)
			}
			if err := kr.Delete(ctx, nil, b); err != nil {
				t.Fatal(err)
			}
			put(b, "value-of-b")
			// The wrong key: refused at start, naming the key ids.
			if err := keyring.New(st, newKEK(t)).Check(ctx); err == nil || !strings.Contains(err.Error(), kek.ID()) {
				t.Fatalf("a wrong key started: %v", err)
			}
			// Rotation: new and previous key together open everything,
			// re-wrap, then the new key alone does.
			next := newKEK(t)
			both := keyring.New(st, next, kek)
			if v, _, err := both.Get(ctx, nil, a, 0); err != nil || string(v) != "value-of-a" {
				t.Fatalf("during rotation: %q, %v", v, err)
			}
			n, err := both.Rewrap(ctx)
			if err != nil || n != 2 {
				t.Fatalf("rewrap = %d, %v", n, err)
			}
			alone := keyring.New(st, next)
			if err := alone.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if v, _, err := alone.Get(ctx, nil, a, 0); err != nil || string(v) != "value-of-a" {
				t.Fatalf("after rotation: %q, %v", v, err)
			}
			if _, _, err := keyring.New(st, kek).Get(ctx, nil, a, 0); !errors.Is(err, keyring.ErrTampered) {
				t.Fatalf("the old key still opens a re-wrapped value: %v", err)
			}
		})
	}
}
