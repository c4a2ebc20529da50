package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
)

func (u *upInstance) expect(t *testing.T, method, path, token, body string, status int) restResp {
	t.Helper()
	var r restResp
	if body == "" {
		r = u.do(t, method, path, token, nil)
	} else {
		r = u.do(t, method, path, token, strings.NewReader(body))
	}
	if r.status != status {
		t.Fatalf("%s %s: %d, want %d: %v", method, path, r.status, status, r.body)
	}
	return r
}

// saToken creates service account id in org with role on resource and
// returns its token.
func (u *upInstance) saToken(t *testing.T, org, id, role, resource string) string {
	t.Helper()
	u.expect(t, "POST", "/v1/orgs/"+org+"/serviceAccounts?service_account_id="+id, u.token, `{"displayName":"`+id+`"}`, 200)
	r := u.expect(t, "POST", "/v1/orgs/"+org+"/serviceAccounts/"+id+"/tokens", u.token, `{}`, 200)
	secret, _ := r.body["secret"].(string)
	if !strings.HasPrefix(secret, "pyl_") {
		t.Fatalf("token secret = %q", secret)
	}
	if role != "" {
		u.expect(t, "POST", "/v1/"+resource+"/bindings", u.token, `{"role":"`+role+`","principal":"orgs/`+org+`/serviceAccounts/`+id+`"}`, 200)
	}
	return secret
}

