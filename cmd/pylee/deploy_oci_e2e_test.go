package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pyleeai/pylee/services/deploy/ocitest"
)

// TestDeployOCIThroughGateway: a version whose package is an OCI image is
// pinned, run as a container through the Docker Engine API with its
// secret injected, and called through the MCP gateway; the status names
// the oci runtime, and its log never shows the value.
func TestDeployOCIThroughGateway(t *testing.T) {
	cli := ocitest.Engine(t)
	const image = "pylee-test/echo-oci"
	ocitest.TestServerImage(t, cli, image+":1.0.0")
	u := startUp(t, "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	doc := fmt.Sprintf(`{"name":"com.acme/echo","description":"Echo in a container","version":"1.0.0",
		"packages":[{"registryType":"oci","identifier":%q,"version":"1.0.0","transport":{"type":"stdio"},
		"environmentVariables":[{"name":"API_KEY","isRequired":true,"isSecret":true},{"name":"TEST_SERVER_VERSION","value":"1.0.0"}]}]}`, image)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	const canary = "sk-oci-canary-33d1"
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, fmt.Sprintf(`{"value":%q}`, canary), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	st := u.waitDeployment(t, path, "served the image", phaseIs("PHASE_SERVING"))
	if st["runtime"] != "oci" || st["version"] != "1.0.0" {
		t.Fatalf("serving status: %v", st)
	}
	cs, err := gatewaySession(t, u.rest+"/mcp/acme/prod/echo", u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs, "env", map[string]any{"name": "API_KEY"}); got != canary {
		t.Fatalf("the secret did not reach the container: %q", got)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "from a container"}); got != "1.0.0:from a container" {
		t.Fatalf("echo = %q", got)
	}
	logs := u.expect(t, "GET", path+":logs", u.token, "", 200)
	if s := fmt.Sprint(logs.body); strings.Contains(s, canary) {
		t.Fatalf("the log shows the secret: %v", logs.body)
	}
}
