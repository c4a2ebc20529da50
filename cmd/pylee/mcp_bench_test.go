package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// BenchmarkMCPToolCall measures tools/call through the gateway against
// the same upstream (the deployed Go SDK test server behind its bridge)
// called directly, in one run: p50/p99 at a fixed 1,000 calls/s, and
// throughput at 32 concurrent sessions; it reports both and the ratios.
// Run with -benchtime 1x (make bench-mcp).
func BenchmarkMCPToolCall(b *testing.B) {
	bin := buildTestServer(b)
	u := startUp(b, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "5s")
	benchREST(b, u, "POST", "/v1/orgs?organization_id=acme", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/registries?registry_id=prod", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/servers?server_id=echo", `{"serverName":"com.acme/echo"}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", `{"value":"k"}`, 200)
	var doc map[string]any
	_ = json.Unmarshal([]byte(testServerDoc(bin, "1.0.0", "")), &doc)
	sj, _ := structpb.NewStruct(doc)
	tools := testServerTools(b)
	rc := registryv1.NewRegistryServiceClient(u.conn(b))
	if _, err := rc.CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/echo",
		Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: sj, Tools: tools}}); err != nil {
		b.Fatal(err)
	}
	benchREST(b, u, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", `{"version":"1.0.0"}`, 200)
	benchWait(b, u, "/v1/orgs/acme/registries/prod/deployments/echo", func(m map[string]any) bool { return m["phase"] == "PHASE_SERVING" })
	gwToken := u.serviceToken(b, "gateway")
	up, err := deployv1.NewDeployServiceClient(u.conn(b)).ResolveUpstream(bearer(gwToken), &deployv1.ResolveUpstreamRequest{Name: "orgs/acme/registries/prod/deployments/echo"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stdio-bridge", func(b *testing.B) {
		measureMCP(b, up.GetUrl(), gwToken, u.rest+"/mcp/acme/prod/echo", u.token)
	})

	// A remote upstream: a Go SDK streamable HTTP server in this process,
	// pinned as a remote, so the gateway's own cost stands alone.
	srv := mcp.NewServer(&mcp.Implementation{Name: "remote-echo", Version: "1.0.0"}, nil)
	srv.AddTool(&mcp.Tool{Name: "echo", Description: "Echoes its text.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"text": map[string]any{"type": "string"}}}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "1.0.0:x"}}}, nil
		})
	remote := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer remote.Close()
	benchREST(b, u, "POST", "/v1/orgs/acme/servers?server_id=remote", `{"serverName":"com.acme/remote"}`, 200)
	rdoc, _ := structpb.NewStruct(map[string]any{"name": "com.acme/remote", "description": "remote echo", "version": "1.0.0",
		"remotes": []any{map[string]any{"type": "streamable-http", "url": remote.URL}}})
	if _, err := rc.CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/remote",
		Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: rdoc, Tools: tools[:1]}}); err != nil {
		b.Fatal(err)
	}
	benchREST(b, u, "PUT", "/v1/orgs/acme/registries/prod/entries/remote", `{"version":"1.0.0"}`, 200)
	benchWait(b, u, "/v1/orgs/acme/registries/prod/deployments/remote", func(m map[string]any) bool { return m["phase"] == "PHASE_SERVING" })
	b.Run("remote", func(b *testing.B) {
		measureMCP(b, remote.URL, "", u.rest+"/mcp/acme/prod/remote", u.token)
	})
}

// measureMCP measures tools/call on directURL and through gatewayURL.
func measureMCP(b *testing.B, directURL, directToken, gatewayURL, token string) {
	modes := []struct{ name, url, token string }{
		{"direct", directURL, directToken},
		{"gateway", gatewayURL, token},
	}
	type result struct {
		p50, p99   time.Duration
		throughput float64
	}
	results := map[string]result{}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	for _, mode := range modes {
		connect := func() *mcp.ClientSession {
			c := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil)
			cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: mode.url, DisableStandaloneSSE: true,
				HTTPClient: &http.Client{Transport: bearerTransport{mode.token, tr}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return cs
		}
		call := func(cs *mcp.ClientSession) error {
			_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
			return err
		}
		// Fixed rate: 1,000 calls/s for 4 s over 16 sessions.
		pool := make(chan *mcp.ClientSession, 16)
		for i := 0; i < 16; i++ {
			pool <- connect()
		}
		for i := 0; i < 200; i++ { // warm up
			cs := <-pool
			_ = call(cs)
			pool <- cs
		}
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Millisecond)
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			<-tick.C
			cs := <-pool
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if err := call(cs); err != nil {
					b.Error(err)
				}
				d := time.Since(start)
				pool <- cs
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r := result{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
		// Saturation: 32 sessions calling as fast as they can for 4 s.
		var n atomic.Int64
		stop := time.Now().Add(4 * time.Second)
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cs := connect()
				defer cs.Close()
				for time.Now().Before(stop) {
					if err := call(cs); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		r.throughput = float64(n.Load()) / 4
		results[mode.name] = r
		close(pool)
		for cs := range pool {
			_ = cs.Close()
		}
	}
	d, g := results["direct"], results["gateway"]
	b.ReportMetric(float64(d.p99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64(g.p99.Microseconds()), "gateway-p99-µs")
	b.ReportMetric(float64(g.p99)/float64(d.p99), "p99-ratio")
	b.ReportMetric(float64((g.p99 - d.p99).Microseconds()), "p99-added-µs")
	b.ReportMetric(d.throughput, "direct-calls/s")
	b.ReportMetric(g.throughput, "gateway-calls/s")
	b.ReportMetric(g.throughput/d.throughput, "throughput-ratio")
	fmt.Printf("%s: tools/call at 1,000/s: direct p50 %v p99 %v; gateway p50 %v p99 %v (%.2fx, +%v)\n", b.Name(), d.p50, d.p99, g.p50, g.p99,
		float64(g.p99)/float64(d.p99), g.p99-d.p99)
	fmt.Printf("%s: 32 sessions: direct %.0f calls/s, gateway %.0f calls/s (%.2fx)\n", b.Name(), d.throughput, g.throughput, g.throughput/d.throughput)
}
