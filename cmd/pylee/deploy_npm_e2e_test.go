package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
)

// everythingVersion is the @modelcontextprotocol/server-everything release
// the npm runtime test runs.
const everythingVersion = "2026.8.31"

func everythingDoc(version string) string {
	return fmt.Sprintf(`{"name":"io.modelcontextprotocol/everything","description":"Everything","version":%q,
		"packages":[{"registryType":"npm","identifier":"@modelcontextprotocol/server-everything","version":%q,
		"transport":{"type":"stdio"},"packageArguments":[{"type":"positional","value":"stdio"}],
		"environmentVariables":[{"name":"EVERYTHING_TOKEN","isRequired":true,"isSecret":true}]}]}`, version, everythingVersion)
}

// TestDeployNPMServerEverything: the real @modelcontextprotocol/server-everything
// from the npm registry runs through the npm runtime (npx), its tools list
// through the bridge, and its get-env tool shows the injected value; the
// deploy process's own environment does not reach it.
func TestDeployNPMServerEverything(t *testing.T) {
	if _, err := exec.LookPath("npx"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npx is required in CI")
		}
		t.Skip("npx is not installed: the npm runtime test needs Node.js (it runs in CI)")
	}
	u := startUp(t, "--deploy-discover-interval", "100ms", "--deploy-health-interval", "200ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=everything", u.token, `{"serverName":"io.modelcontextprotocol/everything"}`, 200)
	for _, v := range []string{"1.0.0", "1.0.1"} {
		u.expect(t, "POST", "/v1/orgs/acme/servers/everything/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, everythingDoc(v)), 200)
	}
	const canary = "npm-canary-token-c0ffee"
	u.expect(t, "POST", "/v1/orgs/acme/servers/everything/secrets?secret_id=EVERYTHING_TOKEN", u.token, fmt.Sprintf(`{"value":%q}`, canary), 200)
	const path = "/v1/orgs/acme/registries/prod/deployments/everything"
	start := time.Now()
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/everything", u.token, `{"version":"1.0.0"}`, 200)
	st := u.waitDeployment(t, path, "served server-everything", func(m map[string]any) bool {
		if m["phase"] == "PHASE_FAILED" || m["phase"] == "PHASE_UNSUPPORTED" {
			t.Fatalf("server-everything did not start: %v", m)
		}
		return m["phase"] == "PHASE_SERVING"
	})
	t.Logf("pin to serving, npm package (first start, download included if not cached): %v", time.Since(start))
	if st["runtime"] != "npm" {
		t.Fatalf("runtime = %v", st["runtime"])
	}
	dc := u.deployClient(t)
	gwToken := u.serviceToken(t, "gateway")
	up, err := dc.ResolveUpstream(bearer(gwToken), &deployv1.ResolveUpstreamRequest{Name: "orgs/acme/registries/prod/deployments/everything"})
	if err != nil {
		t.Fatal(err)
	}
	cs := mcpSession(t, up.GetUrl(), gwToken)
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["echo"] || !names["get-env"] {
		t.Fatalf("server-everything's tools through the bridge: %v", names)
	}
	env := callText(t, cs, "get-env", map[string]any{})
	if !strings.Contains(env, canary) {
		t.Fatalf("get-env does not show the injected value: %.300s", env)
	}
	if strings.Contains(env, "PYLEE_") || strings.Contains(env, "VAULT_") {
		t.Fatalf("the deploy process's environment reached the server: %.500s", env)
	}
	if got := callText(t, cs, "echo", map[string]any{"message": "hi"}); !strings.Contains(got, "hi") {
		t.Fatalf("echo = %q", got)
	}

	// Through the MCP gateway: tools, resources and prompts of the real
	// server, as the admin (tools.invoke on the organization).
	gs, err := gatewaySession(t, u.rest+"/mcp/acme/prod/everything", u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, gs, "echo", map[string]any{"message": "through the gateway"}); !strings.Contains(got, "through the gateway") {
		t.Fatalf("echo through the gateway = %q", got)
	}
	res, err := gs.ListResources(t.Context(), nil)
	if err != nil || len(res.Resources) == 0 {
		t.Fatalf("resources/list through the gateway: %v, %v", res, err)
	}
	if rr, err := gs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: res.Resources[0].URI}); err != nil || len(rr.Contents) == 0 {
		t.Fatalf("resources/read %s through the gateway: %v, %v", res.Resources[0].URI, rr, err)
	}
	prompts, err := gs.ListPrompts(t.Context(), nil)
	if err != nil || len(prompts.Prompts) == 0 {
		t.Fatalf("prompts/list through the gateway: %v, %v", prompts, err)
	}
	for _, p := range prompts.Prompts {
		required := false
		for _, a := range p.Arguments {
			required = required || a.Required
		}
		if required {
			continue
		}
		if gp, err := gs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: p.Name}); err != nil || len(gp.Messages) == 0 {
			t.Fatalf("prompts/get %s through the gateway: %v, %v", p.Name, gp, err)
		}
		break
	}

	// A new version of the same package, now cached: pin to serving.
	start = time.Now()
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/everything", u.token, `{"version":"1.0.1"}`, 200)
	u.waitDeployment(t, path, "served 1.0.1", func(m map[string]any) bool {
		return m["phase"] == "PHASE_SERVING" && armWeights(m)["1.0.1"] == 100
	})
	t.Logf("pin to serving, warm npm package: %v", time.Since(start))
	logs := u.expect(t, "GET", path+":logs", u.token, "", 200)
	if strings.Contains(fmt.Sprint(logs.body), canary) {
		t.Fatalf("the value is in the logs: %v", logs.body)
	}
}
