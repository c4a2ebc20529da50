package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPObservedTools: a version published without tools records the
// tools its server first lists through the gateway (once, audited, shown
// by GetVersion), and the drift guard then holds the server to them; a
// registry that requires recorded tools refuses to pin such a version,
// and the gateway serves no tool of one pinned before the setting.
func TestMCPObservedTools(t *testing.T) {
	bin := buildTestServer(t)
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	control := filepath.Join(t.TempDir(), "control.json")
	if err := os.WriteFile(control, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=strict", u.token, `{"requireRecordedTools":true}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	doc := testServerDoc(bin, "1.0.0", control)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	const version = "/v1/orgs/acme/servers/echo/versions/1.0.0"
	if v := u.expect(t, "GET", version, u.token, "", 200).body; v["toolsObservedTime"] != nil || len(asList(v["observedTools"])) != 0 {
		t.Fatalf("a version never served has observed tools: %v", v)
	}

	// The strict registry does not take a version without tools.
	r := u.expect(t, "PUT", "/v1/orgs/acme/registries/strict/entries/echo", u.token, `{"version":"1.0.0"}`, 400)
	if !strings.Contains(fmt.Sprint(r.body), "requires recorded tools") {
		t.Fatalf("strict pin refused with %v", r.body)
	}
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, "/v1/orgs/acme/registries/prod/deployments/echo", "served", phaseIs("PHASE_SERVING"))
	url := u.rest + "/mcp/acme/prod/echo"

	// An agent bound on one tool connects first: the gateway lists the
	// server itself to decide, and records that listing.
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/servers/echo/tools/echo")
	cs, err := gatewaySession(t, url, agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, cs); fmt.Sprint(got) != "[echo]" {
		t.Fatalf("the agent's tools = %v", got)
	}
	v := u.expect(t, "GET", version, u.token, "", 200).body
	var observed []string
	for _, tl := range asList(v["observedTools"]) {
		observed = append(observed, fmt.Sprint(tl.(map[string]any)["name"]))
	}
	sort.Strings(observed)
	if v["toolsObservedTime"] == nil || fmt.Sprint(observed) != "[count echo env pid]" || len(asList(v["tools"])) != 0 {
		t.Fatalf("after the first listing the version shows %v", v)
	}
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		return e["action"] == "registry.version.tools_observed" && e["resource"] == "orgs/acme/servers/echo/versions/1.0.0" &&
			strings.Contains(fmt.Sprint(e["metadata"]), "echo")
	})

	// The admin sees all four; then the server changes echo without a new
	// version: drift, measured against the recorded listing.
	admin, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, admin); fmt.Sprint(got) != "[count echo env pid]" {
		t.Fatalf("admin's tools = %v", got)
	}
	if err := os.WriteFile(control, []byte(`{"description":"Echoes, and more."}`), 0o600); err != nil {
		t.Fatal(err)
	}
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
	// The first listing stays what was recorded.
	v2 := u.expect(t, "GET", version, u.token, "", 200).body
	if fmt.Sprint(v2["observedTools"]) != fmt.Sprint(v["observedTools"]) || v2["toolsObservedTime"] != v["toolsObservedTime"] {
		t.Fatalf("the recorded listing changed: %v", v2["observedTools"])
	}

	// A registry that starts requiring recorded tools after the pin: the
	// gateway serves nothing of the version.
	u.expect(t, "PATCH", "/v1/orgs/acme/registries/prod?update_mask=require_recorded_tools", u.token, `{"requireRecordedTools":true}`, 200)
	waitFor(t, "the gateway applying require_recorded_tools", func() bool {
		s, err := gatewaySession(t, url, u.token, nil)
		if err != nil {
			return false
		}
		defer s.Close()
		return len(toolNames(t, s)) == 0
	})
	s, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "pid", Arguments: map[string]any{}}); err == nil ||
		!strings.Contains(err.Error(), "requires recorded tools") {
		t.Fatalf("calling a tool of a version without published tools in a strict registry: %v", err)
	}
}

// waitFor polls ok for up to 20 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}
