package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func backends(t *testing.T) map[string]func(t *testing.T) *store.Store {
	open := func(t *testing.T, url string) *store.Store {
		s, err := store.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return map[string]func(t *testing.T) *store.Store{
		"SQLite":   func(t *testing.T) *store.Store { return open(t, dbtest.MigratedSQLiteURL(t, store.Migrate)) },
		"Postgres": func(t *testing.T) *store.Store { return open(t, dbtest.PostgresURL(t, "registry", store.Migrate)) },
	}
}

func srv(id, serverName string) store.Server {
	return store.Server{Name: "orgs/acme/servers/" + id, Organization: "acme", ServerName: serverName, Title: "T " + id,
		Repository: map[string]string{"url": "https://github.com/acme/" + id, "source": "github"}}
}

func TestServers(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			a, err := s.CreateServer(ctx, srv("github", "com.acme/github"), "r1", nil)
			if err != nil || a.Revision != 1 || a.Repository["source"] != "github" {
				t.Fatalf("create = %+v, %v", a, err)
			}
			if again, err := s.CreateServer(ctx, srv("github", "com.acme/github"), "r1", nil); err != nil || again.Name != a.Name {
				t.Fatalf("idempotent retry = %v, %v", again, err)
			}
			if _, err := s.CreateServer(ctx, srv("other", "com.acme/other"), "r1", nil); !errors.Is(err, errs.ErrRequestIDReused) {
				t.Fatalf("reused request id = %v", err)
			}
			if _, err := s.CreateServer(ctx, srv("github2", "com.acme/github"), "", nil); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Fatalf("duplicate server name = %v", err)
			}
			for i := 0; i < 5; i++ {
				if _, err := s.CreateServer(ctx, srv(fmt.Sprintf("s%d", i), fmt.Sprintf("com.acme/s%d", i)), "", nil); err != nil {
					t.Fatal(err)
				}
			}
			page, err := s.ListServers(ctx, store.ServerQuery{Organization: "acme", Limit: 3})
			if err != nil || len(page) != 3 || page[0].Name != "orgs/acme/servers/github" {
				t.Fatalf("page = %v, %v", page, err)
			}
			rest, _ := s.ListServers(ctx, store.ServerQuery{Organization: "acme", Limit: 10, After: page[2].Name})
			if len(rest) != 3 {
				t.Fatalf("rest = %v", rest)
			}
			if found, _ := s.ListServers(ctx, store.ServerQuery{Organization: "acme", Limit: 10, Search: "GITHUB"}); len(found) != 1 {
				t.Fatalf("search = %v", found)
			}
			up, err := s.UpdateServer(ctx, store.Server{Name: a.Name, Title: "GitHub", Description: "ignored"}, []string{"title"}, a.Revision, nil)
			if err != nil || up.Title != "GitHub" || up.Description != "" || up.Revision != 2 || up.ServerName != "com.acme/github" {
				t.Fatalf("update = %+v, %v", up, err)
			}
			if _, err := s.UpdateServer(ctx, store.Server{Name: a.Name, Title: "x"}, []string{"title"}, a.Revision, nil); !errors.Is(err, errs.ErrEtagMismatch) {
				t.Fatalf("stale update = %v", err)
			}
			if err := s.DeleteServer(ctx, a.Name, 1, nil); !errors.Is(err, errs.ErrEtagMismatch) {
				t.Fatalf("stale delete = %v", err)
			}
			if err := s.DeleteServer(ctx, a.Name, 0, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetServer(ctx, a.Name); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("after delete = %v", err)
			}
		})
	}
}

func TestConcurrentUpdatesOneWinner(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			a, err := s.CreateServer(ctx, srv("github", "com.acme/github"), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			res := make(chan error, 6)
			for i := 0; i < 6; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					_, err := s.UpdateServer(ctx, store.Server{Name: a.Name, Title: fmt.Sprint(i)}, []string{"title"}, a.Revision, nil)
					res <- err
				}(i)
			}
			wg.Wait()
			close(res)
			ok := 0
			for err := range res {
				if err == nil {
					ok++
				} else if !errors.Is(err, errs.ErrEtagMismatch) {
					t.Fatal(err)
				}
			}
			if ok != 1 {
				t.Fatalf("%d updates won, want 1", ok)
			}
		})
	}
}

// TestUnitOfWork: a change and its audit event commit together or not at
// all, and only a commit wakes the relay (AfterCommit).
func TestUnitOfWork(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			var mu sync.Mutex
			woken := 0
			s.AfterCommit(func() { mu.Lock(); woken++; mu.Unlock() })
			outboxRows := func() int {
				db, _ := s.OutboxDB()
				var n int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+outbox.Table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			ev := outbox.NewEvent(ctx, "acme", "registry.server.create", "orgs/acme/servers/github")
			if _, err := s.CreateServer(ctx, srv("github", "com.acme/github"), "", ev); err != nil {
				t.Fatal(err)
			}
			if outboxRows() != 1 || woken != 1 {
				t.Fatalf("after a commit: %d outbox rows, relay woken %d times; want 1 and 1", outboxRows(), woken)
			}
			// Refused (the name is taken): neither the change nor its event.
			ev = outbox.NewEvent(ctx, "acme", "registry.server.create", "orgs/acme/servers/github")
			if _, err := s.CreateServer(ctx, srv("github", "com.acme/github"), "", ev); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Fatalf("duplicate = %v", err)
			}
			if outboxRows() != 1 || woken != 1 {
				t.Fatalf("after a rollback: %d outbox rows, relay woken %d times; want 1 and 1", outboxRows(), woken)
			}
			// Purging an organization is one unit too, and idempotent.
			n, err := s.PurgeOrganization(ctx, "acme", outbox.NewEvent(ctx, "acme", "registry.organization.purge", "orgs/acme"))
			if err != nil || n != 1 {
				t.Fatalf("purge = %d, %v", n, err)
			}
			if n, err := s.PurgeOrganization(ctx, "acme", outbox.NewEvent(ctx, "acme", "registry.organization.purge", "orgs/acme")); err != nil || n != 0 {
				t.Fatalf("second purge = %d, %v", n, err)
			}
			if _, err := s.GetServer(ctx, "orgs/acme/servers/github"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("a purged server: %v", err)
			}
			if outboxRows() != 2 {
				t.Fatalf("outbox rows after the purges = %d, want 2 (a no-op purge records nothing)", outboxRows())
			}
		})
	}
}
