package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
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

// create stores v in a unit of work, recording ev when given, and returns
// it as stored; a request id already used returns what it created.
func create(ctx context.Context, s *store.Store, v store.Server, requestID string, ev *auditv1.Event) (store.Server, error) {
	var out store.Server
	err := s.Tx(ctx, func(tx *store.Tx) error {
		if requestID != "" {
			prev, ok, err := tx.ServerByRequestID(ctx, requestID)
			if err != nil || ok {
				out = prev
				return err
			}
		}
		var err error
		if out, err = tx.InsertServer(ctx, v, requestID); err != nil {
			return err
		}
		if ev != nil {
			tx.Audit(ev)
		}
		return nil
	})
	return out, err
}

func update(ctx context.Context, s *store.Store, v store.Server, fields []string, expect int64) (store.Server, []*auditv1.FieldChange, error) {
	var out store.Server
	var changes []*auditv1.FieldChange
	err := s.Tx(ctx, func(tx *store.Tx) error {
		before, after, err := tx.UpdateServer(ctx, v, fields, expect)
		out, changes = after, store.ServerChanges(before, after, fields)
		return err
	})
	return out, changes, err
}

func deleteServer(ctx context.Context, s *store.Store, name string, expect int64) error {
	return s.Tx(ctx, func(tx *store.Tx) error { return tx.DeleteServer(ctx, name, expect) })
}

func purge(ctx context.Context, s *store.Store, org string, ev *auditv1.Event) (int, error) {
	var n int
	err := s.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = tx.PurgeOrganization(ctx, org); err == nil && n > 0 && ev != nil {
			tx.Audit(ev)
		}
		return err
	})
	return n, err
}

