package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
)

// BenchmarkGetOrganization reads one organization through gRPC and through
// the REST facade of the same `pylee up`, so `make bench` can print the
// ratio of the two rates. Calls run in parallel (8 per core).
func BenchmarkGetOrganization(b *testing.B) {
	u := startUp(b)
	req, _ := http.NewRequest("POST", u.rest+"/v1/orgs?organization_id=bench", strings.NewReader(`{"displayName":"Bench"}`))
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("create: %v %v", resp, err)
	}
	resp.Body.Close()

	b.Run("grpc", func(b *testing.B) {
		conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		c := orgsv1.NewOrgsServiceClient(conn)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+u.token)
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})

	b.Run("rest", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}} // as wrk: no gzip
		defer client.CloseIdleConnections()
		url := u.rest + "/v1/orgs/bench"
		auth := "Bearer " + u.token
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", auth)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// BenchmarkRegistryList lists 100 entries (with their server.json) from a
// registry of 10,000 on PostgreSQL, through gRPC, the REST facade and the
// official MCP Registry API of one `pylee up`; then reads one version.
func BenchmarkRegistryList(b *testing.B) {
	u := startUp(b, "--database-url", dbtest.PostgresURL(b, "bench", migrateAll))
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := registryv1.NewRegistryServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+u.token)
	orgs := orgsv1.NewOrgsServiceClient(conn)
	if _, err := orgs.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "bench", Organization: &orgsv1.Organization{}}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateRegistry(ctx, &registryv1.CreateRegistryRequest{Parent: "orgs/bench", RegistryId: "production", Registry: &registryv1.Registry{}}); err != nil {
		b.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id := fmt.Sprintf("s%05d", i)
				if _, err := c.CreateServer(ctx, &registryv1.CreateServerRequest{Parent: "orgs/bench", ServerId: id,
					Server: &registryv1.Server{ServerName: "com.bench/" + id}}); err != nil {
					errc <- err
					return
				}
				doc := fmt.Sprintf(`{"name":"com.bench/%s","description":"server %s","version":"1.0.0","packages":[{"registryType":"npm","identifier":"@bench/%s","version":"1.0.0","transport":{"type":"stdio"},"environmentVariables":[{"name":"TOKEN","isSecret":true,"value":"${secret:TOKEN}"}]}]}`, id, id, id)
				if _, err := c.ImportServerJson(ctx, &registryv1.ImportServerJsonRequest{Parent: "orgs/bench/servers/" + id, ServerJson: doc}); err != nil {
					errc <- err
					return
				}
				if _, err := c.PinEntry(ctx, &registryv1.PinEntryRequest{Name: "orgs/bench/registries/production/entries/" + id, Version: "1.0.0"}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	b.Run("grpc", func(b *testing.B) {
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := c.ListEntries(ctx, &registryv1.ListEntriesRequest{Parent: "orgs/bench/registries/production", PageSize: 100, View: registryv1.EntryView_ENTRY_VIEW_FULL})
				if err != nil || len(r.Entries) != 100 {
					b.Errorf("list: %v", err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	httpBench := func(path string) func(b *testing.B) {
		return func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}} // as wrk: no gzip
			defer client.CloseIdleConnections()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", u.rest+path, nil)
					req.Header.Set("Authorization", "Bearer "+u.token)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		}
	}
	b.Run("rest", httpBench("/v1/orgs/bench/registries/production/entries?page_size=100&view=ENTRY_VIEW_FULL"))
	b.Run("official", httpBench("/registries/bench/production/v0.1/servers?limit=100"))
	b.Run("official-latest", httpBench("/registries/bench/production/v0.1/servers/com.bench%2Fs00042/versions/latest"))
	b.Run("getversion-grpc", func(b *testing.B) {
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				name := fmt.Sprintf("orgs/bench/servers/s%05d/versions/1.0.0", (i*7919)%n)
				if _, err := c.GetVersion(ctx, &registryv1.GetVersionRequest{Name: name}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}
