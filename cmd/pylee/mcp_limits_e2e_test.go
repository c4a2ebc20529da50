package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// TestMCPSlowClients: slow clients of /mcp hold nothing for long. A body
// trickled to it is cut at the read timeout; a client that stops reading
// a stream of progress notifications (80 MB on offer) is cut off after the
// write stall, the call is audited as such, the server's work is
// cancelled, and other callers are served meanwhile.
func TestMCPSlowClients(t *testing.T) {
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms",
		"--read-timeout", "1s", "--mcp-write-stall", "1s")
	url := servedEcho(t, u, `{}`)
	addr := strings.TrimPrefix(u.rest, "http://")
	const pv = "2025-06-18"

	// A body trickled byte by byte is cut once the read timeout passes.
	t.Run("trickled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /mcp/acme/prod/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
			"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{", u.token)
		start := time.Now()
		for closed := false; !closed; {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("a body trickled for %s is still being read", time.Since(start).Round(time.Second))
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				break
			}
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			buf := make([]byte, 512)
			if _, err := conn.Read(buf); errors.Is(err, io.EOF) || err == nil {
				closed = true // answered (408/400) or closed
			}
		}
	})

	// A session, then a call whose stream the client never reads.
	hc := &http.Client{}
	post := func(body, session string) *http.Response {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+u.token)
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
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+pv+`","capabilities":{},"clientInfo":{"name":"slow","version":"1"}}}`, "")
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || session == "" {
		t.Fatalf("initialize: %d %q", resp.StatusCode, session)
	}
	post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, session)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 80 MB of progress on offer, far beyond what the kernels' buffers
	// hold: the gateway's writes block once they are full.
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"count","arguments":{"n":5000,"delay_ms":0,"pad":16384},` +
		`"_meta":{"progressToken":"slow"}}}`
	fmt.Fprintf(conn, "POST /mcp/acme/prod/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\nMCP-Protocol-Version: %s\r\nContent-Length: %d\r\n\r\n%s",
		u.token, session, pv, len(body), body)

	// Others are served while the stalled stream waits to be cut.
	cs, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "meanwhile"}); got != "1.0.0:meanwhile" {
		t.Fatalf("echo while a client stalls = %q", got)
	}

	// The stalled call is cut off and audited as such.
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		md, _ := e["metadata"].(map[string]any)
		return e["action"] == "tools.call" && md["tool"] == "count" && strings.Contains(fmt.Sprint(md["detail"]), "stopped reading")
	})
	// The server's work ended: the count was cancelled, not run to 5,000.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(fmt.Sprint(u.expect(t, "GET", "/v1/orgs/acme/registries/prod/deployments/echo:logs", u.token, "", 200).body), "count cancelled") {
		if time.Now().After(deadline) {
			t.Fatal("the stalled client's count was never cancelled in the server")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// What the client can still read (what the kernels hold of the
	// closed connection) ends well before the 80 MB offered.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, bufio.NewReader(conn))
	if n >= 5000*16384 {
		t.Fatalf("the stalled client received the whole stream (%d bytes)", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stalled client's connection is still open after %d bytes", n)
	}
	cs.Close()
}

// servedEcho makes organization acme, registry prod (the JSON body reg)
// and the Go SDK test server echo pinned and served there, with its tools
// published; it returns the server's MCP URL.
func servedEcho(t *testing.T, u *upInstance, reg string) string {
	t.Helper()
	bin := buildTestServer(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, reg, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	var doc map[string]any
	if err := json.Unmarshal([]byte(testServerDoc(bin, "1.0.0", "")), &doc); err != nil {
		t.Fatal(err)
	}
	sj, _ := structpb.NewStruct(doc)
	if _, err := registryv1.NewRegistryServiceClient(u.conn(t)).CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{
		Parent: "orgs/acme/servers/echo", Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: sj, Tools: testServerTools(t)}}); err != nil {
		t.Fatal(err)
	}
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, "/v1/orgs/acme/registries/prod/deployments/echo", "served", phaseIs("PHASE_SERVING"))
	return u.rest + "/mcp/acme/prod/echo"
}

// TestMCPGatewayLimits: a registry's McpLimits, inherited by a child
// registry's servers: requests per minute per caller and per server
// (429 with Retry-After and a JSON-RPC error, audited, counted), sessions
// per caller (429 until one ends), the largest message (413).
func TestMCPGatewayLimits(t *testing.T) {
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	url := servedEcho(t, u, `{"mcpLimits":{"requestsPerMinutePerCaller":60,"sessionsPerCaller":2,"maxRequestBytes":4096}}`)
	reg := u.expect(t, "GET", "/v1/orgs/acme/registries/prod", u.token, "", 200).body
	if lim := fmt.Sprint(reg["effective"].(map[string]any)["mcpLimits"]); !strings.Contains(lim, "requestsPerMinutePerCaller:60") ||
		!strings.Contains(lim, "sessionsPerCaller:2") || !strings.Contains(lim, "maxRequestBytes:4096") {
		t.Fatalf("effective limits: %s", lim)
	}
	const pv = "2025-06-18"
	type answer struct {
		status     int
		retryAfter string
		body       string
		session    string
	}
	post := func(token, session, body string) answer {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("MCP-Protocol-Version", pv)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), resp.Header.Get("Mcp-Session-Id")}
	}
	initialize := func(token string) answer {
		a := post(token, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+pv+`","capabilities":{},"clientInfo":{"name":"l","version":"1"}}}`)
		if a.status == 200 {
			post(token, a.session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		}
		return a
	}
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/registries/prod")

	// Sessions per caller: two, then 429 until one ends; another caller
	// is not counted against.
	s1, s2 := initialize(u.token), initialize(u.token)
	if s1.status != 200 || s2.status != 200 {
		t.Fatalf("the first two sessions: %d %d", s1.status, s2.status)
	}
	if a := initialize(u.token); a.status != 429 || a.retryAfter == "" || !strings.Contains(a.body, "sessions_per_caller") ||
		!strings.Contains(a.body, `"code":-32029`) {
		t.Fatalf("a third session: %+v", a)
	}
	if a := initialize(agent); a.status != 200 {
		t.Fatalf("another caller's session: %+v", a)
	}
	del, _ := http.NewRequest("DELETE", url, nil)
	del.Header.Set("Authorization", "Bearer "+u.token)
	del.Header.Set("Mcp-Session-Id", s2.session)
	del.Header.Set("MCP-Protocol-Version", pv)
	if r, err := http.DefaultClient.Do(del); err != nil || r.StatusCode >= 300 {
		t.Fatalf("DELETE: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	if a := initialize(u.token); a.status != 200 {
		t.Fatalf("a session after one ended: %+v", a)
	}

	// The largest message.
	big := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 5000) + `"}}}`
	if a := post(u.token, s1.session, big); a.status != 413 || !strings.Contains(a.body, "max_request_bytes") {
		t.Fatalf("a 5 KB message at max_request_bytes 4096: %+v", a)
	}

	// Requests per minute per caller: 60, a burst of 10 (the initializes
	// and notifications above spent some). Calls go through until the
	// bucket is empty, then 429 with Retry-After and a JSON-RPC error.
	limited := answer{}
	for i := 0; i < 30 && limited.status == 0; i++ {
		a := post(u.token, s1.session, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"r"}}}`, 10+i))
		switch a.status {
		case 200:
		case 429:
			limited = a
		default:
			t.Fatalf("call %d: %+v", i, a)
		}
	}
	if limited.status != 429 || limited.retryAfter == "" || !strings.Contains(limited.body, "requests_per_minute_per_caller") ||
		!strings.Contains(limited.body, `"code":-32029`) {
		t.Fatalf("over the rate: %+v", limited)
	}
	// The agent has a bucket of its own.
	sa := initialize(agent)
	if a := post(agent, sa.session, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}`); a.status != 200 {
		t.Fatalf("another caller while the admin is limited: %+v", a)
	}
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		md, _ := e["metadata"].(map[string]any)
		return e["action"] == "tools.call" && e["outcome"] == "denied" && strings.Contains(fmt.Sprint(md["detail"]), "rate limited")
	})
	mresp, err := http.Get(u.rest + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	metrics := string(mb)
	for _, want := range []string{`pylee_mcp_limited_total{limit="requests_per_minute_per_caller",registry="orgs/acme/registries/prod",server="echo"}`,
		`pylee_mcp_limited_total{limit="sessions_per_caller",registry="orgs/acme/registries/prod",server="echo"}`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}
