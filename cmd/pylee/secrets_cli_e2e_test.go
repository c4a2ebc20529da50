package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
)

// TestSecretsCLI: pylee secret and pylee variable against a real pylee up,
// at every scope; and no secret value in any output of any command, nor in
// the logs. Every secret value here holds "canary"; nothing else does.
func TestSecretsCLI(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=team", u.token, `{"parent":"orgs/acme/registries/production"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	doc := `{"name":"com.acme/github","description":"GitHub","version":"1.0.0","packages":[{"registryType":"npm","identifier":"@acme/github","version":"1.0.0","transport":{"type":"stdio"},"environmentVariables":[{"name":"GITHUB_TOKEN","isRequired":true,"isSecret":true},{"name":"LOG_LEVEL"},{"name":"MISSING_ONE","isRequired":true}]}]}`
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/team/entries/github", u.token, `{"version":"1.0.0"}`, 200)
	userID := strings.TrimPrefix(u.expect(t, "GET", "/v1/users/me", u.token, "", 200).body["name"].(string), "users/")

	var seen strings.Builder // every stdout and stderr
	run := func(stdin string, terminal bool, args ...string) (string, string, int) {
		t.Helper()
		out, errOut, code := u.cliIn(stdin, terminal, args...)
		seen.WriteString(out + errOut)
		return out, errOut, code
	}
	ok := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(stdin, false, args...)
		if code != 0 {
			t.Fatalf("pylee %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	fails := func(stdin string, want string, args ...string) string {
		t.Helper()
		out, errOut, code := run(stdin, false, args...)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Fatalf("pylee %s: exit %d, stderr %q, want 1 and %q (stdout %q)", strings.Join(args, " "), code, errOut, want, out)
		}
		return errOut
	}
	jsonOf := func(stdin string, args ...string) map[string]any {
		t.Helper()
		m := map[string]any{}
		if err := json.Unmarshal([]byte(ok(stdin, append([]string{"-o", "json"}, args...)...)), &m); err != nil {
			t.Fatalf("pylee -o json %s: %v", strings.Join(args, " "), err)
		}
		return m
	}

	// Set from standard input: one trailing newline is not part of the value.
	v1 := jsonOf("api-key-canary-one\n", "secret", "set", "API_KEY", "--org", "acme")
	if v1["name"] != "orgs/acme/secrets/API_KEY" || v1["version"] != "1" || v1["fingerprint"] == "" || v1["value"] != "" {
		t.Fatalf("set: %v", v1)
	}
	if out := ok("api-key-canary-two", "secret", "set", "API_KEY", "--org", "acme"); !regexp.MustCompile(`API_KEY\s+orgs/acme\s+2\s+[0-9a-f]{16}`).MatchString(out) {
		t.Fatalf("set again:\n%s", out)
	}
	fails("api-key-canary-stale\n", "ABORTED", "secret", "set", "API_KEY", "--org", "acme", "--expected-version", "1")
	vs := jsonOf("", "secret", "versions", "API_KEY", "--org", "acme")
	if n := len(vs["versions"].([]any)); n != 2 {
		t.Fatalf("versions: %v", vs)
	}
	if r := jsonOf("", "secret", "restore", "API_KEY", "--version", "1", "--org", "acme"); r["version"] != "3" || r["fingerprint"] != v1["fingerprint"] {
		t.Fatalf("restore of version 1: %v, want version 3 with fingerprint %v", r, v1["fingerprint"])
	}

	// At a terminal: a prompt, the value not echoed.
	if _, errOut, code := run("prompted-canary\n", true, "secret", "set", "PROMPTED", "--org", "acme"); code != 0 || !strings.Contains(errOut, "Value of PROMPTED") {
		t.Fatalf("prompted: %d %q", code, errOut)
	}
	// --value works, with a warning.
	if _, errOut, code := run("", false, "secret", "set", "FLAGGED", "--value", "flagged-canary", "--org", "acme"); code != 0 || !strings.Contains(errOut, "shell history") {
		t.Fatalf("--value: %d %q", code, errOut)
	}
	// Refused before anything is sent.
	fails("", "empty", "secret", "set", "EMPTY", "--org", "acme")
	u.expect(t, "GET", "/v1/orgs/acme/secrets/EMPTY", u.token, "", 404)
	fails("bad-name-canary\n", "not a valid name", "secret", "set", "1BAD", "--org", "acme")
	fails("user-hint-canary\n", "at most one of", "secret", "set", "HINTED", "--org", "acme", "--user", "bob", "--me")
	fails("two-scopes-canary\n", "at most one of", "secret", "set", "X", "--org", "acme", "--registry", "production", "--server", "github")

	// List: names and metadata.
	if out := ok("", "secret", "list", "--org", "acme"); !strings.Contains(out, "API_KEY") || !strings.Contains(out, "PROMPTED") || !strings.Contains(out, "FLAGGED") {
		t.Fatalf("list:\n%s", out)
	}
	if l := jsonOf("", "secret", "list", "--org", "acme"); len(l["secrets"].([]any)) != 3 {
		t.Fatalf("list -o json: %v", l)
	}

	// The other scopes.
	for _, c := range []struct {
		flags []string
		scope string
	}{
		{[]string{"--me"}, "orgs/acme/users/" + userID},
		{[]string{"--user", "me"}, "orgs/acme/users/" + userID},
		{[]string{"--user", userID}, "orgs/acme/users/" + userID},
		{[]string{"--server", "github"}, "orgs/acme/servers/github"},
		{[]string{"--registry", "orgs/acme/registries/production"}, "orgs/acme/registries/production"},
	} {
		s := jsonOf("scoped-canary\n", append([]string{"secret", "set", "SCOPED", "--org", "acme"}, c.flags...)...)
		if s["name"] != c.scope+"/secrets/SCOPED" {
			t.Fatalf("set %v: %v, want %s/secrets/SCOPED", c.flags, s, c.scope)
		}
		if out := ok("", append([]string{"secret", "list", "--org", "acme"}, c.flags...)...); !strings.Contains(out, "SCOPED") || strings.Contains(out, "API_KEY") {
			t.Fatalf("list %v:\n%s", c.flags, out)
		}
	}

	// Remove asks first.
	fails("API_KEY\n", "--yes", "secret", "remove", "API_KEY", "--org", "acme")
	u.expect(t, "GET", "/v1/orgs/acme/secrets/API_KEY", u.token, "", 200)
	if out, errOut, code := run("API_KEY\n", true, "secret", "remove", "API_KEY", "--org", "acme"); code != 0 || !strings.Contains(out, "deleted orgs/acme/secrets/API_KEY") ||
		!strings.Contains(errOut, `Type the secret id "API_KEY"`) {
		t.Fatalf("remove at a terminal: %d %q %q", code, out, errOut)
	}
	ok("", "secret", "remove", "FLAGGED", "--org", "acme", "--yes")
	for _, n := range []string{"API_KEY", "FLAGGED"} {
		u.expect(t, "GET", "/v1/orgs/acme/secrets/"+n, u.token, "", 404)
	}

	// Import a .env file.
	dir := t.TempDir()
	env := filepath.Join(dir, ".env")
	writeFile(t, env, "# the team's secrets\n\nexport IMP_ONE=imp-canary-one\r\nIMP_TWO=\"imp canary two\"\n  IMP_THREE = 'imp-canary-three'  \n")
	if out := ok("", "secret", "import", "--from-env-file", env, "--org", "acme", "--server", "github"); !strings.Contains(out, "set 3 secrets in orgs/acme/servers/github") {
		t.Fatalf("import:\n%s", out)
	}
	res, err := u.secretsClient(t).Resolve(bearer(u.serviceToken(t, "gateway")),
		&secretsv1.ResolveRequest{Registry: "orgs/acme/registries/team", Server: "orgs/acme/servers/github"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range res.GetValues() {
		got[v.GetName()] = v.GetValue()
	}
	for k, want := range map[string]string{"IMP_ONE": "imp-canary-one", "IMP_TWO": "imp canary two", "IMP_THREE": "imp-canary-three", "PROMPTED": "prompted-canary", "SCOPED": "scoped-canary"} {
		if got[k] != want {
			t.Errorf("resolved %s = %q, want %q", k, got[k], want)
		}
	}
	// A bad line refuses the whole file, naming the line and not what is on it.
	for _, c := range []struct{ content, want string }{
		{"BAD_FIRST=bad-canary-ok\nexport bad-canary-no-equals\n", "line 2: not KEY=VALUE"},
		{"BAD_FIRST=bad-canary-ok\n\npostgres://u:bad-canary-pw@db/x?a=1\n", "line 3: the name is not"},
		{"BAD_FIRST=bad-canary-ok\nBAD_QUOTE=\"bad-canary-open\n", "line 2: BAD_QUOTE"},
		{"BAD_FIRST=bad-canary-ok\nBAD_FIRST=bad-canary-again\n", "line 2: BAD_FIRST is already set on line 1"},
	} {
		writeFile(t, env, c.content)
		if errOut := fails("", c.want, "secret", "import", "--from-env-file", env, "--org", "acme"); !strings.Contains(errOut, "nothing was set") {
			t.Fatalf("bad file: %q", errOut)
		}
	}
	u.expect(t, "GET", "/v1/orgs/acme/secrets/BAD_FIRST", u.token, "", 404)

	// Variables: readable.
	ok("", "variable", "set", "LOG_LEVEL", "debug", "--org", "acme", "--registry", "production")
	ok("gpt-4o\n", "variable", "set", "MODEL", "--from-stdin", "--org", "acme")
	fails("", "either", "variable", "set", "MODEL", "x", "--from-stdin", "--org", "acme")
	if out := ok("", "variable", "get", "LOG_LEVEL", "--org", "acme", "--registry", "production"); out != "debug\n" {
		t.Fatalf("variable get = %q", out)
	}
	if out := ok("", "variable", "get", "MODEL", "--org", "acme"); out != "gpt-4o\n" {
		t.Fatalf("variable get = %q", out)
	}
	if out := ok("", "variable", "list", "--org", "acme"); !regexp.MustCompile(`MODEL\s+orgs/acme\s+1\s+gpt-4o`).MatchString(out) {
		t.Fatalf("variable list:\n%s", out)
	}

	// Explain: where each name comes from, secrets masked, what is missing.
	ok("org-github-canary\n", "secret", "set", "GITHUB_TOKEN", "--org", "acme")
	ok("user-github-canary\n", "secret", "set", "GITHUB_TOKEN", "--org", "acme", "--me")
	out := ok("", "secret", "explain", "--org", "acme", "--registry", "team", "--server", "github", "--user", "me")
	for _, re := range []string{
		`NAME\s+SCOPE\s+VERSION\s+VALUE\s+OVERRIDES`,
		`GITHUB_TOKEN\s+orgs/acme/users/` + userID + `\s+1\s+\*{8}\s+orgs/acme/secrets/GITHUB_TOKEN`,
		`LOG_LEVEL\s+orgs/acme/registries/production\s+1\s+debug`,
		`pinned version: 1\.0\.0`,
		`GITHUB_TOKEN\s+environment_variable\s+yes\s+yes\s+yes`,
		`MISSING_ONE\s+environment_variable\s+yes\s+no\s+no`,
		`missing: MISSING_ONE\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("explain lacks %s:\n%s", re, out)
		}
	}
	if ex := jsonOf("", "secret", "explain", "--org", "acme", "--registry", "team", "--server", "github"); len(ex["missing"].([]any)) != 1 {
		t.Fatalf("explain -o json: %v", ex)
	}

	ok("", "variable", "remove", "MODEL", "--org", "acme", "--yes")
	fails("", "NOT_FOUND", "variable", "get", "MODEL", "--org", "acme")

	// No secret value anywhere.
	if strings.Contains(seen.String(), "canary") {
		t.Fatalf("a secret value in the CLI's output:\n%s", seen.String())
	}
	if strings.Contains(u.logs.String(), "canary") {
		t.Fatal("a secret value in the logs")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
