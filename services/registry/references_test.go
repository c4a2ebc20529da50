package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/registry"
)

// testOrgs stands for the orgs service in these unit tests: a fixed set of
// teams, and a record of the bindings purged. The real orgs service is
// exercised end to end in cmd/pylee (TestReferencesAreChecked).
type testOrgs struct {
	mu     sync.Mutex
	teams  map[string]bool
	purged []string
	down   bool
}

func newTestOrgs(teams ...string) *testOrgs {
	o := &testOrgs{teams: map[string]bool{}}
	for _, t := range teams {
		o.teams[t] = true
	}
	return o
}

func (o *testOrgs) TeamExists(_ context.Context, team string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return errors.New("orgs is down")
	}
	if !o.teams[team] {
		return errs.ErrNotFound
	}
	return nil
}

func (o *testOrgs) PurgeBindings(_ context.Context, resource string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return errors.New("orgs is down")
	}
	o.purged = append(o.purged, resource)
	return nil
}

func (o *testOrgs) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
}

func (o *testOrgs) purges(resource string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, p := range o.purged {
		if p == resource {
			n++
		}
	}
	return n
}

func TestReferences(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.as("admin")
		// Owner teams: of this organization, and existing.
		for i, c := range []struct {
			team string
			want codes.Code
		}{
			{"orgs/globex/teams/platform", codes.InvalidArgument},
			{"nobody", codes.InvalidArgument},
			{"orgs/acme/teams/nobody", codes.InvalidArgument},
			{"platform", codes.OK},
		} {
			_, err := e.client.CreateRegistry(ctx, &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: fmt.Sprintf("r%d", i),
				Registry: &registryv1.Registry{OwnerTeams: []string{c.team}}})
			if status.Code(err) != c.want {
				t.Errorf("owner team %q: %v, want %v", c.team, err, c.want)
			}
			if c.want != codes.OK {
				if _, err := e.client.GetRegistry(ctx, &registryv1.GetRegistryRequest{Name: fmt.Sprintf("orgs/acme/registries/r%d", i)}); status.Code(err) != codes.NotFound {
					t.Errorf("a refused registry was created: %v", err)
				}
			}
		}
		_, err := e.client.UpdateRegistry(ctx, &registryv1.UpdateRegistryRequest{
			Registry: &registryv1.Registry{Name: "orgs/acme/registries/r3", OwnerTeams: []string{"orgs/globex/teams/platform"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"owner_teams"}}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("update to another org's team: %v", err)
		}

		// Deleting a server or registry purges the grants on it, before
		// and after; with the orgs service down nothing is deleted.
		_, err = e.client.CreateServer(ctx, &registryv1.CreateServerRequest{Parent: "orgs/acme", ServerId: "gh", Server: &registryv1.Server{ServerName: "com.acme/gh"}})
		if err != nil {
			t.Fatal(err)
		}
		e.orgs.setDown(true)
		if _, err := e.client.DeleteServer(ctx, &registryv1.DeleteServerRequest{Name: "orgs/acme/servers/gh"}); status.Code(err) != codes.Unavailable {
			t.Fatalf("delete with orgs down: %v", err)
		}
		if _, err := e.client.GetServer(ctx, &registryv1.GetServerRequest{Name: "orgs/acme/servers/gh"}); err != nil {
			t.Fatalf("the server went although its grants could not: %v", err)
		}
		e.orgs.setDown(false)
		if _, err := e.client.DeleteServer(ctx, &registryv1.DeleteServerRequest{Name: "orgs/acme/servers/gh"}); err != nil {
			t.Fatal(err)
		}
		if n := e.orgs.purges("orgs/acme/servers/gh"); n != 3 { // at create, before and after the delete
			t.Errorf("server purged %d times, want 3", n)
		}
		if _, err := e.client.DeleteRegistry(ctx, &registryv1.DeleteRegistryRequest{Name: "orgs/acme/registries/r3"}); err != nil {
			t.Fatal(err)
		}
		if n := e.orgs.purges("orgs/acme/registries/r3"); n != 3 {
			t.Errorf("registry purged %d times, want 3", n)
		}
		if _, err := e.client.DeleteRegistry(ctx, &registryv1.DeleteRegistryRequest{Name: "orgs/acme/registries/r3"}); status.Code(err) != codes.NotFound {
			t.Errorf("delete again: %v", err)
		}
	})
}

// TestWatchEndsWhenAccessEnds: a watch does not outlive the caller's
// access (re-checked while it runs), nor its registry.
func TestWatchEndsWhenAccessEnds(t *testing.T) {
	e := start(t, dbtest.MigratedSQLiteURL(t, registry.MigrateStore))
	admin := e.as("admin")
	for _, id := range []string{"staging", "dev"} {
		if _, err := e.client.CreateRegistry(admin, &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: id, Registry: &registryv1.Registry{}}); err != nil {
			t.Fatal(err)
		}
	}
	e.authz.add(grant{"users/zed", "entries.get", "orgs/acme/registries/staging"})
	ctx, cancel := context.WithTimeout(e.as("zed"), 20*time.Second)
	defer cancel()
	watch, err := e.client.WatchEntries(ctx, &registryv1.WatchEntriesRequest{Parent: "orgs/acme/registries/staging"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the watch is running, past its first authorization
	e.authz.remove("users/zed")
	start := time.Now()
	if _, err := watch.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the watch of a caller whose grant went: %v", err)
	}
	t.Logf("ended %s after the grant went", time.Since(start).Round(100*time.Millisecond))

	watch, err = e.client.WatchEntries(admin, &registryv1.WatchEntriesRequest{Parent: "orgs/acme/registries/dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DeleteRegistry(admin, &registryv1.DeleteRegistryRequest{Name: "orgs/acme/registries/dev"}); err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("the watch of a deleted registry: %v", err)
	}
}
