package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
)

var (
	testServerOnce sync.Once
	testServerPath string
	testServerErr  error
)

// buildTestServer builds the deploy service's Go SDK test server once.
func buildTestServer(t testing.TB) string {
	t.Helper()
	testServerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pylee-testserver")
		if err != nil {
			testServerErr = err
			return
		}
		testServerPath = filepath.Join(dir, "testserver")
		out, err := exec.Command("go", "build", "-o", testServerPath, "github.com/pyleeai/pylee/services/deploy/internal/testserver").CombinedOutput()
		if err != nil {
			testServerErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if testServerErr != nil {
		t.Fatal(testServerErr)
	}
	return testServerPath
}

func (u *upInstance) deployClient(t *testing.T) deployv1.DeployServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return deployv1.NewDeployServiceClient(conn)
}

// testServerDoc is a server.json whose version runs the test server
// through the command runtime, its behaviour read from control.
func testServerDoc(bin, version, control string) string {
	return fmt.Sprintf(`{"name":"com.acme/echo","description":"Echo","version":%q,"_meta":{"ai.pylee/command":{"command":%q,
		"environmentVariables":[{"name":"API_KEY","isRequired":true,"isSecret":true},{"name":"TEST_SERVER_VERSION","value":%q},
		{"name":"PYLEE_TEST_CONTROL","value":%q}]}}}`, version, bin, version, control)
}

// waitDeployment polls the REST status until ok accepts it.
func (u *upInstance) waitDeployment(t *testing.T, path string, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		r := u.do(t, "GET", path, u.token, nil)
		if r.status == 200 {
			last = r.body
			if ok(r.body) {
				return r.body
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("deployment never %s; last status %v", what, last)
	return nil
}

func phaseIs(p string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["phase"] == p }
}

// gatewayHeader lets a test act as the gateway toward instance addresses.
type gatewayHeader struct {
	token string
	base  http.RoundTripper
}

func (g gatewayHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+g.token)
	return g.base.RoundTrip(r)
}

