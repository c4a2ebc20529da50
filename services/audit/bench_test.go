package audit_test

import (
	"context"
	"testing"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/audit"
)

// BenchmarkAppend measures durable, hash-chained appends (committed before
// returning) on SQLite and PostgreSQL, one event per transaction versus
// batches of 100, as the relay sends them. The metric is events/s.
func BenchmarkAppend(b *testing.B) {
	dbs := map[string]func(b *testing.B) string{
		"sqlite":   func(b *testing.B) string { return dbtest.MigratedSQLiteURL(b, audit.MigrateStore) },
		"postgres": func(b *testing.B) string { return dbtest.PostgresURL(b, "auditbench", audit.MigrateStore) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{1, 100} {
			b.Run(name+"/batch"+itoa(batch), func(b *testing.B) {
				st, err := audit.OpenStore(context.Background(), dbs[name](b))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				ctx := context.Background()
				b.ResetTimer()
				for done := 0; done < b.N; done += batch {
					n := min(batch, b.N-done)
					evs := make([]*auditv1.Event, n)
					for i := range evs {
						evs[i] = newEvent("acme", "orgs.organization.update", done+i)
					}
					if _, _, err := st.Append(ctx, evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

func itoa(n int) string {
	if n == 1 {
		return "1"
	}
	return "100"
}
