package secrets

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/keyring"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

// TestRotateKey: `pylee secrets rotate-key` re-wraps every value under the
// new key; afterwards the new key alone opens them, and a second run has
// nothing left to do.
func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	url := "sqlite:" + filepath.Join(dir, "secrets.db")
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	set := module.Settings{DataDir: dir}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := OpenKeyring(ctx, set, st) // the data directory's key, made now
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"A", "B", "C"} {
		key := backend.Key{Org: "acme", Scope: "orgs/acme", Kind: backend.Secret, Name: name}
		if err := st.Tx(ctx, func(tx *store.Tx) error {
			_, err := kr.Put(ctx, tx, key, []byte("value-"+name), backend.Any, backend.Write{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	set.Secrets.KeyringKey = config.NewSecret(base64.StdEncoding.EncodeToString(raw))
	if n, err := RotateKey(ctx, url, set); err != nil || n != 3 {
		t.Fatalf("rotate = %d, %v", n, err)
	}
	if n, err := RotateKey(ctx, url, set); err != nil || n != 0 {
		t.Fatalf("a second rotation = %d, %v", n, err)
	}
	st, err = store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next, err := keyring.ParseKEK(set.Secrets.KeyringKey.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	alone := keyring.New(st, next)
	if err := alone.Check(ctx); err != nil {
		t.Fatal(err)
	}
	v, _, err := alone.Get(ctx, nil, backend.Key{Org: "acme", Scope: "orgs/acme", Kind: backend.Secret, Name: "B"}, 0)
	if err != nil || string(v) != "value-B" {
		t.Fatalf("after rotation: %q, %v", v, err)
	}
	// The old key (the data directory's) no longer starts.
	set.Secrets.KeyringKey = config.Secret{}
	if _, err := OpenKeyring(ctx, set, st); err == nil {
		t.Fatal("the old key started a keyring whose values are sealed under the new one")
	}
}
