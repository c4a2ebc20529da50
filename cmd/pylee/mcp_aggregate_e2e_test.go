package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// aggregateRegistry sets up registry dev of acme with three servers: two
// entries of the npm server-everything (every-a, every-b) and the Go SDK
// test server (echo), whose extra tools "get data" and "get_data" collide
// once made valid names. It returns the aggregated endpoint's URL.
func aggregateRegistry(t *testing.T, u *upInstance) string {
	t.Helper()
	bin := buildTestServer(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=dev", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=EVERYTHING_TOKEN", u.token, `{"value":"agg-everything-token"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"agg-api-key"}`, 200)
	for _, id := range []string{"every-a", "every-b"} {
		name := "io.modelcontextprotocol/everything-" + id
		u.expect(t, "POST", "/v1/orgs/acme/servers?server_id="+id, u.token, `{"serverName":"`+name+`"}`, 200)
		doc := strings.Replace(everythingDoc("1.0.0"), `"io.modelcontextprotocol/everything"`, `"`+name+`"`, 1)
		u.expect(t, "POST", "/v1/orgs/acme/servers/"+id+"/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	}
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	doc := fmt.Sprintf(`{"name":"com.acme/echo","description":"Echo","version":"1.0.0","_meta":{"ai.pylee/command":{"command":%q,
		"environmentVariables":[{"name":"API_KEY","isRequired":true,"isSecret":true},{"name":"TEST_SERVER_VERSION","value":"1.0.0"},
		{"name":"TEST_SERVER_EXTRA_TOOLS","value":"get data,get_data,lookup"}]}}}`, bin)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	for _, id := range []string{"every-a", "every-b", "echo"} {
		u.expect(t, "PUT", "/v1/orgs/acme/registries/dev/entries/"+id, u.token, `{"version":"1.0.0"}`, 200)
	}
	for _, id := range []string{"every-a", "every-b", "echo"} {
		u.waitDeployment(t, "/v1/orgs/acme/registries/dev/deployments/"+id, id+" served", func(m map[string]any) bool {
			if m["phase"] == "PHASE_FAILED" || m["phase"] == "PHASE_UNSUPPORTED" {
				t.Fatalf("%s did not start: %v", id, m)
			}
			return m["phase"] == "PHASE_SERVING"
		})
	}
	return u.rest + "/mcp/acme/dev"
}

func needNPX(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("npx"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npx is required in CI")
		}
		t.Skip("SKIPPED outside CI: npx is not installed (the npm runtime needs Node.js)")
	}
}

// TestMCPAggregatedEndpoint: /mcp/{org}/{registry} offers, under names
// made unique by server, exactly the tools of the servers the caller is
// bound to; calls reach the right server; two tools whose valid names
// collide are refused and reported; binding another server sends
// tools/list_changed on the session's stream; the single-server path's
// per-tool authorization and audit apply.
func TestMCPAggregatedEndpoint(t *testing.T) {
	needNPX(t)
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "200ms", "--mcp-list-poll", "200ms")
	url := aggregateRegistry(t, u)

	// The admin sees all three servers.
	admin, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := toolNames(t, admin)
	for _, want := range []string{"every-a_echo", "every-b_echo", "every-a_get-env", "echo_echo", "echo_env", "echo_lookup"} {
		if !slices.Contains(all, want) {
			t.Fatalf("the admin's aggregated tools lack %s: %v", want, all)
		}
	}
	for _, name := range all {
		if strings.HasPrefix(name, "echo_get") {
			t.Fatalf("a colliding name is listed: %v", all)
		}
	}

	// An agent bound to every-a and to echo.
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/servers/every-a")
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/serviceAccounts/agent"}`, 200)
	changed := make(chan struct{}, 10)
	cs, err := gatewaySession(t, url, agent, &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed <- struct{}{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	mine := toolNames(t, cs)
	for _, name := range mine {
		if !strings.HasPrefix(name, "every-a_") && !strings.HasPrefix(name, "echo_") {
			t.Fatalf("the agent sees a tool of a server it is not bound to: %s in %v", name, mine)
		}
	}
	var wantMine []string
	for _, name := range all {
		if strings.HasPrefix(name, "every-a_") || strings.HasPrefix(name, "echo_") {
			wantMine = append(wantMine, name)
		}
	}
	if fmt.Sprint(mine) != fmt.Sprint(wantMine) {
		t.Fatalf("the agent's tools = %v\nwant %v", mine, wantMine)
	}

	// Calls route by the stored mapping.
	if got := callText(t, cs, "echo_echo", map[string]any{"text": "routed"}); got != "1.0.0:routed" {
		t.Fatalf("echo_echo = %q", got)
	}
	if got := callText(t, cs, "every-a_echo", map[string]any{"message": "hi"}); !strings.Contains(got, "hi") {
		t.Fatalf("every-a_echo = %q", got)
	}
	if got := callText(t, cs, "echo_lookup", nil); got != "extra:lookup" {
		t.Fatalf("echo_lookup = %q", got)
	}
	// A collision is refused by name; another server's tool is not known.
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo_get_data"}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("calling a colliding name: %v", err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "every-b_echo", Arguments: map[string]any{"message": "x"}}); err == nil {
		t.Fatal("the agent called a tool of a server it is not bound to")
	}

	// Binding every-b: list_changed on the stream, then its tools.
	select {
	case <-changed:
		t.Fatal("list_changed before anything changed")
	default:
	}
	u.expect(t, "POST", "/v1/orgs/acme/servers/every-b/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/serviceAccounts/agent"}`, 200)
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("no tools/list_changed after a binding was added")
	}
	if got := toolNames(t, cs); !slices.Contains(got, "every-b_echo") {
		t.Fatalf("after the binding: %v", got)
	}
	if got := callText(t, cs, "every-b_echo", map[string]any{"message": "b"}); !strings.Contains(got, "b") {
		t.Fatalf("every-b_echo = %q", got)
	}

	// A caller's open streams are bounded (each polls every server): the
	// client holds one; seven more open, the ninth is refused with 429.
	var streams []*http.Response
	streamTr := &http.Transport{}
	defer func() {
		for _, r := range streams {
			_ = r.Body.Close()
		}
		streamTr.CloseIdleConnections()
	}()
	for i := 0; i < 8; i++ {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+agent)
		req.Header.Set("Mcp-Session-Id", cs.ID())
		req.Header.Set("Accept", "text/event-stream")
		resp, err := (&http.Client{Transport: streamTr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, resp)
		want := http.StatusOK
		if i == 7 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want || (want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "") {
			t.Fatalf("stream %d: HTTP %d, want %d", i+2, resp.StatusCode, want)
		}
	}

	// Audit: the call as the single-server path records it, and the
	// collision.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := u.cli("audit", "list", "--org", "acme", "--action", "tools.call", "-o", "json")
		col, _, _ := u.cli("audit", "list", "--org", "acme", "--action", "tools.collision", "-o", "json")
		if strings.Contains(out, "orgs/acme/registries/dev/servers/echo/tools/echo") && strings.Contains(out, "orgs/acme/serviceAccounts/agent") &&
			strings.Contains(col, "echo_get_data") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit lacks the aggregated call or the collision:\n%.2000s\n%.2000s", out, col)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
