package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// BenchmarkUpdateOrganization measures org writes with the audit outbox
// (the event written in the same transaction) and without, on SQLite and
// PostgreSQL; `make bench` prints the ratio (goal >= 0.9).
func BenchmarkUpdateOrganization(b *testing.B) {
	dbs := map[string]func(b *testing.B) string{
		"sqlite":   func(b *testing.B) string { return dbtest.MigratedSQLiteURL(b, store.Migrate) },
		"postgres": func(b *testing.B) string { return dbtest.PostgresURL(b, "orgsbench", store.Migrate) },
	}
	for _, db := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"outbox-off", "outbox-on"} {
			b.Run(db+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				s, err := store.Open(ctx, dbs[db](b))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if _, err := s.CreateOrganization(ctx, store.Organization{ID: "acme"}, "", nil); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var ev *auditv1.Event
					if mode == "outbox-on" {
						ev = &auditv1.Event{Id: uuid.Must(uuid.NewV7()).String(), Organization: "acme", Action: "orgs.organization.update",
							Resource: "orgs/acme", Outcome: "ok", Actor: &auditv1.Actor{Principal: "users/admin", Kind: "user"}}
					}
					org := store.Organization{ID: "acme", DisplayName: fmt.Sprint("v", i)}
					if _, err := s.UpdateOrganization(ctx, org, []string{store.FieldDisplayName}, 0, ev); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}
