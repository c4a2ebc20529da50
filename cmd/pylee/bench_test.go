package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
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
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
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
