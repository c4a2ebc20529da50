package store

import (
	"context"
	"errors"
	"testing"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// The store's contracts on SQLite and on PostgreSQL.
func TestStoreConformance(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return dbtest.MigratedSQLiteURL(t, Migrate) },
		"postgres": func(t *testing.T) string { return dbtest.PostgresURL(t, "deploy", Migrate) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			committed := 0
			s.AfterCommit(func() { committed++ })

			// SaveDeployment creates, then replaces; Deployments returns by name.
			r := Record{Name: "orgs/a/registries/p/deployments/x", Organization: "a", Registry: "orgs/a/registries/p", Data: []byte(`{"v":1}`)}
			if err := s.Tx(ctx, func(tx *Tx) error { return tx.SaveDeployment(ctx, r) }); err != nil {
				t.Fatal(err)
			}
			r.Data = []byte(`{"v":2}`)
			other := Record{Name: "orgs/a/registries/q/deployments/x", Organization: "a", Registry: "orgs/a/registries/q", Data: []byte(`{}`)}
			if err := s.Tx(ctx, func(tx *Tx) error {
				if err := tx.SaveDeployment(ctx, r); err != nil {
					return err
				}
				return tx.SaveDeployment(ctx, other)
			}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Deployments(ctx)
			if err != nil || len(got) != 2 || got[0].Name != r.Name || string(got[0].Data) != `{"v":2}` {
				t.Fatalf("deployments = %+v, %v", got, err)
			}

			// Cursors: 0 when none, then the last set.
			if c, err := s.Cursor(ctx, "orgs/a/registries/p"); c != 0 || err != nil {
				t.Fatalf("cursor before any = %d, %v", c, err)
			}
			for _, rev := range []int64{3, 7} {
				if err := s.Tx(ctx, func(tx *Tx) error { return tx.SetCursor(ctx, "a", "orgs/a/registries/p", rev) }); err != nil {
					t.Fatal(err)
				}
			}
			if c, _ := s.Cursor(ctx, "orgs/a/registries/p"); c != 7 {
				t.Fatalf("cursor = %d, want 7", c)
			}

			// A unit of work that fails leaves nothing: no record, no event.
			boom := errors.New("boom")
			err = s.Tx(ctx, func(tx *Tx) error {
				tx.Audit(&auditv1.Event{Id: "0190a0a0-0000-7000-8000-000000000001", Organization: "a", Action: "deploy.rollout.start"})
				if err := tx.SaveDeployment(ctx, Record{Name: "orgs/a/registries/p/deployments/y", Organization: "a", Registry: "orgs/a/registries/p", Data: []byte(`{}`)}); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("failed unit of work: %v", err)
			}
			if got, _ := s.Deployments(ctx); len(got) != 2 {
				t.Fatalf("a rolled back save stayed: %+v", got)
			}
			db, _ := s.OutboxDB()
			var events int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_outbox").Scan(&events); err != nil || events != 0 {
				t.Fatalf("outbox rows after a rolled back unit: %d, %v", events, err)
			}
			// A committed one writes its event with it and runs the hooks.
			before := committed
			if err := s.Tx(ctx, func(tx *Tx) error {
				tx.Audit(&auditv1.Event{Id: "0190a0a0-0000-7000-8000-000000000002", Organization: "a", Action: "deploy.rollout.start"})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_outbox").Scan(&events); err != nil || events != 1 || committed != before+1 {
				t.Fatalf("outbox rows = %d (%v), hooks run %d", events, err, committed-before)
			}

			// PurgeRegistry takes that registry's records and cursor only;
			// DeleteDeployment one record.
			if err := s.Tx(ctx, func(tx *Tx) error { return tx.PurgeRegistry(ctx, "orgs/a/registries/p") }); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Deployments(ctx); len(got) != 1 || got[0].Name != other.Name {
				t.Fatalf("after the purge: %+v", got)
			}
			if c, _ := s.Cursor(ctx, "orgs/a/registries/p"); c != 0 {
				t.Fatalf("cursor after the purge = %d", c)
			}
			if err := s.Tx(ctx, func(tx *Tx) error { return tx.DeleteDeployment(ctx, other.Name) }); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Deployments(ctx); len(got) != 0 {
				t.Fatalf("after the delete: %+v", got)
			}
		})
	}
}
