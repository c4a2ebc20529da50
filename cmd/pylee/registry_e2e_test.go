package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServersEndToEnd(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	r := u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token,
		`{"serverName":"com.acme/github","description":"GitHub tools","repository":{"url":"https://github.com/acme/github-mcp","source":"github"}}`, 200)
	if r.body["name"] != "orgs/acme/servers/github" || r.body["serverName"] != "com.acme/github" {
		t.Fatalf("created = %v", r.body)
	}
	etag := r.body["etag"].(string)
	// Validation names the field; duplicates conflict.
	if r := u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=bad", u.token, `{"serverName":"no slash"}`, 400); !strings.Contains(r.body["message"].(string), "server.server_name") {
		t.Fatalf("bad name message = %v", r.body)
	}
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github2", u.token, `{"serverName":"com.acme/github"}`, 409)
	for _, id := range []string{"slack", "jira"} {
		u.expect(t, "POST", "/v1/orgs/acme/servers?server_id="+id, u.token, `{"serverName":"com.acme/`+id+`","title":"`+strings.ToUpper(id)+`"}`, 200)
	}
	r = u.expect(t, "GET", "/v1/orgs/acme/servers?page_size=2", u.token, "", 200)
	if len(r.body["servers"].([]any)) != 2 || r.body["nextPageToken"] == "" {
		t.Fatalf("page 1 = %v", r.body)
	}
	r = u.expect(t, "GET", "/v1/orgs/acme/servers?page_size=2&page_token="+r.body["nextPageToken"].(string), u.token, "", 200)
	if len(r.body["servers"].([]any)) != 1 {
		t.Fatalf("page 2 = %v", r.body)
	}
	if r := u.expect(t, "GET", "/v1/orgs/acme/servers?search=slack", u.token, "", 200); len(r.body["servers"].([]any)) != 1 {
		t.Fatalf("search = %v", r.body)
	}
	// Update with mask and etag; stale etag conflicts.
	r = u.expect(t, "PATCH", "/v1/orgs/acme/servers/github?update_mask=title", u.token, `{"title":"GitHub","etag":"`+etag+`"}`, 200)
	if r.body["title"] != "GitHub" || r.body["description"] != "GitHub tools" {
		t.Fatalf("updated = %v", r.body)
	}
	u.expect(t, "PATCH", "/v1/orgs/acme/servers/github?update_mask=title", u.token, `{"title":"x","etag":"`+etag+`"}`, 409)
	// Access: a user sees servers but cannot create; a developer can.
	user := u.saToken(t, "acme", "viewer", "roles/user", "orgs/acme")
	dev := u.saToken(t, "acme", "dev", "roles/developer", "orgs/acme")
	u.expect(t, "GET", "/v1/orgs/acme/servers/github", user, "", 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=mine", user, `{"serverName":"com.acme/mine"}`, 403)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=mine", dev, `{"serverName":"com.acme/mine"}`, 200)
	u.expect(t, "DELETE", "/v1/orgs/acme/servers/mine", dev, "", 403) // servers.delete is admin's
	u.expect(t, "DELETE", "/v1/orgs/acme/servers/mine", u.token, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme/servers/mine", u.token, "", 404)
	// Every change is audited, by its actor (the relay delivers within
	// moments; wait for all of them).
	wants := []string{"registry.server.create users/admin", "registry.server.update users/admin",
		"registry.server.create orgs/acme/serviceAccounts/dev", "registry.server.delete users/admin"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[string]bool{}
		for _, e := range u.waitEvents(t, "acme", 1) {
			if strings.HasPrefix(e["action"].(string), "registry.server.") {
				seen[e["action"].(string)+" "+e["actor"].(map[string]any)["principal"].(string)] = true
			}
		}
		missing := ""
		for _, w := range wants {
			if !seen[w] {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event %q (have %v)", missing, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegistryFlowThroughCLIAndREST(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	run := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := u.cli(append([]string{"--org", "acme"}, args...)...)
		if code != want {
			t.Fatalf("pylee %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out + errOut
	}
	run(0, "server", "create", "github", "--server-name", "com.acme/github", "--title", "GitHub", "--description", "GitHub tools")
	doc := filepath.Join(t.TempDir(), "server.json")
	writeDoc := func(version string) {
		body := `{"$schema":"https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json","name":"com.acme/github","description":"GitHub tools","version":"` + version + `",
	"packages":[{"registryType":"npm","identifier":"@acme/github-mcp","version":"1.2.0","transport":{"type":"stdio"},
	"environmentVariables":[{"name":"GITHUB_TOKEN","isSecret":true,"isRequired":true,"value":"${secret:GITHUB_TOKEN}"}]}]}`
		if err := os.WriteFile(doc, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeDoc("1.2.0")
	tools := filepath.Join(t.TempDir(), "tools.json")
	_ = os.WriteFile(tools, []byte(`{"tools":[{"name":"search_issues","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}]}`), 0o600)
	// The seed's own command line.
	out := run(0, "server", "version", "create", "--server=github", "--version=1.2.0", "--file", doc, "--tools", tools, "--notes", "first")
	if !strings.Contains(out, "orgs/acme/servers/github/versions/1.2.0") {
		t.Fatalf("version create: %s", out)
	}
	_ = os.WriteFile(tools, []byte(`[{"name":"search_issues","inputSchema":{"type":"object"}}]`), 0o600)
	// A --version that disagrees with the document is refused, naming both.
	if out := run(1, "server", "version", "create", "--server=github", "--version=1.3.0", "--file", doc); !strings.Contains(out, "1.2.0") {
		t.Fatalf("mismatched version: %s", out)
	}
	writeDoc("1.3.0")
	run(0, "server", "version", "create", "--server=orgs/acme/servers/github", "--version=1.3.0", "--file", doc, "--tools", tools)
	run(1, "server", "version", "create", "--server=github", "--version=1.3.0", "--file", doc) // immutable
	if out := run(0, "server", "version", "suggest", "--server", "github", "--bump", "minor"); !strings.Contains(out, "1.4.0") {
		t.Fatalf("suggest: %s", out)
	}
	if out := run(0, "server", "version", "diff", "1.2.0", "1.3.0", "--server", "github"); !strings.Contains(out, "annotations.readOnlyHint: true -> unset") {
		t.Fatalf("diff: %s", out)
	}
	exported := run(0, "server", "version", "export", "1.2.0", "--server", "github")
	if !strings.Contains(exported, `"${secret:GITHUB_TOKEN}"`) || !strings.Contains(exported, `"version": "1.2.0"`) {
		t.Fatalf("export: %s", exported)
	}

	// Registries by REST, with the interface names outside checks use.
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=staging", u.token, `{"description":"pre-production"}`, 200)
	r := u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{"approvalRequired":true,"minApprovals":2}`, 200)
	if eff := r.body["effective"].(map[string]any); eff["approvalRequired"] != true || eff["minApprovals"] != float64(2) {
		t.Fatalf("production = %v", r.body)
	}
	r = u.expect(t, "PUT", "/v1/orgs/acme/registries/staging/entries/github", u.token, `{"version":"1.2.0"}`, 200)
	if r.body["entry"].(map[string]any)["version"] != "1.2.0" {
		t.Fatalf("pin = %v", r.body)
	}
	u.expect(t, "POST", "/v1/orgs/acme/registries/staging/entries/github", u.token, `{"version":"1.3.0"}`, 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/staging/entries/github", u.token, `{"version":"^1"}`, 400)
	run(0, "registry", "pin", "--registry", "staging", "--server", "github", "--version", "1.2.0")
	if out := run(0, "registry", "entries", "staging"); !strings.Contains(out, "1.2.0") {
		t.Fatalf("entries: %s", out)
	}
	// Promotion into production asks for approval.
	out = run(0, "registry", "promote", "--registry", "staging", "--server", "github", "--to", "production")
	if !strings.Contains(out, "STATE_PENDING") || !strings.Contains(out, "0/2") {
		t.Fatalf("promote: %s", out)
	}
	r = u.expect(t, "GET", "/v1/orgs/acme/registries/production/approvals", u.token, "", 200)
	id := r.body["approvals"].([]any)[0].(map[string]any)["name"].(string)
	id = id[strings.LastIndex(id, "/")+1:]
	// The requester cannot approve; two other admins can.
	u.expect(t, "POST", "/v1/orgs/acme/registries/production/approvals/"+id+":approve", u.token, `{}`, 403)
	a1 := u.saToken(t, "acme", "approver1", "roles/admin", "orgs/acme")
	a2 := u.saToken(t, "acme", "approver2", "roles/admin", "orgs/acme")
	dev := u.saToken(t, "acme", "dev", "roles/developer", "orgs/acme")
	u.expect(t, "POST", "/v1/orgs/acme/registries/production/approvals/"+id+":approve", dev, `{}`, 403) // approvals.approve is admin's
	u.expect(t, "POST", "/v1/orgs/acme/registries/production/approvals/"+id+":approve", a1, `{"comment":"ok"}`, 200)
	out, errOut, code := u.cliAs(a2, "--org", "acme", "approval", "approve", id, "--registry", "production", "--comment", "ship it")
	if code != 0 || !strings.Contains(out, "STATE_APPLIED") {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}
	r = u.expect(t, "GET", "/v1/orgs/acme/registries/production/entries/github", u.token, "", 200)
	if r.body["version"] != "1.2.0" || r.body["pinnedBy"] != "users/admin" {
		t.Fatalf("production entry = %v", r.body)
	}
	if out := run(0, "approval", "list", "--registry", "production"); !strings.Contains(out, "STATE_APPLIED") {
		t.Fatalf("approval list: %s", out)
	}
	run(1, "server", "delete", "github", "--yes") // pinned
	run(0, "registry", "unpin", "--registry", "staging", "--server", "github")

	// Every change is in the audit log.
	wants := []string{"registry.version.create", "registry.registry.create", "registry.entry.pin", "registry.approval.create",
		"registry.approval.approve", "registry.entry.unpin"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[string]bool{}
		for _, e := range u.waitEvents(t, "acme", 1) {
			seen[e["action"].(string)] = true
		}
		missing := ""
		for _, w := range wants {
			if !seen[w] {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event %q", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
