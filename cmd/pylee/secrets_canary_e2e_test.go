package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
)

// TestNoSecretValueAnywhere: 1,000 canary values set through REST, gRPC
// and the CLI, on the keyring and on Vault, with debug logging; none shows
// in a log line, an audit event, the metrics, an answer other than the
// gateway's resolve, an error body or header, or any file of the data
// directory.
func TestNoSecretValueAnywhere(t *testing.T) {
	t.Run("keyring", func(t *testing.T) { testNoSecretValue(t, startUp(t, "--log-level", "debug")) })
	t.Run("vault", func(t *testing.T) {
		v := startVault(t)
		testNoSecretValue(t, startUp(t, "--log-level", "debug", "--secrets-backend", "vault", "--vault-addr", v.addr, "--vault-token", v.token))
	})
}

func testNoSecretValue(t *testing.T, u *upInstance) {
	const n = 1000
	canary := func(i int) string { return fmt.Sprintf("CANARY-%04d-x7Qz", i) }
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=gh", u.token, `{"serverName":"com.acme/gh"}`, 200)
	scopes := []string{"orgs/acme", "orgs/acme/registries/prod", "orgs/acme/servers/gh"}
	c := u.secretsClient(t)
	var answers strings.Builder // every answer a person got
	for i := range n {
		scope, name := scopes[i%3], fmt.Sprintf("S%04d", i)
		switch i % 4 {
		case 0, 1: // REST
			r := u.do(t, "POST", "/v1/"+scope+"/secrets?secret_id="+name, u.token, strings.NewReader(fmt.Sprintf(`{"value":%q}`, canary(i))))
			if r.status != 200 {
				t.Fatalf("set %s: %d %v", name, r.status, r.body)
			}
			fmt.Fprint(&answers, r.body)
		case 2: // gRPC
			s, err := c.SetSecret(bearer(u.token), &secretsv1.SetSecretRequest{Parent: scope, SecretId: name, Secret: &secretsv1.Secret{Value: canary(i)}})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(&answers, s.String())
		case 3: // the CLI, the value on stdin
			flag := []string{"--org", "acme"}
			switch scope {
			case "orgs/acme/registries/prod":
				flag = append(flag, "--registry", "prod")
			case "orgs/acme/servers/gh":
				flag = append(flag, "--server", "gh")
			}
			out, errOut, code := u.cliIn(canary(i)+"\n", false, append([]string{"secret", "set", name}, flag...)...)
			if code != 0 {
				t.Fatalf("pylee secret set %s: %d %s", name, code, errOut)
			}
			fmt.Fprint(&answers, out, errOut)
		}
	}
	// Refusals and errors that name a secret: a stale check-and-set, a
	// value too large, another organization.
	for _, r := range []restResp{
		u.do(t, "POST", "/v1/orgs/acme/secrets?secret_id=S0000&expected_version=7", u.token, strings.NewReader(`{"value":"`+canary(0)+`"}`)),
		u.do(t, "POST", "/v1/orgs/globex/secrets?secret_id=S0000", u.token, strings.NewReader(`{"value":"`+canary(0)+`"}`)),
		u.do(t, "POST", "/v1/orgs/acme/secrets?secret_id=1BAD", u.token, strings.NewReader(`{"value":"`+canary(0)+`"}`)),
	} {
		if r.status < 400 {
			t.Fatalf("a bad write was accepted: %d", r.status)
		}
		fmt.Fprint(&answers, r.body)
	}
	// Everything a person can read back.
	for _, path := range []string{"/v1/orgs/acme/secrets?page_size=1000", "/v1/orgs/acme/registries/prod/secrets?page_size=1000",
		"/v1/orgs/acme/servers/gh/secrets?page_size=1000", "/v1/orgs/acme/secrets/S0000", "/v1/orgs/acme/secrets/S0000:versions",
		"/v1/orgs/acme/registries/prod/servers/gh:explainResolution"} {
		r := u.expect(t, "GET", path, u.token, "", 200)
		fmt.Fprint(&answers, r.body)
	}
	for _, args := range [][]string{{"secret", "list", "--org", "acme"}, {"secret", "versions", "S0000", "--org", "acme"},
		{"secret", "explain", "--org", "acme", "--registry", "prod", "--server", "gh"}} {
		out, errOut, _ := u.cliIn("", false, args...)
		fmt.Fprint(&answers, out, errOut)
	}
	// The gateway's resolve does carry them: the canaries are real.
	res, err := c.Resolve(bearer(u.serviceToken(t, "gateway")), &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/prod", Server: "orgs/acme/servers/gh"})
	if err != nil || len(res.GetValues()) != n || !strings.HasPrefix(res.GetValues()[0].GetValue(), "CANARY-") {
		t.Fatalf("resolve: %d values, %v", len(res.GetValues()), err)
	}
	// The audit log, once the relay delivered.
	time.Sleep(500 * time.Millisecond)
	for page := ""; ; {
		r := u.expect(t, "GET", "/v1/orgs/acme/events?page_size=1000&page_token="+page, u.token, "", 200)
		fmt.Fprint(&answers, r.body)
		next, _ := r.body["nextPageToken"].(string)
		if next == "" {
			break
		}
		page = next
	}
	resp, err := http.Get(u.rest + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for where, text := range map[string]string{"an answer": answers.String(), "the logs": u.logs.String(), "the metrics": string(metrics)} {
		if i := strings.Index(text, "CANARY-"); i >= 0 {
			t.Fatalf("a secret value in %s: %q", where, text[max(0, i-80):min(len(text), i+40)])
		}
	}
	if !strings.Contains(u.logs.String(), "debug") && !strings.Contains(u.logs.String(), "DEBUG") {
		t.Log("note: no debug line was logged")
	}
	files, _ := filepath.Glob(filepath.Join(u.dataDir, "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "CANARY-") {
			t.Fatalf("a secret value in plain text in %s", f)
		}
	}
	t.Logf("%d canary values set; none outside the gateway's resolve", n)
}
