package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// overheadUpstream is a Go SDK streamable HTTP server in this process:
// echo answers at once; stream sends a progress notification at once,
// then answers 20 ms later (the first byte of an event stream).
func overheadUpstream() *httptest.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "remote-echo", Version: "1.0.0"}, nil)
	srv.AddTool(&mcp.Tool{Name: "echo", Description: "Echoes its text.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"text": map[string]any{"type": "string"}}}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "1.0.0:x"}}}, nil
		})
	srv.AddTool(&mcp.Tool{Name: "stream", Description: "Sends progress, then answers.", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if tok := req.Params.GetProgressToken(); tok != nil {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2})
			}
			time.Sleep(20 * time.Millisecond)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	return httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
}

func overheadTools(b testing.TB) []*registryv1.Tool {
	stream, _ := structpb.NewStruct(map[string]any{"type": "object"})
	return append(testServerTools(b)[:1], &registryv1.Tool{Name: "stream", Description: "Sends progress, then answers.", InputSchema: stream})
}

// BenchmarkMCPOverhead measures, against the same upstream called
// directly, in one run: the delay the gateway adds to the first byte of a
// tool's event stream (a progress notification sent at once), and the
// throughput at 32 sessions through a gateway replica that records every
// call in the audit log against one that has no audit service. Run with
// -benchtime 1x (make bench-mcp).
func BenchmarkMCPOverhead(b *testing.B) {
	remote := overheadUpstream()
	defer remote.Close()
	dir := b.TempDir()
	common := []string{"--service-token", "pyl_overhead_bench_service_token_0123456789", "--page-token-key",
		"overhead-bench-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--migrate"}
	backGRPC, backHTTP := freeAddr(b), freeAddr(b)
	startProc(b, backHTTP, filepath.Join(dir, "back.log"), append([]string{"serve", "--target=orgs,registry,secrets,deploy,audit",
		"--grpc-addr", backGRPC, "--http-addr", backHTTP, "--data-dir", filepath.Join(dir, "back"), "--deploy-discover-interval", "100ms"}, common...)...)
	gateways := map[string]string{}
	for _, mode := range []string{"audit-on", "audit-off"} {
		g, h := freeAddr(b), freeAddr(b)
		args := []string{"serve", "--target=gateway", "--grpc-addr", g, "--http-addr", h, "--data-dir", filepath.Join(dir, mode),
			"--orgs-addr", backGRPC, "--registry-addr", backGRPC, "--secrets-addr", backGRPC, "--deploy-addr", backGRPC}
		if mode == "audit-on" {
			args = append(args, "--audit-addr", backGRPC)
		}
		startProc(b, h, filepath.Join(dir, mode+".log"), append(args, common...)...)
		gateways[mode] = "http://" + h
	}
	tok, err := os.ReadFile(filepath.Join(dir, "back", "admin.token"))
	if err != nil {
		b.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	u := &upInstance{rest: gateways["audit-on"], grpc: backGRPC, token: token, logs: &syncBuffer{}}
	benchREST(b, u, "POST", "/v1/orgs?organization_id=acme", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/registries?registry_id=prod", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/servers?server_id=remote", `{"serverName":"com.acme/remote"}`, 200)
	rdoc, _ := structpb.NewStruct(map[string]any{"name": "com.acme/remote", "description": "remote echo", "version": "1.0.0",
		"remotes": []any{map[string]any{"type": "streamable-http", "url": remote.URL}}})
	conn, err := grpc.NewClient(backGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := registryv1.NewRegistryServiceClient(conn).CreateVersion(bearer(token), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/remote",
		Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: rdoc, Tools: overheadTools(b)}}); err != nil {
		b.Fatal(err)
	}
	benchREST(b, u, "PUT", "/v1/orgs/acme/registries/prod/entries/remote", `{"version":"1.0.0"}`, 200)
	benchWait(b, u, "/v1/orgs/acme/registries/prod/deployments/remote", func(m map[string]any) bool { return m["phase"] == "PHASE_SERVING" })

	b.Run("first-sse-byte", func(b *testing.B) {
		direct := firstByte(b, remote.URL, "")
		gw := firstByte(b, gateways["audit-on"]+"/mcp/acme/prod/remote", token)
		b.ReportMetric(float64(direct[len(direct)/2].Microseconds()), "direct-p50-µs")
		b.ReportMetric(float64(gw[len(gw)/2].Microseconds()), "gateway-p50-µs")
		b.ReportMetric(float64((gw[len(gw)/2] - direct[len(direct)/2]).Microseconds()), "added-p50-µs")
		b.ReportMetric(float64((gw[len(gw)*9/10] - direct[len(direct)*9/10]).Microseconds()), "added-p90-µs")
		fmt.Printf("%s: first event-stream byte: direct p50 %v p90 %v; gateway p50 %v p90 %v (+%v at p50)\n", b.Name(),
			direct[len(direct)/2], direct[len(direct)*9/10], gw[len(gw)/2], gw[len(gw)*9/10], gw[len(gw)/2]-direct[len(direct)/2])
	})
	b.Run("audit-on-off", func(b *testing.B) {
		// Alternated, twice each, so drift of the machine falls on both.
		total := map[string]float64{}
		for range 2 {
			for _, mode := range []string{"audit-on", "audit-off"} {
				total[mode] += saturate(b, gateways[mode]+"/mcp/acme/prod/remote", token)
			}
		}
		on, off := total["audit-on"]/2, total["audit-off"]/2
		b.ReportMetric(on, "audit-on-calls/s")
		b.ReportMetric(off, "audit-off-calls/s")
		b.ReportMetric(on/off, "on/off")
		fmt.Printf("%s: 32 sessions: audit on %.0f calls/s, off %.0f calls/s (%.3f)\n", b.Name(), on, off, on/off)
	})
}

