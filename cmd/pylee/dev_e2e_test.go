package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// deniedRe finds a refused call in protojson output (whose spacing
// varies on purpose).
var deniedRe = regexp.MustCompile(`"outcome":\s+"denied"`)

// TestDev: pylee dev runs a server under development (a script) through
// the deploy service, behind the gateway: its declared secret is resolved
// and injected, a caller bound on one tool lists and calls exactly that
// one, calls are audited; editing the script restarts it and the next call
// reaches the new process.
func TestDev(t *testing.T) {
	bin := buildTestServer(t)
	// pylee up allows the command runtime by default: no flag.
	u := startUp(t, "--deploy-discover-interval", "100ms", "--deploy-health-interval", "200ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"dev-api-key-51"}`, 200)
	cfgDir := t.TempDir()
	t.Setenv("PYLEE_CONFIG_DIR", cfgDir)
	if out, errOut, code := u.cli("login", "--api-url", u.rest, "--token", u.token, "--org", "acme"); code != 0 {
		t.Fatalf("pylee login: %s%s", out, errOut)
	}
	work := t.TempDir()
	script := filepath.Join(work, "server.sh")
	writeScript := func(version string) {
		body := fmt.Sprintf("#!/bin/sh\nexport TEST_SERVER_VERSION=%s\nexec %s\n", version, bin)
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeScript("1.0.0")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dev := exec.CommandContext(ctx, pyleeBinary(t), "dev", "--server", "echo-dev", "--secret", "API_KEY", "--", "./server.sh")
	dev.Dir = work
	dev.Env = append(os.Environ(), "PYLEE_CONFIG_DIR="+cfgDir)
	var stderr strings.Builder
	dev.Stderr = &stderr
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = dev.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	await := func(what *regexp.Regexp) []string {
		t.Helper()
		timeout := time.After(90 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("pylee dev ended before %q; stderr:\n%s", what, stderr.String())
				}
				if m := what.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("pylee dev never printed %q; stderr:\n%s", what, stderr.String())
			}
		}
	}
	url := await(regexp.MustCompile(`MCP URL: (\S+)`))[1]
	if url != u.rest+"/mcp/acme/dev/echo-dev" {
		t.Fatalf("MCP URL = %s", url)
	}
	await(regexp.MustCompile(`connect: pylee connect vscode --org acme --registry dev --server echo-dev`))
	await(regexp.MustCompile(`^watching `))

	cs, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "one"}); got != "1.0.0:one" {
		t.Fatalf("echo = %q", got)
	}
	if got := callText(t, cs, "env", map[string]any{"name": "API_KEY"}); got != "dev-api-key-51" {
		t.Fatalf("the declared secret did not arrive: %q", got)
	}

	// Per-tool authorization as in production.
	agent := u.saToken(t, "acme", "agent", "roles/user", "orgs/acme/servers/echo-dev/tools/echo")
	acs, err := gatewaySession(t, url, agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, acs); fmt.Sprint(got) != "[echo]" {
		t.Fatalf("the agent's tools = %v", got)
	}
	if _, err := acs.CallTool(context.Background(), &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "API_KEY"}}); err == nil {
		t.Fatal("the agent called a tool it is not bound on")
	}

	// Edit the script: restarted, the next session's call reaches v2.
	writeScript("2.0.0")
	await(regexp.MustCompile(`restarted$`))
	cs2, err := gatewaySession(t, url, u.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs2, "echo", map[string]any{"text": "two"}); got != "2.0.0:two" {
		t.Fatalf("echo after the edit = %q", got)
	}

	// Audit: the calls, the agent's refusal among them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := u.cli("audit", "list", "--org", "acme", "--action", "tools.call", "-o", "json")
		if strings.Contains(out, "orgs/acme/registries/dev/servers/echo-dev/tools/echo") && deniedRe.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the development server's calls are not in the audit log:\n%.3000s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
