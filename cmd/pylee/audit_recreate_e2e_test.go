package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pyleeai/pylee/kit/auditlog"
)

// TestRecreatedOrganizationAuditLog: an organization created again with
// the id of a deleted one sees nothing of the old one's audit log (list,
// get, export, verify), while an installation administrator still exports
// and verifies the whole chain with show_deleted.
func TestRecreatedOrganizationAuditLog(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=phoenix", u.token, `{"description":"first life"}`, 200)
	u.expect(t, "POST", "/v1/orgs/phoenix/servers?server_id=old", u.token, `{"serverName":"com.phoenix/old"}`, 200)
	old := u.waitEvent(t, "phoenix", func(ev map[string]any) bool { return ev["action"] == "registry.server.create" })
	u.expect(t, "DELETE", "/v1/orgs/phoenix", u.token, "", 200)
	u.waitEvent(t, "phoenix", func(ev map[string]any) bool { return ev["action"] == "orgs.organization.delete" })
	// Deleted and not yet created again: its log is still its own.
	u.expect(t, "GET", "/v1/"+old["name"].(string), u.token, "", 200)

	u.expect(t, "POST", "/v1/orgs?organization_id=phoenix", u.token, `{"description":"second life"}`, 200)
	owner := u.saToken(t, "phoenix", "owner", "roles/owner", "orgs/phoenix")
	created := u.waitEvent(t, "phoenix", func(ev map[string]any) bool {
		return ev["action"] == "orgs.organization.create" && strings.Contains(ev["resource"].(string), "phoenix")
	})
	if created["sequence"] == "1" {
		t.Fatalf("the second create is the chain's first event: %v", created)
	}
	for _, tok := range []string{u.token, owner} {
		r := u.expect(t, "GET", "/v1/orgs/phoenix/events?page_size=1000", tok, "", 200)
		for _, e := range asList(r.body["events"]) {
			ev := e.(map[string]any)
			if ev["action"] == "registry.server.create" || ev["action"] == "orgs.organization.delete" || strings.Contains(ev["resource"].(string), "servers/old") {
				t.Errorf("the re-created organization sees an event of the old one: %v", ev)
			}
		}
		u.expect(t, "GET", "/v1/"+old["name"].(string), tok, "", 404)
		if r := u.expect(t, "POST", "/v1/orgs/phoenix/events:verify", tok, `{}`, 200); r.body["ok"] != true {
			t.Errorf("verify the re-created organization's log: %v", r.body)
		}
	}

	pub := u.expect(t, "GET", "/v1/audit/publicKey", u.token, "", 200).body["publicKey"].(string)
	key, err := auditlog.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	export := func(token, query string, want int) string {
		req, _ := http.NewRequest("GET", u.rest+"/v1/orgs/phoenix/events:export"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("export%s: %d %s", query, resp.StatusCode, body)
		}
		return string(body)
	}
	// The organization's own export starts after the old chain, anchored
	// by a signed checkpoint, and verifies offline.
	own := export(owner, "", 200)
	if strings.Contains(own, "servers/old") || strings.Contains(own, "first life") {
		t.Fatal("the re-created organization's export holds the old organization's events")
	}
	res, err := auditlog.VerifyExport(strings.NewReader(own), key)
	if err != nil || res.FirstSequence <= 1 {
		t.Fatalf("verify the organization's export: %+v %v", res, err)
	}
	// The whole chain: for installation administrators only.
	export(owner, "?show_deleted=true", 403)
	u.expect(t, "GET", "/v1/orgs/phoenix/events?show_deleted=true", owner, "", 403)
	u.waitEvent(t, "phoenix", func(ev map[string]any) bool {
		return ev["action"] == "audit.event.list" && ev["outcome"] == "denied" && strings.Contains(fmt.Sprint(ev["metadata"]), "show_deleted")
	})
	all := export(u.token, "?show_deleted=true", 200)
	if !strings.Contains(all, "servers/old") {
		t.Fatal("the installation's export with show_deleted lacks the old organization's events")
	}
	if res, err := auditlog.VerifyExport(strings.NewReader(all), key); err != nil || res.FirstSequence != 1 {
		t.Fatalf("verify the whole chain: %+v %v", res, err)
	}
	r := u.expect(t, "GET", "/v1/orgs/phoenix/events?show_deleted=true&page_size=1000", u.token, "", 200)
	if !strings.Contains(strings.Join(eventActions(r.body), ","), "registry.server.create") {
		t.Errorf("show_deleted list lacks the old events: %v", eventActions(r.body))
	}
}

func eventActions(body map[string]any) []string {
	var out []string
	for _, e := range asList(body["events"]) {
		out = append(out, e.(map[string]any)["action"].(string))
	}
	return out
}