// firstByte opens a session on url and measures, 300 times, the time from
// sending a tools/call of stream (with a progress token) to the first
// event of its answer; sorted.
func firstByte(b *testing.B, url, token string) []time.Duration {
	b.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(sid, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	resp = post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	_ = resp.Body.Close()
	var out []time.Duration
	for i := 1; i <= 330; i++ {
		start := time.Now()
		resp := post(sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"stream","arguments":{},"_meta":{"progressToken":"p%d"}}}`, i, i))
		br := bufio.NewReader(resp.Body)
		var first time.Duration
		for {
			line, err := br.ReadBytes('\n')
			if first == 0 && bytes.HasPrefix(line, []byte("data:")) {
				first = time.Since(start)
				if !bytes.Contains(line, []byte("notifications/progress")) {
					b.Fatalf("the first event is not the progress notification: %s", line)
				}
			}
			if err != nil {
				break
			}
		}
		_ = resp.Body.Close()
		if first == 0 {
			b.Fatalf("no event in the answer (HTTP %d)", resp.StatusCode)
		}
		if i > 30 { // the first ones warm up
			out = append(out, first)
		}
	}
	// The session ends, upstream too (the gateway forwards the DELETE).
	del, _ := http.NewRequest(http.MethodDelete, url, nil)
	del.Header.Set("Mcp-Session-Id", sid)
	if token != "" {
		del.Header.Set("Authorization", "Bearer "+token)
	}
	if resp, err := hc.Do(del); err == nil {
		_ = resp.Body.Close()
	}
	hc.CloseIdleConnections()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// saturate returns the calls per second of 32 sessions calling echo on
// url as fast as they can for 3 s.
func saturate(b *testing.B, url, token string) float64 {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	var n atomic.Int64
	var wg sync.WaitGroup
	sessions := make([]*mcp.ClientSession, 32)
	for i := range sessions {
		c := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil)
		cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true,
			HTTPClient: &http.Client{Transport: bearerTransport{token, tr}}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		sessions[i] = cs
	}
	stop := time.Now().Add(3 * time.Second)
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.Close()
			for time.Now().Before(stop) {
				if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / 3
}
