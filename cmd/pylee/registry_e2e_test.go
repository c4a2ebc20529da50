package main

import (
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
