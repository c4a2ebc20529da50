package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoRegistry sets up registry dev of acme with the Go SDK test server
// as echo, and a service account "dev" bound on it whose token and name
// it returns.
func echoRegistry(t *testing.T, u *upInstance) (token, tokenName string) {
	t.Helper()
	bin := buildTestServer(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=dev", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"connect-api-key"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token,
		fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, "1.0.0", "")), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/dev/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, "/v1/orgs/acme/registries/dev/deployments/echo", "served", phaseIs("PHASE_SERVING"))
	u.expect(t, "POST", "/v1/orgs/acme/serviceAccounts?service_account_id=dev", u.token, `{}`, 200)
	r := u.expect(t, "POST", "/v1/orgs/acme/serviceAccounts/dev/tokens", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/serviceAccounts/dev"}`, 200)
	return r.body["secret"].(string), r.body["name"].(string)
}

// TestConnectConfigs: pylee connect for each client prints a valid JSON
// entry that runs pylee proxy, a deep link that decodes to the same entry,
// and no token; the REST API's :connect gives the same; hostile requests
// get a 4xx naming the field.
func TestConnectConfigs(t *testing.T) {
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=dev", u.token, `{}`, 200)
	// As an outside check runs it: no --org, no login; the only
	// organization is the one.
	t.Setenv("PYLEE_CONFIG_DIR", t.TempDir())
	if out, errOut, code := u.cli("connect", "vscode", "--registry", "dev"); code != 0 || !strings.Contains(out, "vscode:mcp/install?") {
		t.Fatalf("pylee connect vscode --registry dev (exit %d):\n%s%s", code, out, errOut)
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=globex", u.token, `{}`, 200)
	if _, errOut, code := u.cli("connect", "vscode", "--registry", "dev"); code == 0 || !strings.Contains(errOut, "--org") {
		t.Fatalf("with two organizations and no --org: %s", errOut)
	}
	u.expect(t, "POST", "/v1/orgs/globex/registries?registry_id=dev", u.token, `{}`, 200)
	wantArgs := []any{"proxy", "--api-url", u.rest, "--org", "acme", "--registry", "dev"}
	for _, client := range []string{"vscode", "cursor", "claude", "claude-code"} {
		out, errOut, code := u.cli("connect", client, "--org", "acme", "--registry", "dev", "-o", "json")
		if code != 0 {
			t.Fatalf("pylee connect %s (exit %d): %s%s", client, code, out, errOut)
		}
		if strings.Contains(out, u.token) || strings.Contains(out, "pyl_") {
			t.Fatalf("pylee connect %s prints a token:\n%s", client, out)
		}
		var cfg struct {
			URL       string          `json:"url"`
			EntryName string          `json:"entry_name"`
			Entry     json.RawMessage `json:"entry"`
			DeepLink  string          `json:"deep_link"`
			Command   string          `json:"command"`
			File, Key string
		}
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("pylee connect %s -o json: %v\n%s", client, err, out)
		}
		var entry map[string]any
		if err := json.Unmarshal(cfg.Entry, &entry); err != nil {
			t.Fatalf("%s entry is not JSON: %v", client, err)
		}
		if cfg.URL != u.rest+"/mcp/acme/dev" || cfg.EntryName != "pylee-dev" || entry["command"] != "pylee" || !reflect.DeepEqual(entry["args"], wantArgs) {
			t.Fatalf("%s config: %+v, entry %v", client, cfg, entry)
		}
		switch client {
		case "vscode":
			raw, ok := strings.CutPrefix(cfg.DeepLink, "vscode:mcp/install?")
			if !ok {
				t.Fatalf("vscode link: %s", cfg.DeepLink)
			}
			decoded, err := url.QueryUnescape(raw)
			if err != nil {
				t.Fatal(err)
			}
			var linked map[string]any
			if err := json.Unmarshal([]byte(decoded), &linked); err != nil {
				t.Fatalf("the vscode link's JSON: %v", err)
			}
			if linked["name"] != "pylee-dev" {
				t.Fatalf("the vscode link names %v", linked["name"])
			}
			delete(linked, "name")
			if !reflect.DeepEqual(linked, entry) {
				t.Fatalf("the vscode link decodes to %v, the entry is %v", linked, entry)
			}
		case "cursor":
			link, err := url.Parse(cfg.DeepLink)
			if err != nil || link.Scheme != "cursor" || link.Host != "anysphere.cursor-deeplink" || link.Path != "/mcp/install" || link.Query().Get("name") != "pylee-dev" {
				t.Fatalf("cursor link: %s (%v)", cfg.DeepLink, err)
			}
			b, err := base64.StdEncoding.DecodeString(link.Query().Get("config"))
			if err != nil {
				t.Fatal(err)
			}
			var linked map[string]any
			if err := json.Unmarshal(b, &linked); err != nil || !reflect.DeepEqual(linked, entry) {
				t.Fatalf("the cursor link decodes to %s, the entry is %v (%v)", b, entry, err)
			}
		case "claude-code":
			if !strings.HasPrefix(cfg.Command, "claude mcp add --transport stdio pylee-dev -- pylee proxy --api-url "+u.rest) {
				t.Fatalf("claude-code command: %s", cfg.Command)
			}
		case "claude":
			if cfg.File != "claude_desktop_config.json" || cfg.Key != "mcpServers" {
				t.Fatalf("claude: %+v", cfg)
			}
		}
		// The REST API's answer is the same entry.
		r := u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client="+client, u.token, "", 200)
		var restEntry map[string]any
		if err := json.Unmarshal([]byte(r.body["configJson"].(string)), &restEntry); err != nil || !reflect.DeepEqual(restEntry, entry) {
			t.Fatalf("REST :connect for %s: %v (%v), CLI: %v", client, r.body, err, entry)
		}
		if link, _ := r.body["deepLink"].(string); link != cfg.DeepLink {
			t.Fatalf("REST deep link %v, CLI %s", r.body["deepLink"], cfg.DeepLink)
		}
	}
	// --write merges into an existing file, keeping what it had.
	file := filepath.Join(t.TempDir(), "claude_desktop_config.json")
	if err := os.WriteFile(file, []byte(`{"mcpServers":{"other":{"command":"x"}},"theme":"dark"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := u.cli("connect", "claude", "--org", "acme", "--registry", "dev", "--write", "--file", file); code != 0 {
		t.Fatalf("connect --write: %s%s", out, errOut)
	}
	var written struct {
		MCPServers map[string]map[string]any `json:"mcpServers"`
		Theme      string                    `json:"theme"`
	}
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &written); err != nil || written.Theme != "dark" || written.MCPServers["other"]["command"] != "x" ||
		written.MCPServers["pylee-dev"]["command"] != "pylee" {
		t.Fatalf("written file: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), `"other"`) || !strings.Contains(string(b), `"theme": "dark"`) || !strings.Contains(string(b), `"pylee-dev"`) || strings.Contains(string(b), u.token) {
		t.Fatalf("written file:\n%s", b)
	}
	// The plain text output names the link.
	if out, _, code := u.cli("connect", "vscode", "--org", "acme", "--registry", "dev"); code != 0 || !strings.Contains(out, "vscode:mcp/install?") {
		t.Fatalf("pylee connect vscode:\n%s", out)
	}

	// The HTTP entry: the MCP URL itself, no proxy, no token.
	r := u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=vscode&mode=http&server=", u.token, "", 200)
	var httpEntry map[string]any
	if err := json.Unmarshal([]byte(r.body["configJson"].(string)), &httpEntry); err != nil || httpEntry["type"] != "http" ||
		httpEntry["url"] != u.rest+"/mcp/acme/dev" {
		t.Fatalf("the HTTP entry: %v (%v)", r.body, err)
	}

	// Hostile and wrong requests: 4xx naming the field, nothing else.
	r = u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=evil", u.token, "", 400)
	if !strings.Contains(fmt.Sprint(r.body), "client") {
		t.Fatalf("unknown client: %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=vscode&server=Bad%20Id", u.token, "", 400)
	u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=vscode&server=absent", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/acme/registries/nope:connect?client=vscode", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=%ff%fe", u.token, "", 400)
	u.expect(t, "POST", "/v1/orgs/acme/registries/dev:connect?client=vscode", u.token, "{}", 405)
	outsider := u.saToken(t, "globex", "spy", "roles/user", "orgs/globex")
	u.expect(t, "GET", "/v1/orgs/acme/registries/dev:connect?client=vscode", outsider, "", 404)
	if _, errOut, code := u.cli("connect", "notepad", "--org", "acme", "--registry", "dev"); code == 0 || !strings.Contains(errOut, "unknown client") {
		t.Fatalf("pylee connect notepad: %s", errOut)
	}
}

// TestProxy: pylee proxy, started as an editor starts it (a process
// speaking stdio), serves the aggregated endpoint with the credential of
// the user's login: the Go SDK client and the MCP Inspector's CLI list and
// call through it; its log never shows the token; a revoked login gives a
// clear error.
func TestProxy(t *testing.T) {
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "200ms", "--auth-cache-ttl", "100ms")
	token, tokenName := echoRegistry(t, u)
	cfgDir := t.TempDir()
	t.Setenv("PYLEE_CONFIG_DIR", cfgDir)
	if out, errOut, code := u.cli("login", "--api-url", u.rest, "--token", token, "--org", "acme"); code != 0 {
		t.Fatalf("pylee login: %s%s", out, errOut)
	}
	bin := pyleeBinary(t)
	env := append(os.Environ(), "PYLEE_CONFIG_DIR="+cfgDir)
	var stderr strings.Builder
	cmd := exec.Command(bin, "proxy", "--api-url", u.rest, "--org", "acme", "--registry", "dev")
	cmd.Env, cmd.Stderr = env, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "editor"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to pylee proxy: %v\n%s", err, stderr.String())
	}
	if got := toolNames(t, cs); !strings.Contains(fmt.Sprint(got), "echo_echo") {
		t.Fatalf("tools through the proxy: %v", got)
	}
	if got := callText(t, cs, "echo_echo", map[string]any{"text": "via proxy"}); got != "1.0.0:via proxy" {
		t.Fatalf("echo_echo through the proxy = %q", got)
	}
	_ = cs.Close()
	if strings.Contains(stderr.String(), token) {
		t.Fatalf("the proxy's log shows the token:\n%s", stderr.String())
	}

	// The MCP Inspector's CLI, starting the proxy itself.
	inspector, _ := filepath.Abs(filepath.Join("..", "..", "tools", "node_modules", ".bin", "mcp-inspector"))
	if _, err := os.Stat(inspector); err == nil {
		run := func(args ...string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			c := exec.CommandContext(ctx, inspector, append([]string{"--cli", "-e", "PYLEE_CONFIG_DIR=" + cfgDir, bin, "proxy", "--api-url", u.rest,
				"--org", "acme", "--registry", "dev"}, args...)...)
			out, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("mcp-inspector %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := run("--method", "tools/list"); !strings.Contains(out, `"echo_echo"`) {
			t.Fatalf("inspector tools/list through the proxy:\n%s", out)
		}
		if out := run("--method", "tools/call", "--tool-name", "echo_echo", "--tool-arg", "text=inspected"); !strings.Contains(out, "1.0.0:inspected") {
			t.Fatalf("inspector tools/call through the proxy:\n%s", out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("no MCP Inspector at %s: run make tools", inspector)
	} else {
		t.Logf("SKIPPED the MCP Inspector part outside CI: no %s", inspector)
	}

	// No login, no --org, no token: a local pylee up's admin token and
	// its only organization, as every command falls back to.
	bare := exec.Command(bin, "proxy", "--api-url", u.rest, "--registry", "dev")
	bare.Env = append(os.Environ(), "PYLEE_CONFIG_DIR="+t.TempDir(), "PYLEE_DATA_DIR="+u.dataDir, "PYLEE_TOKEN=")
	var bareErr strings.Builder
	bare.Stderr = &bareErr
	bcs, err := mcp.NewClient(&mcp.Implementation{Name: "editor"}, nil).Connect(ctx, &mcp.CommandTransport{Command: bare}, nil)
	if err != nil {
		t.Fatalf("pylee proxy --registry dev without a login: %v\n%s", err, bareErr.String())
	}
	if got := callText(t, bcs, "echo_echo", map[string]any{"text": "bare"}); got != "1.0.0:bare" {
		t.Fatalf("echo_echo through a bare proxy = %q", got)
	}
	_ = bcs.Close()

	// The login revoked: a clear error, no token in it.
	u.expect(t, "DELETE", "/v1/"+tokenName, u.token, "", 200)
	time.Sleep(300 * time.Millisecond) // the gateway's authentication cache (100 ms)
	stderr.Reset()
	revoked := exec.Command(bin, "proxy", "--api-url", u.rest, "--org", "acme", "--registry", "dev")
	revoked.Env, revoked.Stderr = env, &stderr
	_, err = mcp.NewClient(&mcp.Implementation{Name: "editor"}, nil).Connect(ctx, &mcp.CommandTransport{Command: revoked}, nil)
	if err == nil {
		t.Fatal("the proxy served with a revoked login")
	}
	_ = revoked.Wait()
	if !strings.Contains(stderr.String(), "refused your Pylee login") || strings.Contains(stderr.String(), token) {
		t.Fatalf("the revoked login's error:\n%s", stderr.String())
	}
}