func TestServers(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			a, err := create(ctx, s, srv("github", "com.acme/github"), "r1", nil)
			if err != nil || a.Revision != 1 || a.Repository["source"] != "github" {
				t.Fatalf("create = %+v, %v", a, err)
			}
			if again, err := create(ctx, s, srv("github", "com.acme/github"), "r1", nil); err != nil || again.Name != a.Name || again.Revision != 1 {
				t.Fatalf("idempotent retry = %v, %v", again, err)
			}
			if _, err := create(ctx, s, srv("github2", "com.acme/github"), "", nil); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Fatalf("duplicate server name = %v", err)
			}
			if _, err := create(ctx, s, srv("github", "com.acme/other"), "", nil); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Fatalf("duplicate id = %v", err)
			}
			for i := 0; i < 5; i++ {
				if _, err := create(ctx, s, srv(fmt.Sprintf("s%d", i), fmt.Sprintf("com.acme/s%d", i)), "", nil); err != nil {
					t.Fatal(err)
				}
			}
			page, err := s.Read().Servers(ctx, store.ServerQuery{Organization: "acme", Limit: 3})
			if err != nil || len(page) != 3 || page[0].Name != "orgs/acme/servers/github" {
				t.Fatalf("page = %v, %v", page, err)
			}
			rest, _ := s.Read().Servers(ctx, store.ServerQuery{Organization: "acme", Limit: 10, After: page[2].Name})
			if len(rest) != 3 {
				t.Fatalf("rest = %v", rest)
			}
			if found, _ := s.Read().Servers(ctx, store.ServerQuery{Organization: "acme", Limit: 10, Search: "GITHUB"}); len(found) != 1 {
				t.Fatalf("search = %v", found)
			}
			up, changes, err := update(ctx, s, store.Server{Name: a.Name, Title: "GitHub", Description: "ignored"}, []string{"title"}, a.Revision)
			if err != nil || up.Title != "GitHub" || up.Description != "" || up.Revision != 2 || up.ServerName != "com.acme/github" {
				t.Fatalf("update = %+v, %v", up, err)
			}
			if len(changes) != 1 || changes[0].GetField() != "title" {
				t.Fatalf("changes = %v, want title only", changes)
			}
			if _, _, err := update(ctx, s, store.Server{Name: a.Name, Title: "x"}, []string{"title"}, a.Revision); !errors.Is(err, errs.ErrEtagMismatch) {
				t.Fatalf("stale update = %v", err)
			}
			if _, _, err := update(ctx, s, store.Server{Name: a.Name, Title: "x"}, []string{"server_name"}, 0); !errors.Is(err, errs.ErrInvalidArgument) {
				t.Fatalf("update of an immutable field = %v", err)
			}
			if _, _, err := update(ctx, s, store.Server{Name: "orgs/acme/servers/nope"}, []string{"title"}, 0); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("update of a missing server = %v", err)
			}
			if err := deleteServer(ctx, s, a.Name, 1); !errors.Is(err, errs.ErrEtagMismatch) {
				t.Fatalf("stale delete = %v", err)
			}
			if err := deleteServer(ctx, s, a.Name, 0); err != nil {
				t.Fatal(err)
			}
			if err := deleteServer(ctx, s, a.Name, 0); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("second delete = %v", err)
			}
			if _, err := s.Read().Server(ctx, a.Name); !errors.Is(err, errs.ErrNotFound) {
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
			a, err := create(ctx, s, srv("github", "com.acme/github"), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			res := make(chan error, 6)
			for i := 0; i < 6; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					_, _, err := update(ctx, s, store.Server{Name: a.Name, Title: fmt.Sprint(i)}, []string{"title"}, a.Revision)
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
			if _, err := create(ctx, s, srv("github", "com.acme/github"), "", ev); err != nil {
				t.Fatal(err)
			}
			if outboxRows() != 1 || woken != 1 {
				t.Fatalf("after a commit: %d outbox rows, relay woken %d times; want 1 and 1", outboxRows(), woken)
			}
			// Refused (the name is taken): neither the change nor its event.
			ev = outbox.NewEvent(ctx, "acme", "registry.server.create", "orgs/acme/servers/github")
			if _, err := create(ctx, s, srv("github", "com.acme/github"), "", ev); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Fatalf("duplicate = %v", err)
			}
			if outboxRows() != 1 || woken != 1 {
				t.Fatalf("after a rollback: %d outbox rows, relay woken %d times; want 1 and 1", outboxRows(), woken)
			}
			// A unit that fails after recording its event leaves nothing.
			boom := errors.New("boom")
			err := s.Tx(ctx, func(tx *store.Tx) error {
				if _, err := tx.InsertServer(ctx, srv("later", "com.acme/later"), ""); err != nil {
					return err
				}
				tx.Audit(outbox.NewEvent(ctx, "acme", "registry.server.create", "orgs/acme/servers/later"))
				return boom
			})
			if !errors.Is(err, boom) || outboxRows() != 1 || woken != 1 {
				t.Fatalf("failed unit = %v: %d outbox rows, woken %d", err, outboxRows(), woken)
			}
			if _, err := s.Read().Server(ctx, "orgs/acme/servers/later"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("a rolled back insert is visible: %v", err)
			}
			// Purging an organization is one unit too, idempotent, and
			// leaves an organization whose id extends it alone.
			if _, err := create(ctx, s, store.Server{Name: "orgs/acme2/servers/github", Organization: "acme2", ServerName: "com.acme2/github"}, "", nil); err != nil {
				t.Fatal(err)
			}
			n, err := purge(ctx, s, "acme", outbox.NewEvent(ctx, "acme", "registry.organization.purge", "orgs/acme"))
			if err != nil || n != 1 {
				t.Fatalf("purge = %d, %v", n, err)
			}
			if n, err := purge(ctx, s, "acme", outbox.NewEvent(ctx, "acme", "registry.organization.purge", "orgs/acme")); err != nil || n != 0 {
				t.Fatalf("second purge = %d, %v", n, err)
			}
			if _, err := s.Read().Server(ctx, "orgs/acme/servers/github"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("a purged server: %v", err)
			}
			if _, err := s.Read().Server(ctx, "orgs/acme2/servers/github"); err != nil {
				t.Fatalf("purging acme removed acme2's server: %v", err)
			}
			if outboxRows() != 2 {
				t.Fatalf("outbox rows after the purges = %d, want 2 (a no-op purge records nothing)", outboxRows())
			}
		})
	}
}
