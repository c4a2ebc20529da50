package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// TestMCPStatelessUpstream: a remote server of protocol 2026-07-28 without
// sessions (the Go SDK's stateless streamable HTTP) behind the gateway.
// Clients of 2026-07-28 (server/discover, no session) and of 2025-06-18
// (sessions the gateway keeps on its side) list and call; progress comes
// before the result; per-tool authorization applies; the 2026-07-28
// headers are checked against the body; the upstream never sees a
// client's token.
func TestMCPStatelessUpstream(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "stateless", Version: "1.0.0"}, nil)
	srv.AddTool(&mcp.Tool{Name: "echo", Description: "Echoes its text.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"text": map[string]any{"type": "string"}}}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct {
				Text string `json:"text"`
			}
			_ = json.Unmarshal(req.Params.Arguments, &args)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "stateless:" + args.Text}}}, nil
		})
	srv.AddTool(&mcp.Tool{Name: "stream", Description: "Sends progress, then answers.", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if tok := req.Params.GetProgressToken(); tok != nil {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2})
			}
			time.Sleep(50 * time.Millisecond)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	var mu sync.Mutex
	var seen []string // what reached the upstream: Authorization and protocol headers
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+"|"+r.Header.Get("MCP-Protocol-Version")+"|"+r.Header.Get("Mcp-Session-Id"))
		mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	defer upstream.Close()

	u := startUp(t, "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=stateless", u.token, `{"serverName":"com.acme/stateless"}`, 200)
	doc, _ := structpb.NewStruct(map[string]any{"name": "com.acme/stateless", "description": "a stateless server", "version": "1.0.0",
		"remotes": []any{map[string]any{"type": "streamable-http", "url": upstream.URL}}})
	object, _ := structpb.NewStruct(map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}})
	plain, _ := structpb.NewStruct(map[string]any{"type": "object"})
	if _, err := registryv1.NewRegistryServiceClient(u.conn(t)).CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{
		Parent: "orgs/acme/servers/stateless", Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: doc, Tools: []*registryv1.Tool{
			{Name: "echo", Description: "Echoes its text.", InputSchema: object},
			{Name: "stream", Description: "Sends progress, then answers.", InputSchema: plain}}}}); err != nil {
		t.Fatal(err)
	}
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/stateless", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, "/v1/orgs/acme/registries/prod/deployments/stateless", "served", phaseIs("PHASE_SERVING"))
	url := u.rest + "/mcp/acme/prod/stateless"

	for _, pv := range []string{"2026-07-28", "2025-06-18"} {
		t.Run(pv, func(t *testing.T) {
			progress := make(chan float64, 4)
			c := mcp.NewClient(&mcp.Implementation{Name: "stateless-e2e"}, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress <- r.Params.Progress }})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{u.token, tr}},
				DisableStandaloneSSE: true}, &mcp.ClientSessionOptions{ProtocolVersion: pv})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != pv {
				t.Fatalf("negotiated %s, want %s", got, pv)
			}
			if got := toolNames(t, cs); fmt.Sprint(got) != "[echo stream]" {
				t.Fatalf("tools = %v", got)
			}
			if got := callText(t, cs, "echo", map[string]any{"text": pv}); got != "stateless:"+pv {
				t.Fatalf("echo = %q", got)
			}
			params := &mcp.CallToolParams{Name: "stream", Arguments: map[string]any{}}
			params.SetProgressToken("p")
			if r, err := cs.CallTool(ctx, params); err != nil || r.Content[0].(*mcp.TextContent).Text != "done" {
				t.Fatalf("stream = %v, %v", r, err)
			}
			if len(progress) != 1 {
				t.Fatalf("%d progress notifications before the result, want 1", len(progress))
			}
		})
	}

	// A caller bound on one tool lists and calls exactly it, at 2026-07-28.
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/servers/stateless/tools/echo")
	c := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{agent, tr}},
		DisableStandaloneSSE: true}, &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := toolNames(t, cs); fmt.Sprint(got) != "[echo]" {
		t.Fatalf("the agent's tools = %v", got)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "stream", Arguments: map[string]any{}}); err == nil ||
		!strings.Contains(err.Error(), "tools.invoke") {
		t.Fatalf("the agent calling stream: %v", err)
	}

	// Raw 2026-07-28 requests: Mcp-Method and Mcp-Name must match the body.
	raw := func(method, name, body string) (int, string) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+u.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", method)
		if name != "" {
			req.Header.Set("Mcp-Name", name)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// A 2026-07-28 request carries its protocol version, client and
	// capabilities in _meta.
	call := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"raw"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{}}}}`
	if code, body := raw("tools/call", "echo", call); code != 200 || !strings.Contains(body, "stateless:raw") {
		t.Fatalf("a raw 2026-07-28 call: %d %s", code, body)
	}
	if code, body := raw("tools/call", "stream", call); code != 400 || !strings.Contains(body, "Mcp-Name") {
		t.Fatalf("Mcp-Name naming another tool: %d %s", code, body)
	}
	if code, body := raw("tools/list", "", call); code != 400 || !strings.Contains(body, "Mcp-Method") {
		t.Fatalf("Mcp-Method naming another method: %d %s", code, body)
	}

	// The upstream saw no client token and no gateway session id.
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("nothing reached the upstream")
	}
	for _, s := range seen {
		if strings.Contains(s, u.token) || strings.Contains(s, agent) || strings.Contains(s, "Bearer") {
			t.Fatalf("the upstream saw a client credential: %q", s)
		}
	}
}