func TestAccessEndToEnd(t *testing.T) {
	u := startUp(t, "--auth-cache-ttl", "300ms")
	for _, org := range []string{"acme", "globex"} {
		u.expect(t, "POST", "/v1/orgs?organization_id="+org, u.token, `{"displayName":"`+org+`"}`, 200)
	}
	// whoami
	if r := u.expect(t, "GET", "/v1/users/me", u.token, "", 200); r.body["name"] != "users/admin" {
		t.Fatalf("whoami = %v", r.body)
	}

	ci := u.saToken(t, "acme", "ci", "roles/user", "orgs/acme")
	if r := u.expect(t, "GET", "/v1/users/me", ci, "", 200); r.body["name"] != "orgs/acme/serviceAccounts/ci" || r.body["kind"] != "service-account" {
		t.Fatalf("whoami as ci = %v", r.body)
	}
	// A user can read its org, not change it, and cannot see another org.
	u.expect(t, "GET", "/v1/orgs/acme", ci, "", 200)
	u.expect(t, "PATCH", "/v1/orgs/acme?update_mask=display_name", ci, `{"displayName":"x"}`, 403)
	if r := u.expect(t, "GET", "/v1/orgs/globex", ci, "", 404); strings.Contains(r.body["message"].(string), "globex\"") && r.body["displayName"] != nil {
		t.Fatalf("other org leaked: %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/globex/events", ci, "", 404)
	r := u.expect(t, "GET", "/v1/orgs", ci, "", 200)
	if orgs, _ := r.body["organizations"].([]any); len(orgs) != 1 || orgs[0].(map[string]any)["name"] != "orgs/acme" {
		t.Fatalf("ci lists %v", r.body)
	}
	// A user cannot grant anything.
	u.expect(t, "POST", "/v1/orgs/acme/bindings", ci, `{"role":"roles/user","principal":"users/someone"}`, 403)
	// A user cannot create organizations (installation level).
	u.expect(t, "POST", "/v1/orgs?organization_id=mine", ci, `{}`, 403)
	// A service account cannot mint more tokens for itself; a user can.
	u.expect(t, "POST", "/v1/users/me/tokens", ci, `{}`, 403)
	if r := u.expect(t, "POST", "/v1/users/me/tokens", u.token, `{"displayName":"laptop"}`, 200); !strings.HasPrefix(r.body["name"].(string), "users/admin/tokens/") {
		t.Fatalf("personal token = %v", r.body)
	}

	// Bindings on a registry, a server and one tool.
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=gh", u.token, `{"serverName":"com.acme/gh"}`, 200)
	for _, res := range []string{"orgs/acme/registries/prod", "orgs/acme/servers/github", "orgs/acme/servers/github/tools/create_issue"} {
		u.expect(t, "POST", "/v1/"+res+"/bindings", u.token, `{"role":"roles/developer","principal":"orgs/acme/serviceAccounts/ci"}`, 200)
		if r := u.expect(t, "GET", "/v1/"+res+"/bindings", u.token, "", 200); len(r.body["bindings"].([]any)) != 1 {
			t.Fatalf("bindings on %s = %v", res, r.body)
		}
	}
	// Cross-tenant principals are refused.
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/user","principal":"orgs/globex/serviceAccounts/x"}`, 400)

	// Escalation: an admin cannot grant owner (it lacks orgs.delete), nor
	// make itself owner; nobody removes the last owner.
	admin := u.saToken(t, "acme", "ops", "roles/admin", "orgs/acme")
	u.expect(t, "POST", "/v1/orgs/acme/bindings", admin, `{"role":"roles/owner","principal":"orgs/acme/serviceAccounts/ops"}`, 403)
	u.expect(t, "POST", "/v1/orgs/acme/bindings", admin, `{"role":"roles/owner","principal":"users/friend"}`, 403)
	u.waitEvent(t, "acme", func(ev map[string]any) bool { // refused in the handler, audited all the same
		return ev["action"] == "orgs.binding.create" && ev["outcome"] == "denied" && ev["actor"].(map[string]any)["principal"] == "orgs/acme/serviceAccounts/ops"
	})
	u.expect(t, "POST", "/v1/orgs/acme/bindings", admin, `{"role":"roles/developer","principal":"users/friend"}`, 200)
	owners := u.expect(t, "GET", "/v1/orgs/acme/bindings", u.token, "", 200)
	var ownerBinding string
	for _, b := range owners.body["bindings"].([]any) {
		if m := b.(map[string]any); m["role"] == "roles/owner" {
			ownerBinding = m["name"].(string)
		}
	}
	if ownerBinding == "" {
		t.Fatal("the creator is not owner of the new organization")
	}
	u.expect(t, "DELETE", "/v1/"+ownerBinding, u.token, "", 400)

	// Custom roles: only with permissions the creator holds.
	u.expect(t, "POST", "/v1/orgs/acme/roles?role_id=reader", admin, `{"title":"Reader","permissions":["orgs.get","audit.read"]}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/roles?role_id=deleter", admin, `{"permissions":["orgs.delete"]}`, 403)
	u.expect(t, "POST", "/v1/orgs/acme/roles?role_id=bad", u.token, `{"permissions":["no.such"]}`, 400)

	// Teams are principals.
	u.expect(t, "POST", "/v1/orgs/acme/teams?team_id=auditors", u.token, `{"displayName":"Auditors"}`, 200)
	aud := u.saToken(t, "acme", "aud", "", "")
	u.expect(t, "GET", "/v1/orgs/acme/events", aud, "", 404) // not a member yet
	u.expect(t, "POST", "/v1/orgs/acme/teams/auditors:addMember", u.token, `{"member":"orgs/acme/serviceAccounts/aud"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"orgs/acme/roles/reader","principal":"orgs/acme/teams/auditors"}`, 200)
	u.expect(t, "GET", "/v1/orgs/acme/events", aud, "", 200)
	u.expect(t, "PATCH", "/v1/orgs/acme?update_mask=display_name", aud, `{"displayName":"x"}`, 403)

	// Binding removal takes effect at once (local change); token revocation
	// within the authentication cache bound (300ms here).
	var ciBinding string
	for _, b := range u.expect(t, "GET", "/v1/orgs/acme/bindings", u.token, "", 200).body["bindings"].([]any) {
		if m := b.(map[string]any); m["principal"] == "orgs/acme/serviceAccounts/ci" {
			ciBinding = m["name"].(string)
		}
	}
	u.expect(t, "DELETE", "/v1/"+ciBinding, u.token, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme", ci, "", 403) // still a member through its server bindings

	toks := u.expect(t, "GET", "/v1/orgs/acme/serviceAccounts/aud/tokens", u.token, "", 200)
	list := toks.body["tokens"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["secret"] != "" {
		t.Fatalf("token list = %v", toks.body)
	}
	u.expect(t, "DELETE", "/v1/"+list[0].(map[string]any)["name"].(string), u.token, "", 200)
	revoked := time.Now()
	for u.do(t, "GET", "/v1/orgs/acme/events", aud, nil).status != 401 {
		if time.Since(revoked) > 2*time.Second {
			t.Fatal("revoked token still works after 2s (bound: 300ms)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("revoked token refused after %v (bound 300ms)", time.Since(revoked).Round(time.Millisecond))

	// Every change is in the audit log with its actor.
	evs := u.waitEvents(t, "acme", 10)
	seen := map[string]string{}
	for _, e := range evs {
		seen[e["action"].(string)] = e["actor"].(map[string]any)["principal"].(string)
	}
	for action, actor := range map[string]string{
		"orgs.serviceAccount.create": "users/admin", "orgs.token.create": "users/admin", "orgs.binding.create": "users/admin",
		"orgs.role.create": "orgs/acme/serviceAccounts/ops", "orgs.team.create": "users/admin",
		"orgs.team.addMember": "users/admin", "orgs.binding.delete": "users/admin", "orgs.token.revoke": "users/admin",
	} {
		if seen[action] == "" {
			t.Errorf("no %s event", action)
		}
		if action == "orgs.role.create" && seen[action] != actor {
			t.Errorf("%s by %s, want %s", action, seen[action], actor)
		}
	}
}

func TestAccessCLI(t *testing.T) {
	u := startUp(t)
	t.Setenv("PYLEE_CONFIG_DIR", t.TempDir())
	run := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := cli.Execute(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("pylee %v: %s", args, errOut.String())
		}
		return out.String()
	}
	// login saves a context; later commands need neither --api-url nor --token.
	if out := run("login", "--api-url", u.rest, "--token", u.token); !strings.Contains(out, "as users/admin") {
		t.Fatalf("login: %s", out)
	}
	if out := run("whoami"); !strings.Contains(out, "users/admin") {
		t.Fatalf("whoami: %s", out)
	}
	run("org", "create", "acme")
	run("service-account", "create", "ci", "--org", "acme")
	out := run("token", "create", "--org", "acme", "--service-account", "ci", "-o", "json")
	var tok map[string]any
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok["secret"].(string), "pyl_") {
		t.Fatalf("token create: %s", out)
	}
	run("server", "create", "github", "--org", "acme", "--server-name", "com.acme/github")
	run("binding", "create", "orgs/acme/servers/github", "--role", "roles/user", "--principal", "orgs/acme/serviceAccounts/ci")
	if out := run("binding", "list", "orgs/acme/servers/github"); !strings.Contains(out, "orgs/acme/serviceAccounts/ci") {
		t.Fatalf("binding list: %s", out)
	}
	run("team", "create", "platform", "--org", "acme")
	run("binding", "create", "orgs/acme", "--role", "roles/user", "--principal", "users/jane") // a member first
	run("team", "add-member", "platform", "users/jane", "--org", "acme")
	if out := run("team", "list", "--org", "acme"); !strings.Contains(out, "users/jane") {
		t.Fatalf("team list: %s", out)
	}
	run("role", "create", "reader", "--org", "acme", "--permission", "orgs.get,audit.read")
	if out := run("role", "list", "--org", "acme"); !strings.Contains(out, "orgs/acme/roles/reader") || !strings.Contains(out, "roles/owner") {
		t.Fatalf("role list: %s", out)
	}
	out = run("invite", "create", "ann@acme.test", "--org", "acme", "--role", "roles/user", "-o", "json")
	var inv map[string]any
	if err := json.Unmarshal([]byte(out), &inv); err != nil || !strings.HasPrefix(inv["token"].(string), "pyli_") {
		t.Fatalf("invite create: %s", out)
	}
	if out := run("invite", "accept", inv["token"].(string), "--token", "", "-o", "json"); !strings.Contains(out, "users/ann@acme.test") {
		t.Fatalf("invite accept: %s", out)
	}
	if out := run("member", "list", "--org", "acme"); !strings.Contains(out, "users/ann@acme.test") {
		t.Fatalf("member list: %s", out)
	}
	run("member", "remove", "ann@acme.test", "--org", "acme")
	// The service account's own token, via the environment, wins over the context.
	t.Setenv("PYLEE_TOKEN", tok["secret"].(string))
	if out := run("whoami"); !strings.Contains(out, "orgs/acme/serviceAccounts/ci") {
		t.Fatalf("whoami as ci: %s", out)
	}
	// A service account does not manage its own tokens.
	var out2, errOut2 strings.Builder
	if code := cli.Execute(context.Background(), []string{"token", "list", "--org", "acme", "--service-account", "ci"}, &out2, &errOut2); code == 0 || !strings.Contains(errOut2.String(), "PERMISSION_DENIED") {
		t.Fatalf("ci listing its tokens: %d %s", code, errOut2.String())
	}
	os.Unsetenv("PYLEE_TOKEN")
	if out := run("token", "list", "--org", "acme", "--service-account", "ci"); strings.Contains(out, "pyl_") || !strings.Contains(out, "orgs/acme/serviceAccounts/ci/tokens/") {
		t.Fatalf("token list: %s", out)
	}
}

func TestInvitationsAndMembers(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=gh", u.token, `{"serverName":"com.acme/gh"}`, 200)
	r := u.expect(t, "POST", "/v1/orgs/acme/invitations", u.token, `{"email":"jane@acme.test","role":"roles/developer"}`, 200)
	invite, _ := r.body["token"].(string)
	if !strings.HasPrefix(invite, "pyli_") || r.body["state"] != "pending" {
		t.Fatalf("invitation = %v", r.body)
	}
	if r := u.expect(t, "GET", "/v1/orgs/acme/invitations", u.token, "", 200); strings.Contains(fmt.Sprint(r.body), invite) {
		t.Fatal("list shows the invitation token")
	}
	// Accepted without a credential: the invited user is created with a token.
	r = u.expect(t, "POST", "/v1/invitations:accept", "", `{"token":"`+invite+`"}`, 200)
	jane, _ := r.body["token"].(map[string]any)["secret"].(string)
	if r.body["user"].(map[string]any)["name"] != "users/jane@acme.test" || !strings.HasPrefix(jane, "pyl_") {
		t.Fatalf("accept = %v", r.body)
	}
	u.expect(t, "POST", "/v1/invitations:accept", "", `{"token":"`+invite+`"}`, 401) // once only
	if r := u.expect(t, "GET", "/v1/users/me", jane, "", 200); r.body["name"] != "users/jane@acme.test" {
		t.Fatalf("whoami = %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/acme", jane, "", 200)
	members := u.expect(t, "GET", "/v1/orgs/acme/members", u.token, "", 200)
	if !strings.Contains(fmt.Sprint(members.body), "users/jane@acme.test") || !strings.Contains(fmt.Sprint(members.body), "roles/developer on orgs/acme") {
		t.Fatalf("members = %v", members.body)
	}
	// A developer cannot invite (no invitations.create), nor as owner.
	u.expect(t, "POST", "/v1/orgs/acme/invitations", jane, `{"email":"x@acme.test","role":"roles/user"}`, 403)
	// Revoked and expired invitations do not work; an authenticated caller joins as itself.
	r = u.expect(t, "POST", "/v1/orgs/acme/invitations", u.token, `{"email":"bob@acme.test","role":"roles/user"}`, 200)
	u.expect(t, "POST", "/v1/"+r.body["name"].(string)+":revoke", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/invitations:accept", "", `{"token":"`+r.body["token"].(string)+`"}`, 401)
	exp := time.Now().Add(1200 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	r = u.expect(t, "POST", "/v1/orgs/acme/invitations", u.token, `{"email":"eve@acme.test","role":"roles/user","expireTime":"`+exp+`"}`, 200)
	time.Sleep(1300 * time.Millisecond)
	u.expect(t, "POST", "/v1/invitations:accept", "", `{"token":"`+r.body["token"].(string)+`"}`, 401)
	u.expect(t, "POST", "/v1/orgs?organization_id=globex", u.token, `{}`, 200)
	r = u.expect(t, "POST", "/v1/orgs/globex/invitations", u.token, `{"email":"jane@acme.test","role":"roles/auditor"}`, 200)
	if r := u.expect(t, "POST", "/v1/invitations:accept", jane, `{"token":"`+r.body["token"].(string)+`"}`, 200); r.body["token"] != nil {
		t.Fatalf("an authenticated accept minted a token: %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/globex/events", jane, "", 200)
	// Removing the member removes its access; the last owner stays.
	u.expect(t, "DELETE", "/v1/orgs/acme/members/jane@acme.test", u.token, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme", jane, "", 404)
	u.expect(t, "DELETE", "/v1/orgs/acme/members/admin", u.token, "", 400)
	// ListAllowed: the tools a principal may invoke.
	u.expect(t, "POST", "/v1/orgs/acme/servers/gh/tools/read/bindings", u.token, `{"role":"roles/user","principal":"users/kim"}`, 200)
	// Only services may ask about others; a user asks about itself.
	u.expect(t, "POST", "/v1/access:listAllowed", u.token, `{"principal":"users/kim","permission":"tools.invoke","resources":["orgs/acme/servers/gh/tools/read"]}`, 403)
	kimInvite := u.expect(t, "POST", "/v1/orgs/acme/invitations", u.token, `{"email":"kim@acme.test","role":"roles/auditor"}`, 200).body["token"].(string)
	kim := u.expect(t, "POST", "/v1/invitations:accept", "", `{"token":"`+kimInvite+`"}`, 200).body["token"].(map[string]any)["secret"].(string)
	u.expect(t, "POST", "/v1/orgs/acme/servers/gh/tools/read/bindings", u.token, `{"role":"roles/user","principal":"users/kim@acme.test"}`, 200)
	r = u.expect(t, "POST", "/v1/access:listAllowed", kim, `{"permission":"tools.invoke","resources":["orgs/acme/servers/gh/tools/read","orgs/acme/servers/gh/tools/write"]}`, 200)
	if got := fmt.Sprint(r.body["resources"]); got != "[orgs/acme/servers/gh/tools/read]" {
		t.Fatalf("ListAllowed = %s", got)
	}
}
