package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// benchREST is a small REST client for benchmarks (testing.B).
func benchREST(b *testing.B, u *upInstance, method, path, body string, want int) map[string]any {
	b.Helper()
	m, code := benchCall(b, u, method, path, body)
	if code != want {
		b.Fatalf("%s %s: %d, want %d: %v", method, path, code, want, m)
	}
	return m
}

func benchCall(b *testing.B, u *upInstance, method, path, body string) (map[string]any, int) {
	b.Helper()
	req, _ := http.NewRequest(method, u.rest+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m, resp.StatusCode
}

func benchWait(b *testing.B, u *upInstance, path string, ok func(map[string]any) bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if m, code := benchCall(b, u, "GET", path, ""); code == 200 && ok(m) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("%s never reached the state", path)
}

// BenchmarkDeployPinToServing: from the pin's acknowledgement to the
// deployment serving the new version with all traffic (direct rollout),
// for the command runtime (the Go SDK test server) and a warm npm package
// (server-everything, cached by npx).
func BenchmarkDeployPinToServing(b *testing.B) {
	bin := buildTestServer(b)
	type benchCase struct {
		serverName string
		doc        func(v string) string
	}
	cases := map[string]benchCase{
		"command": {"com.acme/echo", func(v string) string { return testServerDoc(bin, v, "") }},
	}
	if _, err := exec.LookPath("npx"); err == nil {
		cases["npm"] = benchCase{"io.modelcontextprotocol/everything", everythingDoc}
	}
	for name, c := range cases {
		doc := c.doc
		b.Run(name, func(b *testing.B) {
			u := startUp(b, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "1s",
				"--deploy-warm-for", "1s")
			benchREST(b, u, "POST", "/v1/orgs?organization_id=acme", `{}`, 200)
			benchREST(b, u, "POST", "/v1/orgs/acme/registries?registry_id=prod", `{}`, 200)
			benchREST(b, u, "POST", "/v1/orgs/acme/servers?server_id=s", fmt.Sprintf(`{"serverName":%q}`, c.serverName), 200)
			benchREST(b, u, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", `{"value":"k"}`, 200)
			benchREST(b, u, "POST", "/v1/orgs/acme/secrets?secret_id=EVERYTHING_TOKEN", `{"value":"k"}`, 200)
			const path = "/v1/orgs/acme/registries/prod/deployments/s"
			deploy := func(i int) {
				v := fmt.Sprintf("1.0.%d", i)
				benchREST(b, u, "POST", "/v1/orgs/acme/servers/s/versions:import", fmt.Sprintf(`{"serverJson":%q}`, doc(v)), 200)
				b.StartTimer()
				benchREST(b, u, "PUT", "/v1/orgs/acme/registries/prod/entries/s", fmt.Sprintf(`{"version":%q}`, v), 200)
				benchWait(b, u, path, func(m map[string]any) bool { return m["phase"] == "PHASE_SERVING" && armWeights(m)[v] == 100 })
				b.StopTimer()
			}
			b.StopTimer()
			deploy(0) // the first start (npm: the download) is not measured
			b.ResetTimer()
			b.StopTimer()
			for i := 1; i <= b.N; i++ {
				deploy(i)
			}
		})
	}
}

// BenchmarkDeployRollbackSwitch: `RollbackDeployment` to the warm
// previous version, from the request to the answer showing it serving
// all traffic.
func BenchmarkDeployRollbackSwitch(b *testing.B) {
	bin := buildTestServer(b)
	u := startUp(b, "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "1s")
	benchREST(b, u, "POST", "/v1/orgs?organization_id=acme", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/registries?registry_id=prod", `{}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/servers?server_id=echo", `{"serverName":"com.acme/echo"}`, 200)
	benchREST(b, u, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", `{"value":"k"}`, 200)
	const path = "/v1/orgs/acme/registries/prod/deployments/echo"
	for _, v := range []string{"1.0.0", "1.0.1"} {
		benchREST(b, u, "POST", "/v1/orgs/acme/servers/echo/versions:import", fmt.Sprintf(`{"serverJson":%q}`, testServerDoc(bin, v, "")), 200)
		benchREST(b, u, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", fmt.Sprintf(`{"version":%q}`, v), 200)
		benchWait(b, u, path, func(m map[string]any) bool { return m["phase"] == "PHASE_SERVING" && armWeights(m)[v] == 100 })
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := []string{"1.0.0", "1.0.1"}[i%2]
		m := benchREST(b, u, "POST", path+":rollback", `{}`, 200)
		if armWeights(m)[want] != 100 {
			b.Fatalf("rollback %d did not switch to %s: %v", i, want, m["arms"])
		}
		// Let the re-pin come back through the watch before the next one.
		b.StopTimer()
		benchWait(b, u, "/v1/orgs/acme/registries/prod/deployments/echo", func(m map[string]any) bool {
			return m["version"] == want
		})
		b.StartTimer()
	}
}
