package secrets

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
)

// BenchmarkResolve measures Resolve on the keyring (SQLite) with 20
// values over four scopes: answered from the resolution cache (hit), and
// read again from the backend (cold: the cache marked stale before every
// call, as a write would), with its audit event each time.
func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	s := newBenchService(b)
	for i := range 20 {
		scope := []string{"orgs/acme", "orgs/acme/registries/prod", "orgs/acme/servers/gh", "orgs/acme/users/u1"}[i%4]
		key := backend.Key{Org: "acme", Scope: scope, Kind: backend.Kind(1 + i%2), Name: fmt.Sprintf("NAME_%d", i)}
		if _, err := s.set(ctx, "bench.set", key, []byte("value"), backend.Any, nil); err != nil {
			b.Fatal(err)
		}
	}
	req := &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/prod", Server: "orgs/acme/servers/gh", User: "users/u1"}
	for _, mode := range []string{"hit", "cold"} {
		b.Run(mode, func(b *testing.B) {
			durs := make([]time.Duration, 0, b.N)
			for b.Loop() {
				if mode == "cold" {
					s.resolved.changed()
					s.resolved.mu.Lock()
					s.resolved.byKey = map[[3]string]*resolution{}
					s.resolved.mu.Unlock()
				}
				start := time.Now()
				resp, err := s.Resolve(ctx, req)
				if err != nil || len(resp.GetValues()) != 20 {
					b.Fatalf("%d values, %v", len(resp.GetValues()), err)
				}
				durs = append(durs, time.Since(start))
			}
			sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resolves/s")
		})
	}
}
