package main

import (
	"strings"
	"testing"
)

// TestReferencesAreChecked: bindings, owner teams and team members must
// name things that exist in the same organization, and a deleted server,
// registry or team takes its grants with it, so an id created again starts
// with none (finding 11 of the hardening issue).
func TestReferencesAreChecked(t *testing.T) {
	u := startUp(t)
	for _, org := range []string{"acme", "globex"} {
		u.expect(t, "POST", "/v1/orgs?organization_id="+org, u.token, `{}`, 200)
		u.expect(t, "POST", "/v1/orgs/"+org+"/teams?team_id=platform", u.token, `{}`, 200)
	}
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=staging", u.token, `{}`, 200)
	sa := `{"role":"roles/user","principal":"users/kim"}`

	// Bindings on things that do not exist: 404 naming the resource.
	for _, res := range []string{"orgs/acme/servers/does-not-exist", "orgs/acme/registries/nope", "orgs/acme/servers/nope/tools/read",
		"orgs/globex/servers/github"} {
		r := u.expect(t, "POST", "/v1/"+res+"/bindings", u.token, sa, 404)
		if msg, _ := r.body["message"].(string); !strings.Contains(msg, "does not exist") {
			t.Errorf("binding on %s: %v", res, r.body)
		}
	}
	for _, res := range []string{"orgs/acme/servers/github", "orgs/acme/registries/staging", "orgs/acme/servers/github/tools/create_issue"} {
		u.expect(t, "POST", "/v1/"+res+"/bindings", u.token, sa, 200)
	}

	// Owner teams: another org's team, or none, is refused, naming the field.
	for _, team := range []string{"orgs/globex/teams/platform", "ghosts", "orgs/acme/teams/ghosts"} {
		r := u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{"ownerTeams":["`+team+`"]}`, 400)
		if !strings.Contains(r.body["message"].(string), "owner_teams[0]") {
			t.Errorf("owner team %s: %v", team, r.body)
		}
	}
	u.expect(t, "GET", "/v1/orgs/acme/registries/prod", u.token, "", 404)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{"ownerTeams":["platform"]}`, 200)
	u.expect(t, "PATCH", "/v1/orgs/acme/registries/prod?update_mask=owner_teams", u.token, `{"ownerTeams":["orgs/globex/teams/platform"]}`, 400)

	// Team members: a user must be a member of the organization.
	r := u.expect(t, "POST", "/v1/orgs/acme/teams/platform:addMember", u.token, `{"member":"users/stranger"}`, 400)
	if !strings.Contains(r.body["message"].(string), "member") {
		t.Errorf("addMember of a stranger: %v", r.body)
	}
	u.expect(t, "POST", "/v1/orgs/acme/teams/platform:addMember", u.token, `{"member":"orgs/globex/serviceAccounts/x"}`, 400)
	u.expect(t, "POST", "/v1/orgs/acme/teams/platform:addMember", u.token, `{"member":"users/kim"}`, 200) // kim holds a role in acme

	// A deleted server, registry or team leaves no grant behind: created
	// again, it has none.
	u.expect(t, "DELETE", "/v1/orgs/acme/servers/github", u.token, "", 200)
	u.expect(t, "DELETE", "/v1/orgs/acme/registries/staging", u.token, "", 200)
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/teams/platform"}`, 200)
	u.expect(t, "DELETE", "/v1/orgs/acme/teams/platform", u.token, "", 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=staging", u.token, `{}`, 200)
	for _, res := range []string{"orgs/acme/servers/github", "orgs/acme/registries/staging", "orgs/acme/servers/github/tools/create_issue"} {
		if r := u.expect(t, "GET", "/v1/"+res+"/bindings", u.token, "", 200); len(asList(r.body["bindings"])) != 0 {
			t.Errorf("bindings on the re-created %s: %v", res, r.body)
		}
	}
	for _, b := range asList(u.expect(t, "GET", "/v1/orgs/acme/bindings", u.token, "", 200).body["bindings"]) {
		if strings.Contains(b.(map[string]any)["principal"].(string), "teams/platform") {
			t.Errorf("a binding of the deleted team stayed: %v", b)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestAccessListsPaginate: teams, bindings, tokens and roles page like
// every other list (they returned everything at once before).
func TestAccessListsPaginate(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/serviceAccounts?service_account_id=ci", u.token, `{}`, 200)
	for _, id := range []string{"alpha", "beta", "gamma"} {
		u.expect(t, "POST", "/v1/orgs/acme/teams?team_id="+id, u.token, `{}`, 200)
		u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/teams/`+id+`"}`, 200)
		u.expect(t, "POST", "/v1/orgs/acme/serviceAccounts/ci/tokens", u.token, `{}`, 200)
		u.expect(t, "POST", "/v1/orgs/acme/roles?role_id="+id, u.token, `{"permissions":["orgs.get"]}`, 200)
	}
	for path, field := range map[string]string{
		"/v1/orgs/acme/teams": "teams", "/v1/orgs/acme/bindings": "bindings",
		"/v1/orgs/acme/serviceAccounts/ci/tokens": "tokens", "/v1/orgs/acme/roles": "roles",
	} {
		seen := map[string]bool{}
		token := ""
		for pages := 1; ; pages++ {
			r := u.expect(t, "GET", path+"?page_size=2&page_token="+token, u.token, "", 200)
			items := asList(r.body[field])
			if len(items) > 2 {
				t.Fatalf("%s: a page of %d, want at most 2", path, len(items))
			}
			for _, it := range items {
				name := it.(map[string]any)["name"].(string)
				if seen[name] {
					t.Fatalf("%s: %s twice", path, name)
				}
				seen[name] = true
			}
			token, _ = r.body["nextPageToken"].(string)
			if token == "" {
				break
			}
			if pages > 10 {
				t.Fatalf("%s: no last page", path)
			}
		}
		if len(seen) < 3 {
			t.Errorf("%s: %d items over the pages, want 3 or more", path, len(seen))
		}
		u.expect(t, "GET", path+"?page_token=garbage", u.token, "", 400)
	}
}