// TestDeployEndToEnd: a registry's pin runs, supervised, through the
// command runtime with the Go SDK test server: missing inputs hold it
// back, a secret set lets it start with the value injected and redacted
// from its log, a healthy version goes through its canary steps, one that
// fails half its calls is rolled back and re-pinned, a rollback to the
// warm version is instant, a killed instance is restarted, and a runtime
// this host lacks is refused by name.
func TestDeployEndToEnd(t *testing.T) {
	bin := buildTestServer(t)
	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms")
	dir := t.TempDir()
	control := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okControl := control("ok.json", `{}`)
	failControl := control("fail.json", `{"fail_rate":0.5}`)

	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token,
		`{"rolloutPolicy":{"strategy":"STRATEGY_CANARY","steps":[{"weightPercent":50,"pause":"1s"}],"maxErrorRate":0.2}}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	for _, v := range []struct{ version, control string }{{"1.0.0", okControl}, {"1.1.0", okControl}, {"1.2.0", failControl}} {
		u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token,
			fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, v.version, v.control)), 200)
	}
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	const name = "orgs/acme/registries/prod/deployments/echo"

	// A required input without a value: named, nothing started.
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	st := u.waitDeployment(t, path, "waited for its inputs", phaseIs("PHASE_MISSING_INPUTS"))
	if fmt.Sprint(st["missingInputs"]) != "[API_KEY]" || len(st["instances"].([]any)) != 0 {
		t.Fatalf("missing inputs status: %v", st)
	}

	// The secret set: the version starts with it.
	const canary = "sk-deploy-canary-5e1f9c"
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, fmt.Sprintf(`{"value":%q}`, canary), 200)
	st = u.waitDeployment(t, path, "served 1.0.0", phaseIs("PHASE_SERVING"))
	if st["runtime"] != "command" || st["version"] != "1.0.0" {
		t.Fatalf("serving status: %v", st)
	}

	// The gateway's view: where to send a session, and the instance
	// answers the gateway's identity only.
	dc := u.deployClient(t)
	gw := bearer(u.serviceToken(t, "gateway"))
	if _, err := dc.ResolveUpstream(bearer(u.token), &deployv1.ResolveUpstreamRequest{Name: name}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ResolveUpstream as a person: %v", err)
	}
	up, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name})
	if err != nil || up.GetVersion() != "1.0.0" || !up.GetServing() {
		t.Fatalf("upstream = %v, %v", up, err)
	}
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	r, err := (&http.Client{Transport: plain}).Post(up.GetUrl(), "application/json", strings.NewReader(`{}`))
	if err != nil || r.StatusCode != 401 {
		t.Fatalf("an instance called without the gateway's credential: %v %v", r, err)
	}
	r.Body.Close()
	cs := mcpSession(t, up.GetUrl(), u.serviceToken(t, "gateway"))
	if got := callText(t, cs, "env", map[string]any{"name": "API_KEY"}); got != canary {
		t.Fatalf("the injected value did not arrive: %q", got)
	}
	logs := u.expect(t, "GET", path+":logs", u.token, "", 200)
	if s := fmt.Sprint(logs.body); strings.Contains(s, canary) || !strings.Contains(s, "API_KEY=[REDACTED]") {
		t.Fatalf("logs: %v", logs.body)
	}

	// A healthy new version goes through its canary step to 100 %: the
	// CLI pins it and follows the rollout to the end.
	out, errOut, code := u.cli("server", "deploy", "--org", "acme", "--registry", "prod", "--server", "echo", "--version", "1.1.0")
	if code != 0 || !strings.Contains(out, "1.1.0 50% (canary)") || !strings.Contains(out, "step 1/2") || !strings.Contains(out, "serves 1.1.0") {
		t.Fatalf("pylee server deploy 1.1.0 (exit %d):\n%s%s", code, out, errOut)
	}
	st = u.expect(t, "GET", path, u.token, "", 200).body
	if roles := armRoles(st); roles["1.0.0"] != "ROLE_WARM" || roles["1.1.0"] != "ROLE_STABLE" || armWeights(st)["1.1.0"] != 100 {
		t.Fatalf("after promotion: %v", st["arms"])
	}

	// A version failing half its calls is rolled back within its step
	// and the entry re-pinned to 1.1.0.
	deployed := make(chan string, 1)
	go func() {
		out, errOut, code := u.cli("server", "deploy", "--org", "acme", "--registry", "prod", "--server", "echo", "--version", "1.2.0")
		deployed <- fmt.Sprintf("exit %d\n%s%s", code, out, errOut)
	}()
	u.waitDeployment(t, path, "started the 1.2.0 canary", func(m map[string]any) bool { return armWeights(m)["1.2.0"] == 50 })
	up2, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name, Version: "1.2.0"})
	if err != nil || up2.GetVersion() != "1.2.0" {
		t.Fatalf("canary upstream = %v, %v", up2, err)
	}
	ccs := mcpSession(t, up2.GetUrl(), u.serviceToken(t, "gateway"))
	counts := &deployv1.CallCounts{}
	for i := 0; i < 40; i++ {
		_, err := ccs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
		counts.Calls++
		if err != nil {
			counts.RpcErrors++
		}
	}
	if counts.RpcErrors < 8 || counts.RpcErrors > 32 {
		t.Fatalf("the failing version failed %d of 40 calls", counts.RpcErrors)
	}
	if _, err := dc.ReportCallOutcomes(gw, &deployv1.ReportCallOutcomesRequest{Name: name,
		Versions: []*deployv1.VersionOutcomes{{Version: "1.2.0", Counts: counts}}}); err != nil {
		t.Fatal(err)
	}
	st = u.waitDeployment(t, path, "rolled back", phaseIs("PHASE_ROLLED_BACK"))
	if !strings.Contains(fmt.Sprint(st["reason"]), "error rate") || armWeights(st)["1.1.0"] != 100 {
		t.Fatalf("rolled back status: %v", st)
	}
	if got := <-deployed; !strings.HasPrefix(got, "exit 1") || !strings.Contains(got, "ROLLED_BACK") {
		t.Fatalf("pylee server deploy of a failing version: %s", got)
	}
	entry := u.waitEntryVersion(t, "/v1/orgs/acme/registries/prod/entries/echo", "1.1.0")
	if !strings.HasPrefix(fmt.Sprint(entry["pinnedBy"]), "services/deploy") {
		t.Fatalf("the re-pin is the deploy service's: %v", entry)
	}
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		return e["action"] == "deploy.rollout.rollback" && !strings.Contains(fmt.Sprint(e), canary)
	})
	// The bad version is not rolled out again.
	time.Sleep(500 * time.Millisecond)
	if st := u.expect(t, "GET", path, u.token, "", 200).body; armWeights(st)["1.2.0"] != 0 || st["phase"] != "PHASE_ROLLED_BACK" {
		t.Fatalf("the rolled back version came back: %v", st)
	}

	// Rollback to the warm previous version (1.0.0) is instant.
	start := time.Now()
	out, errOut, code = u.cli("deploy", "rollback", "--org", "acme", "--registry", "prod", "--server", "echo", "--reason", "test", "-o", "json")
	switched := time.Since(start)
	var rolled map[string]any
	_ = json.Unmarshal([]byte(out), &rolled)
	if code != 0 || armWeights(rolled)["1.0.0"] != 100 || switched > time.Second {
		t.Fatalf("rollback to the warm version took %v (exit %d): %s%s", switched, code, out, errOut)
	}
	t.Logf("rollback switch with a warm previous version: %v", switched)
	u.waitEntryVersion(t, "/v1/orgs/acme/registries/prod/entries/echo", "1.0.0")

	// kill -9 the serving instance: restarted, the restart in its status.
	u.waitDeployment(t, path, "served 1.0.0 again", func(m map[string]any) bool {
		return m["phase"] == "PHASE_SERVING" && m["version"] == "1.0.0"
	})
	up3, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	pid := instancePid(t, up3.GetUrl(), u.serviceToken(t, "gateway"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	u.waitDeployment(t, path, "restarted its instance", func(m map[string]any) bool {
		for _, in := range m["instances"].([]any) {
			in := in.(map[string]any)
			if in["id"] == up3.GetInstance() && in["restarts"] == float64(1) && in["state"] == "STATE_HEALTHY" {
				return strings.Contains(fmt.Sprint(in["lastExit"]), "killed")
			}
		}
		return false
	})
	u.waitEvent(t, "acme", func(e map[string]any) bool { return e["action"] == "deploy.instance.restart" })
	out, _, code = u.cli("deploy", "status", "--org", "acme", "--registry", "prod", "--server", "echo")
	if code != 0 || !strings.Contains(out, "SERVING") || !strings.Contains(out, "signal: killed") {
		t.Fatalf("pylee deploy status:\n%s", out)
	}
	out, _, code = u.cli("deploy", "logs", "--org", "acme", "--registry", "prod", "--server", "echo")
	if code != 0 || strings.Contains(out, canary) || !strings.Contains(out, "API_KEY=[REDACTED]") {
		t.Fatalf("pylee deploy logs:\n%s", out)
	}

	// A version that never becomes healthy never takes traffic, and the
	// entry goes back to the version that served.
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`,
		`{"name":"com.acme/echo","description":"Echo","version":"1.3.0","_meta":{"ai.pylee/command":{"command":"/bin/false"}}}`), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.3.0"}`, 200)
	st = u.waitDeployment(t, path, "gave up on 1.3.0", func(m map[string]any) bool {
		if armWeights(m)["1.3.0"] > 0 {
			t.Fatalf("a version that never became healthy took traffic: %v", m)
		}
		ro, _ := m["rollout"].(map[string]any)
		return ro["toVersion"] == "1.3.0" && ro["state"] == "STATE_FAILED"
	})
	if st["phase"] != "PHASE_ROLLED_BACK" || !strings.Contains(fmt.Sprint(st["reason"]), "never became healthy") || armWeights(st)["1.0.0"] != 100 {
		t.Fatalf("after a version that never became healthy: %v", st)
	}
	u.waitEntryVersion(t, "/v1/orgs/acme/registries/prod/entries/echo", "1.0.0")

	// A runtime this host lacks: a clear status, nothing crash-loops.
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=dotnet", u.token, `{"serverName":"com.acme/dotnet"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/dotnet/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`,
		`{"name":"com.acme/dotnet","description":"d","version":"1.0.0","packages":[{"registryType":"nuget","identifier":"Acme.Mcp","version":"1.0.0","transport":{"type":"stdio"}}]}`), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/dotnet", u.token, `{"version":"1.0.0"}`, 200)
	st = u.waitDeployment(t, "/v1/orgs/acme/registries/prod/deployments/dotnet", "refused nuget", phaseIs("PHASE_UNSUPPORTED"))
	if !strings.Contains(fmt.Sprint(st["reason"]), "nuget") || len(st["instances"].([]any)) != 0 {
		t.Fatalf("unsupported status: %v", st)
	}

	// Nothing anywhere shows the secret's value.
	list := u.expect(t, "GET", "/v1/orgs/acme/registries/prod/deployments", u.token, "", 200)
	resp, err := (&http.Client{Transport: plain}).Get(u.rest + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `pylee_deploy_deployment_phase{phase="PHASE_UNSUPPORTED",registry="orgs/acme/registries/prod",server="dotnet"} 1`) ||
		!strings.Contains(string(metrics), `pylee_deploy_instance_exits_total{kind="crash_loop"} 1`) ||
		!strings.Contains(string(metrics), `pylee_deploy_calls_total{outcome="rpc_error",registry="orgs/acme/registries/prod",server="echo",version="1.2.0"}`) {
		t.Fatalf("deploy metrics missing:\n%s", metrics)
	}
	for what, s := range map[string]string{"list": fmt.Sprint(list.body), "metrics": string(metrics), "server log": u.logs.String()} {
		if strings.Contains(s, canary) {
			t.Fatalf("the secret's value is in the %s", what)
		}
	}
}

