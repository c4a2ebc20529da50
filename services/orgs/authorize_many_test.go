package orgs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// TestAuthorizeManyAsAuthorize: deciding many resources at once answers,
// for each, exactly what Authorize answers alone on a fresh engine, over
// 3,000 random bindings, for members and strangers, on every level.
func TestAuthorizeManyAsAuthorize(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, dbtest.MigratedSQLiteURL(t, store.Migrate))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seedBindings(t, st, 10_000)
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 20; round++ {
		p := auth.Principal{Name: fmt.Sprintf("users/u%d", rng.Intn(500)), Kind: auth.KindUser}
		perm := []string{"entries.get", "tools.invoke", "servers.get", "secrets.list"}[rng.Intn(4)]
		org := fmt.Sprintf("org-%02d", rng.Intn(20))
		var resources []string
		for i := 0; i < 60; i++ {
			resources = append(resources, []string{
				"orgs/" + org + "/registries/r" + fmt.Sprint(rng.Intn(5)) + "/entries/s" + fmt.Sprint(rng.Intn(50)),
				"orgs/" + org + "/servers/s" + fmt.Sprint(rng.Intn(50)),
				"orgs/" + org + "/servers/s" + fmt.Sprint(rng.Intn(50)) + "/tools/t" + fmt.Sprint(rng.Intn(10)),
				"orgs/" + org + "/users/u" + fmt.Sprint(rng.Intn(3)),
			}[rng.Intn(4)])
		}
		many, err := orgs.NewEngine(st).AuthorizeMany(ctx, p, perm, resources)
		if err != nil {
			t.Fatal(err)
		}
		allowed := 0
		for i, r := range resources {
			one := orgs.NewEngine(st).Authorize(ctx, p, perm, r)
			if (one == nil) != (many[i] == nil) || one != nil && !errors.Is(many[i], errorKind(one)) {
				t.Fatalf("%s %s on %s: alone %v, at once %v", p.Name, perm, r, one, many[i])
			}
			if one == nil {
				allowed++
			}
		}
		t.Logf("round %d: %s %s, %d of %d allowed, as Authorize says", round, p.Name, perm, allowed, len(resources))
	}
}

// errorKind is the sentinel an access error wraps.
func errorKind(err error) error {
	for _, s := range []error{errs.ErrNotFound, errs.ErrPermissionDenied} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}
