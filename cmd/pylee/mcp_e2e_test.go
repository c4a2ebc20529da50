package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// testServerTools are the tools the Go SDK test server lists, as a
// version records them.
func testServerTools(t testing.TB) []*registryv1.Tool {
	t.Helper()
	obj := func(props map[string]any) *structpb.Struct {
		m := map[string]any{"type": "object"}
		if props != nil {
			m["properties"] = props
		}
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	str := map[string]any{"type": "string"}
	return []*registryv1.Tool{
		{Name: "echo", Description: "Echoes its text.", InputSchema: obj(map[string]any{"text": str})},
		{Name: "env", Description: "Returns an environment variable.", InputSchema: obj(map[string]any{"name": str})},
		{Name: "pid", Description: "Returns its process id.", InputSchema: obj(nil)},
		{Name: "count", Description: "Counts to n, with progress.", InputSchema: obj(map[string]any{"n": map[string]any{"type": "integer"}})},
	}
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}

// gatewaySession connects the Go SDK client to an MCP URL of the gateway.
func gatewaySession(t *testing.T, url, token string, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := mcp.NewClient(&mcp.Implementation{Name: "pylee-e2e"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{token, tr}}}, nil)
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	sort.Strings(out)
	return out
}

// TestMCPGatewayEndToEnd: a tool call through /mcp/{org}/{registry}/{server}
// with the Go SDK client: authenticated, authorized per tool, routed to the
// deployed instance, streamed (progress before the result), with the
// registry's read-only policy, the drift guard, sessions bound to their
// caller, another tenant refused, and the OAuth resource-server metadata.
func TestMCPGatewayEndToEnd(t *testing.T) {
	bin := buildTestServer(t)
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	control := filepath.Join(t.TempDir(), "control.json")
	if err := os.WriteFile(control, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs?organization_id=globex", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=ro", u.token, `{"toolPolicy":"TOOL_POLICY_READ_ONLY"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	var doc map[string]any
	if err := json.Unmarshal([]byte(testServerDoc(bin, "1.0.0", control)), &doc); err != nil {
		t.Fatal(err)
	}
	sj, _ := structpb.NewStruct(doc)
	rc := registryv1.NewRegistryServiceClient(u.conn(t))
	if _, err := rc.CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/echo",
		Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: sj, Tools: testServerTools(t)}}); err != nil {
		t.Fatal(err)
	}
	for _, reg := range []string{"prod", "ro"} {
		u.expect(t, "PUT", "/v1/orgs/acme/registries/"+reg+"/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
		u.waitDeployment(t, "/v1/orgs/acme/registries/"+reg+"/deployments/echo", "served", phaseIs("PHASE_SERVING"))
	}
	url := u.rest + "/mcp/acme/prod/echo"

	// The admin sees and calls every tool; progress comes before the result.
	progress := make(chan float64, 10)
	admin, err := gatewaySession(t, url, u.token, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		progress <- r.Params.Progress
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, admin); fmt.Sprint(got) != "[count echo env pid]" {
		t.Fatalf("admin's tools = %v", got)
	}
	if got := callText(t, admin, "echo", map[string]any{"text": "hi"}); got != "1.0.0:hi" {
		t.Fatalf("echo through the gateway = %q", got)
	}
	params := &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"n": 3}}
	params.SetProgressToken("p1")
	if r, err := admin.CallTool(context.Background(), params); err != nil || r.Content[0].(*mcp.TextContent).Text != "3" {
		t.Fatalf("count = %v, %v", r, err)
	}
	if len(progress) != 3 {
		t.Fatalf("%d progress notifications, want 3", len(progress))
	}

	// Cancellation travels to the server: a long count stopped by the
	// client ends in the server (its log says so).
	cctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = admin.CallTool(cctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"n": 500}})
	cancel()
	if err == nil {
		t.Fatal("a cancelled call answered")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(fmt.Sprint(u.expect(t, "GET", "/v1/orgs/acme/registries/prod/deployments/echo:logs", u.token, "", 200).body), "count cancelled") {
		if time.Now().After(deadline) {
			t.Fatal("the server never saw the cancellation")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Each protocol version a client may speak, initialized by hand.
	for _, pv := range []string{"2025-06-18", "2025-11-25"} {
		rawProtocol(t, url, u.token, pv)
	}

	// The MCP Inspector's CLI mode, a client of its own: list and call.
	inspectorLists(t, url, u.token)

	// A service account bound on one tool lists and calls exactly it.
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/servers/echo/tools/echo")
	cs, err := gatewaySession(t, url, agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, cs); fmt.Sprint(got) != "[echo]" {
		t.Fatalf("the agent's tools = %v", got)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "a"}); got != "1.0.0:a" {
		t.Fatalf("the agent's echo = %q", got)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "API_KEY"}}); err == nil ||
		!strings.Contains(err.Error(), "tools.invoke") {
		t.Fatalf("the agent calling env: %v", err)
	}
	// The session is still usable after a refusal (HTTP 200, JSON-RPC error).
	if got := callText(t, cs, "echo", map[string]any{"text": "b"}); got != "1.0.0:b" {
		t.Fatalf("after a refusal: %q", got)
	}

	// The read-only registry: the test server annotates no tool readOnly.
	ro, err := gatewaySession(t, u.rest+"/mcp/acme/ro/echo", u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, ro); len(got) != 0 {
		t.Fatalf("read-only registry lists %v", got)
	}
	if _, err := ro.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil ||
		!strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a call in the read-only registry: %v", err)
	}

	// Authentication: 401 with the resource metadata; the metadata names
	// the resource; another tenant and a stolen session are refused.
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	hc := &http.Client{Transport: plain}
	resp, err := hc.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantMeta := u.rest + "/.well-known/oauth-protected-resource/mcp/acme/prod/echo"
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+wantMeta+`"`) {
		t.Fatalf("without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	mr, err := hc.Get(wantMeta)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_ = json.NewDecoder(mr.Body).Decode(&meta)
	mr.Body.Close()
	if meta["resource"] != url || len(meta["authorization_servers"].([]any)) != 1 {
		t.Fatalf("protected-resource metadata: %v", meta)
	}
	globex := u.saToken(t, "globex", "intruder", "roles/admin", "orgs/globex")
	if _, err := gatewaySession(t, url, globex, nil); err == nil {
		t.Fatal("another organization's token connected")
	}
	stolen := admin.ID()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+agent)
	req.Header.Set("Mcp-Session-Id", stolen)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if r, err := hc.Do(req); err != nil || r.StatusCode != 403 {
		t.Fatalf("another caller's session id: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	bad, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	bad.Header.Set("Authorization", "Bearer "+u.token)
	bad.Header.Set("Mcp-Session-Id", "forged-session-id")
	if r, err := hc.Do(bad); err != nil || r.StatusCode != 404 {
		t.Fatalf("a forged session id: %v %v", r, err)
	} else {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	for _, o := range []string{"https://evil.example"} {
		r2, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		r2.Header.Set("Authorization", "Bearer "+u.token)
		r2.Header.Set("Origin", o)
		if r, err := hc.Do(r2); err != nil || r.StatusCode != 403 {
			t.Fatalf("origin %s: %v %v", o, r, err)
		} else {
			r.Body.Close()
		}
	}

	// Drift: the server changes a tool's description at run time; the
	// tool is hidden and not callable.
	if err := os.WriteFile(control, []byte(`{"description":"Echoes, and more."}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _ = admin.CallTool(context.Background(), &mcp.CallToolParams{Name: "pid", Arguments: map[string]any{}})
	_, _ = admin.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}) // makes it change
	if got := toolNames(t, admin); fmt.Sprint(got) != "[count env pid]" {
		t.Fatalf("tools after drift = %v", got)
	}
	if _, err := admin.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil ||
		!strings.Contains(err.Error(), "drifted") {
		t.Fatalf("calling a drifted tool: %v", err)
	}
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		return e["action"] == "tools.drift" && strings.Contains(fmt.Sprint(e["metadata"]), "description changed")
	})

	// Every call is in the audit log: the allowed ones and the refused.
	agentName := "orgs/acme/serviceAccounts/agent"
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		md, _ := e["metadata"].(map[string]any)
		return e["action"] == "tools.call" && fmt.Sprint(e["actor"]) != "" && strings.Contains(fmt.Sprint(e["actor"]), agentName) &&
			md["tool"] == "echo" && md["result"] == "ok" && md["version"] == "1.0.0" && md["estimated_tokens"] != ""
	})
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		md, _ := e["metadata"].(map[string]any)
		return e["action"] == "tools.call" && e["outcome"] == "denied" && md["tool"] == "env" && strings.Contains(fmt.Sprint(e["actor"]), agentName)
	})
	out, _, code := u.cli("audit", "list", "--org", "acme", "--action", "tools.call")
	if code != 0 || !strings.Contains(out, "tools.call") || strings.Contains(out, u.token) {
		t.Fatalf("pylee audit list --action tools.call:\n%s", out)
	}
}

// conn is a gRPC connection to u, closed with the test.
func (u *upInstance) conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// inspectorLists drives the MCP Inspector's CLI (tools/node_modules, from
// tools/package.json) against url: tools/list, then a tools/call.
func inspectorLists(t *testing.T, url, token string) {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join("..", "..", "tools", "node_modules", ".bin", "mcp-inspector"))
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no MCP Inspector at %s: run make tools (npm ci in tools/)", bin)
		}
		t.Logf("skipping the MCP Inspector part: no %s (make tools installs it; it runs in CI)", bin)
		return
	}
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--cli", url, "--transport", "http", "--header", "Authorization: Bearer " + token}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mcp-inspector %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("--method", "tools/list"); !strings.Contains(out, `"echo"`) || !strings.Contains(out, `"count"`) {
		t.Fatalf("inspector tools/list:\n%s", out)
	}
	if out := run("--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=from-inspector"); !strings.Contains(out, "1.0.0:from-inspector") {
		t.Fatalf("inspector tools/call:\n%s", out)
	}
}

// TestMCPGatewayCanary: a canary rollout judged on the calls that go
// through the gateway: a version failing half its calls is rolled back by
// the deploy service, sessions on it end (404), and sessions started
// after land on the previous version.
func TestMCPGatewayCanary(t *testing.T) {
	bin := buildTestServer(t)
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	dir := t.TempDir()
	ok, bad := filepath.Join(dir, "ok.json"), filepath.Join(dir, "bad.json")
	_ = os.WriteFile(ok, []byte(`{}`), 0o600)
	_ = os.WriteFile(bad, []byte(`{"fail_rate":0.5}`), 0o600)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token,
		`{"rolloutPolicy":{"strategy":"STRATEGY_CANARY","steps":[{"weightPercent":50,"pause":"300s"}],"maxErrorRate":0.2}}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	for v, control := range map[string]string{"1.0.0": ok, "1.1.0": bad} {
		u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, v, control)), 200)
	}
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, path, "served 1.0.0", phaseIs("PHASE_SERVING"))
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.1.0"}`, 200)
	u.waitDeployment(t, path, "started its canary", func(m map[string]any) bool { return armWeights(m)["1.1.0"] == 50 })

	url := u.rest + "/mcp/acme/prod/echo"
	versions := map[string]int{}
	var canary []*mcp.ClientSession
	for i := 0; i < 60 && (len(canary) < 3 || versions["1.0.0"] == 0); i++ {
		cs, err := gatewaySession(t, url, u.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The version answers in the text; the canary fails half its
		// calls, so ask until one answers.
		for try := 0; try < 8; try++ {
			r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "v"}})
			if err != nil {
				continue
			}
			v := strings.TrimSuffix(r.Content[0].(*mcp.TextContent).Text, ":v")
			versions[v]++
			if v == "1.1.0" {
				canary = append(canary, cs)
			}
			break
		}
	}
	if versions["1.0.0"] == 0 || len(canary) == 0 {
		t.Fatalf("sessions by version: %v", versions)
	}
	// Drive the canary sessions: half their calls fail; the gateway
	// reports it and the deploy service rolls back.
	for _, cs := range canary {
		for i := 0; i < 10; i++ {
			_, _ = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "c"}})
		}
	}
	st := u.waitDeployment(t, path, "rolled back on the gateway's reports", phaseIs("PHASE_ROLLED_BACK"))
	if !strings.Contains(fmt.Sprint(st["reason"]), "error rate") {
		t.Fatalf("rolled back for: %v", st["reason"])
	}
	u.waitEntryVersion(t, "/v1/orgs/acme/registries/prod/entries/echo", "1.0.0")
	// New sessions land on 1.0.0.
	for i := 0; i < 6; i++ {
		cs, err := gatewaySession(t, url, u.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := callText(t, cs, "echo", map[string]any{"text": "n"}); got != "1.0.0:n" {
			t.Fatalf("a session started after the rollback answered %q", got)
		}
	}
	// A canary session ends: its next request is refused (404), so its
	// client starts anew.
	time.Sleep(6 * time.Second) // the gateway's upstream cache (5 s)
	if _, err := canary[0].CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil {
		t.Fatal("a session on the rolled back version still works")
	}
}

// rawProtocol speaks MCP streamable HTTP by hand at protocol version pv:
// initialize, initialized, tools/list with the session and version
// headers, DELETE.
func rawProtocol(t *testing.T, url, token, pv string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	post := func(body, session string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("MCP-Protocol-Version", pv)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+pv+`","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`, "")
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || session == "" || !strings.Contains(body, `"protocolVersion":"`+pv+`"`) {
		t.Fatalf("initialize at %s: %d %q %s", pv, resp.StatusCode, session, body)
	}
	if resp, body := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, session); resp.StatusCode != 202 {
		t.Fatalf("initialized at %s: %d %s", pv, resp.StatusCode, body)
	}
	if resp, body := post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, session); resp.StatusCode != 200 || !strings.Contains(body, `"name":"echo"`) {
		t.Fatalf("tools/list at %s: %d %s", pv, resp.StatusCode, body)
	}
	req, _ := http.NewRequest("DELETE", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", pv)
	if r, err := hc.Do(req); err != nil || r.StatusCode >= 300 {
		t.Fatalf("DELETE at %s: %v %v", pv, r, err)
	} else {
		r.Body.Close()
	}
}