func (u *upInstance) waitEntryVersion(t *testing.T, path, version string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		e := u.expect(t, "GET", path, u.token, "", 200).body
		if e["version"] == version {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry never pinned %s: %v", version, e)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func armWeights(m map[string]any) map[string]float64 {
	out := map[string]float64{}
	arms, _ := m["arms"].([]any)
	for _, a := range arms {
		a := a.(map[string]any)
		w, _ := a["weightPercent"].(float64)
		out[a["version"].(string)] = w
	}
	return out
}

func armRoles(m map[string]any) map[string]string {
	out := map[string]string{}
	arms, _ := m["arms"].([]any)
	for _, a := range arms {
		a := a.(map[string]any)
		out[a["version"].(string)] = fmt.Sprint(a["role"])
	}
	return out
}

func mcpSession(t *testing.T, url, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "pylee-test"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &http.Transport{}
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: gatewayHeader{token: token, base: tr}}}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close(); tr.CloseIdleConnections() })
	return cs
}

func callText(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return r.Content[0].(*mcp.TextContent).Text
}

// instancePid asks the test server behind url for its process id.
func instancePid(t *testing.T, url, token string) int {
	t.Helper()
	cs := mcpSession(t, url, token)
	var pid int
	if _, err := fmt.Sscan(callText(t, cs, "pid", nil), &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestDeployPerUserInstances: a version whose required value is set only
// at users' own scopes runs an instance per user, each with that user's
// value; a user without one is refused by name, and the status says what
// the shared scopes lack.
func TestDeployPerUserInstances(t *testing.T) {
	bin := buildTestServer(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	const issuer = "https://idp.acme.test"
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	jwtOf := func(email, iss string, aud any, exp time.Duration) string {
		payload, _ := json.Marshal(map[string]any{"iss": iss, "aud": aud, "sub": email, "email": email,
			"groups": []string{"acme/dev"}, "exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix()})
		obj, _ := signer.Sign(payload)
		s, _ := obj.CompactSerialize()
		return s
	}
	jwt := func(iss string, aud any, exp time.Duration) string { return jwtOf("alice@acme.test", iss, aud, exp) }
	alice := jwt(issuer, "pylee", time.Hour)

	u := startUp(t, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms",
		"--oidc-issuer", issuer, "--oidc-audience", "pylee", "--oidc-jwks-url", jwks.URL)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/teams?team_id=dev", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/teams/dev"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token,
		fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, "1.0.0", "")), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	const name = "orgs/acme/registries/prod/deployments/echo"
	u.waitDeployment(t, path, "waited for API_KEY", phaseIs("PHASE_MISSING_INPUTS"))

	admin := strings.TrimPrefix(u.expect(t, "GET", "/v1/users/me", u.token, "", 200).body["name"].(string), "users/")
	const adminValue, aliceValue = "user-canary-admin-3b7e", "user-canary-alice-91c2"
	u.expect(t, "POST", "/v1/orgs/acme/users/"+admin+"/secrets?secret_id=API_KEY", u.token, fmt.Sprintf(`{"value":%q}`, adminValue), 200)
	u.expect(t, "POST", "/v1/orgs/acme/users/alice@acme.test/secrets?secret_id=API_KEY", alice, fmt.Sprintf(`{"value":%q}`, aliceValue), 200)

	dc := u.deployClient(t)
	gw := bearer(u.serviceToken(t, "gateway"))
	gwToken := u.serviceToken(t, "gateway")
	seen := map[string]string{}
	for user, want := range map[string]string{"users/" + admin: adminValue, "users/alice@acme.test": aliceValue} {
		up, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name, User: user})
		if err != nil {
			t.Fatalf("upstream of %s: %v", user, err)
		}
		if got := callText(t, mcpSession(t, up.GetUrl(), gwToken), "env", map[string]any{"name": "API_KEY"}); got != want {
			t.Fatalf("%s's instance has API_KEY %q, want their own", user, got)
		}
		seen[up.GetInstance()] = user
	}
	if len(seen) != 2 {
		t.Fatalf("two users share an instance: %v", seen)
	}
	// Again: the same instance, not a new one.
	up, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name, User: "users/alice@acme.test"})
	if err != nil || seen[up.GetInstance()] != "users/alice@acme.test" {
		t.Fatalf("alice's second session: %v %v", up, err)
	}
	if _, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name, User: "users/bob"}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "API_KEY") {
		t.Fatalf("bob, who has no value: %v", err)
	}
	st := u.expect(t, "GET", path, u.token, "", 200).body
	users := map[string]bool{}
	for _, in := range st["instances"].([]any) {
		users[fmt.Sprint(in.(map[string]any)["user"])] = true
	}
	if st["phase"] != "PHASE_MISSING_INPUTS" || !users["users/alice@acme.test"] || !users["users/"+admin] || len(users) != 2 {
		t.Fatalf("per-user status: %v", st)
	}
	if s := fmt.Sprint(st); strings.Contains(s, adminValue) || strings.Contains(s, aliceValue) {
		t.Fatalf("a user's value in the status: %v", st)
	}

	// Through the MCP gateway, alice's OAuth token for this MCP URL (RFC
	// 8707) reaches her own instance; a token for the REST API, for
	// another server, expired or from another issuer does not.
	mcpURL := u.rest + "/mcp/acme/prod/echo"
	cs, err := gatewaySession(t, mcpURL, jwt(issuer, []string{mcpURL}, time.Hour), nil)
	if err != nil {
		t.Fatalf("alice with a token for %s: %v", mcpURL, err)
	}
	if got := callText(t, cs, "env", map[string]any{"name": "API_KEY"}); got != aliceValue {
		t.Fatalf("alice's value through the gateway: %q", got)
	}
	for what, tok := range map[string]string{
		"a token for the REST API":   alice,
		"a token for another server": jwt(issuer, u.rest+"/mcp/acme/prod/other", time.Hour),
		"an expired token":           jwt(issuer, mcpURL, -10*time.Minute),
		"a token of another issuer":  jwt("https://evil.example", mcpURL, time.Hour),
	} {
		req, _ := http.NewRequest("POST", mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
			t.Fatalf("%s: %d %q", what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	http.DefaultClient.CloseIdleConnections()

	// Carol's first contact with Pylee is an MCP client's OAuth token: she
	// becomes a user like one who signed in to the API (orgs.user.create).
	// With an identity provider, an editor's entry is the MCP URL itself
	// (the client signs in through the OAuth metadata), not the proxy.
	conn := u.expect(t, "GET", "/v1/orgs/acme/registries/prod:connect?client=cursor", u.token, "", 200)
	if !strings.Contains(fmt.Sprint(conn.body["configJson"]), `"url":"`+u.rest+`/mcp/acme/prod"`) || strings.Contains(fmt.Sprint(conn.body), "proxy") {
		t.Fatalf("connect with an identity provider: %v", conn.body)
	}

	created := func() bool {
		out, _, _ := u.cli("audit", "list", "--org", "-", "--action", "orgs.user.create", "-o", "json")
		return strings.Contains(out, "users/carol@acme.test")
	}
	if created() {
		t.Fatal("carol exists before her first sign-in")
	}
	// (She has no API_KEY of her own: the gateway accepts her, the server
	// cannot start for her.)
	if _, err := gatewaySession(t, mcpURL, jwtOf("carol@acme.test", issuer, []string{mcpURL}, time.Hour), nil); err == nil ||
		!strings.Contains(err.Error(), "API_KEY") {
		t.Fatalf("carol with a token for %s: %v", mcpURL, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !created() {
		if time.Now().After(deadline) {
			t.Fatal("carol's first sign-in through the MCP gateway did not create her user (orgs.user.create)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeployKilledMidRolloutResumes: the deploy target killed with -9 in
// the middle of a canary rollout takes the rollout up where it was, and no
// instance runs twice: the killed target's instances died with it.
func TestDeployKilledMidRolloutResumes(t *testing.T) {
	bin := buildTestServer(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	args := []string{"up", "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--data-dir", dataDir, "--log-level", "warn",
		"--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "100ms", "--relay-poll", "50ms"}
	p := startProc(t, httpAddr, filepath.Join(t.TempDir(), "pylee.log"), args...)
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upInstance{rest: "http://" + httpAddr, grpc: grpcAddr, dataDir: dataDir, token: strings.TrimSpace(string(tok)), logs: &syncBuffer{}}
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token,
		`{"rolloutPolicy":{"strategy":"STRATEGY_CANARY","steps":[{"weightPercent":50,"pause":"600s"}],"maxErrorRate":0.2}}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		u.expect(t, "POST", "/v1/orgs/acme/servers/echo/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, v, "")), 200)
	}
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, path, "served 1.0.0", phaseIs("PHASE_SERVING"))
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.1.0"}`, 200)
	midway := func(m map[string]any) bool {
		w := armWeights(m)
		return w["1.1.0"] == 50 && w["1.0.0"] == 50 && fmt.Sprint(m["rollout"].(map[string]any)["step"]) == "1"
	}
	u.waitDeployment(t, path, "reached its first canary step", midway)
	if n := countProcesses(bin); n != 2 {
		out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,stat,etime,args | grep testserver").CombinedOutput()
		t.Fatalf("%d test server processes before the kill, want 2:\n%s\n%v", n, out, u.expect(t, "GET", path, u.token, "", 200).body)
	}

	p.kill()
	deadline := time.Now().Add(10 * time.Second)
	for countProcesses(bin) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d instances outlived the killed deploy target", countProcesses(bin))
		}
		time.Sleep(20 * time.Millisecond)
	}

	p.start()
	st := u.waitDeployment(t, path, "resumed its rollout", func(m map[string]any) bool {
		healthy := 0
		for _, in := range m["instances"].([]any) {
			if in.(map[string]any)["state"] == "STATE_HEALTHY" {
				healthy++
			}
		}
		return midway(m) && healthy == 2
	})
	if ro := st["rollout"].(map[string]any); ro["state"] != "STATE_PROGRESSING" || ro["toVersion"] != "1.1.0" {
		t.Fatalf("after the restart: %v", st)
	}
	time.Sleep(500 * time.Millisecond)
	if n := countProcesses(bin); n != 2 {
		t.Fatalf("%d test server processes after the restart, want 2 (no duplicate)", n)
	}
}

// countProcesses counts running processes of the executable bin.
func countProcesses(bin string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(string(b), bin+"\x00") || string(b) == bin {
			// A zombie keeps no cmdline; only running processes count.
			n++
		}
	}
	return n
}

// TestDeployHostileInput: the deploy API refuses bad names, other
// tenants' deployments, forged call outcomes and service-only calls with
// clear 4xx answers naming the field, and changes nothing.
func TestDeployHostileInput(t *testing.T) {
	u := startUp(t, "--deploy-discover-interval", "100ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs?organization_id=globex", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=meta", u.token, `{"serverName":"com.acme/meta"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/meta/versions:import", u.token,
		fmt.Sprintf(`{"serverJson":%q}`, `{"name":"com.acme/meta","description":"no package","version":"1.0.0"}`), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/meta", u.token, `{"version":"1.0.0"}`, 200)
	const path = "/v1/orgs/acme/registries/prod/deployments/meta"
	st := u.waitDeployment(t, path, "refused a version with nothing to run", phaseIs("PHASE_UNSUPPORTED"))
	if !strings.Contains(fmt.Sprint(st["reason"]), "no package or remote") {
		t.Fatalf("status: %v", st)
	}

	// A globex admin sees nothing of acme's deployments.
	globex := u.saToken(t, "globex", "ops", "roles/admin", "orgs/globex")
	u.expect(t, "GET", path, globex, "", 404)
	u.expect(t, "GET", "/v1/orgs/acme/registries/prod/deployments", globex, "", 404)
	u.expect(t, "POST", path+":rollback", globex, `{}`, 404)
	u.expect(t, "GET", path, "", "", 401)
	// A user of acme may look but not steer.
	viewer := u.saToken(t, "acme", "viewer", "roles/user", "orgs/acme")
	u.expect(t, "GET", path, viewer, "", 403)
	u.expect(t, "POST", path+":restart", viewer, `{}`, 403)

	for _, c := range []struct {
		method, path, body, field string
		status                    int
	}{
		{"GET", "/v1/orgs/acme/registries/prod/deployments/Bad_Id", "", "name", 400},
		{"GET", "/v1/orgs/acme/registries/prod/deployments/nope", "", "", 404},
		{"GET", path + ":logs?tail_lines=10001", "", "tail_lines", 400},
		{"GET", path + ":logs?instance=nope", "", "", 404},
		{"POST", path + ":rollback", `{"reason":"` + strings.Repeat("x", 501) + `"}`, "reason", 400},
		{"POST", path + ":rollback", `{"reason":"bad \u0000 byte"}`, "reason", 400},
		{"POST", path + ":rollback", `{}`, "", 400}, // nothing to roll back to
		{"POST", path + ":rollback", `{"reason": 7}`, "", 400},
		{"POST", path + ":rollback", "{\"reason\":\"\xff\xfe\"}", "", 400},
		{"POST", path + ":rollback", strings.Repeat("[", 100000), "", 413},
		{"POST", path + ":rollback", strings.Repeat("[", 5000), "", 400},
		{"DELETE", path, "", "", 405},
	} {
		r := u.do(t, c.method, c.path, u.token, strings.NewReader(c.body))
		if r.status != c.status && !(c.status == 405 && (r.status == 404 || r.status == 501)) {
			t.Errorf("%s %s: %d, want %d: %v", c.method, c.path, r.status, c.status, r.body)
			continue
		}
		if c.field != "" && !strings.Contains(fmt.Sprint(r.body), c.field) {
			t.Errorf("%s %s: the error does not name %s: %v", c.method, c.path, c.field, r.body)
		}
	}

	// The gateway's calls: refused to people, and forged counts refused.
	dc := u.deployClient(t)
	name := "orgs/acme/registries/prod/deployments/meta"
	if _, err := dc.ReportCallOutcomes(bearer(u.token), &deployv1.ReportCallOutcomesRequest{Name: name}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ReportCallOutcomes as the admin: %v", err)
	}
	gw := bearer(u.serviceToken(t, "gateway"))
	if _, err := dc.ReportCallOutcomes(bearer(u.serviceToken(t, "registry")), &deployv1.ReportCallOutcomesRequest{Name: name}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ReportCallOutcomes as another service: %v", err)
	}
	for _, counts := range []*deployv1.CallCounts{{Calls: -1}, {Calls: 1, RpcErrors: 2}, {Calls: 5, Timeouts: -3}} {
		_, err := dc.ReportCallOutcomes(gw, &deployv1.ReportCallOutcomesRequest{Name: name,
			Versions: []*deployv1.VersionOutcomes{{Version: "1.0.0", Counts: counts}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "versions[0].counts") {
			t.Fatalf("forged counts %v: %v", counts, err)
		}
	}
	if _, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name, User: "alice"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a user that is not users/{user}: %v", err)
	}
	if _, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: name}); status.Code(err) != codes.Unavailable {
		t.Fatalf("upstream of a deployment that cannot run: %v", err)
	}
	if _, err := dc.ResolveUpstream(gw, &deployv1.ResolveUpstreamRequest{Name: "orgs/globex/registries/x/deployments/y"}); status.Code(err) != codes.NotFound {
		t.Fatalf("upstream of nothing: %v", err)
	}
	// Nothing changed.
	if after := u.expect(t, "GET", path, u.token, "", 200).body; after["phase"] != "PHASE_UNSUPPORTED" || after["version"] != "1.0.0" {
		t.Fatalf("after the hostile calls: %v", after)
	}
}
