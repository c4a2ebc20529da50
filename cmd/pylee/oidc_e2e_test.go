package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestOIDCEndToEnd: a JWT from an identity provider on loopback
// authenticates a user whose groups claim makes it a member of a team that
// holds a role.
func TestOIDCEndToEnd(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	const issuer = "https://idp.acme.test"
	jwt := func(groups []string, exp time.Duration) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		payload, _ := json.Marshal(map[string]any{"iss": issuer, "aud": "pylee", "sub": "42", "email": "jane@acme.test",
			"name": "Jane", "groups": groups, "exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix()})
		obj, _ := signer.Sign(payload)
		s, _ := obj.CompactSerialize()
		return s
	}
	u := startUp(t, "--oidc-issuer", issuer, "--oidc-audience", "pylee", "--oidc-jwks-url", jwks.URL)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/teams?team_id=platform", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/user","principal":"orgs/acme/teams/platform"}`, 200)

	member := jwt([]string{"acme/platform"}, time.Hour)
	if r := u.expect(t, "GET", "/v1/users/me", member, "", 200); r.body["name"] != "users/jane@acme.test" {
		t.Fatalf("whoami = %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/acme", member, "", 200)
	u.expect(t, "PATCH", "/v1/orgs/acme?update_mask=display_name", member, `{"displayName":"x"}`, 403)
	u.expect(t, "GET", "/v1/orgs/acme", jwt(nil, time.Hour), "", 404)
	u.expect(t, "GET", "/v1/orgs/acme", jwt([]string{"acme/platform"}, -time.Minute*10), "", 401)
	// A binding on the user's own name works too.
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/auditor","principal":"users/jane@acme.test"}`, 200)
	u.expect(t, "GET", "/v1/orgs/acme/events", jwt(nil, time.Hour), "", 200)
	// The first sign-in created the user, audited in the installation log.
	evs := u.waitEvents(t, "-", 1)
	found := false
	for _, e := range evs {
		found = found || (e["action"] == "orgs.user.create" && e["resource"] == "users/jane@acme.test")
	}
	if !found {
		t.Fatalf("no orgs.user.create event: %v", evs)
	}
}

// TestOrgOIDC: an organization's own identity provider authenticates users
// for that organization only.
func TestOrgOIDC(t *testing.T) { testOrgOIDC(t, startUp(t)) }

// testOrgOIDC runs the organization-SSO checks against u, a `pylee up` or
// a split deployment.
func testOrgOIDC(t *testing.T, u *upInstance) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "g1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	issuer := "http://localhost/globex-idp"
	jwt := func(email string, groups []string) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "g1"))
		payload, _ := json.Marshal(map[string]any{"iss": issuer, "aud": "pylee-globex", "sub": email, "email": email,
			"groups": groups, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
		obj, _ := signer.Sign(payload)
		s, _ := obj.CompactSerialize()
		return s
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs?organization_id=globex", u.token, `{}`, 200)
	for _, org := range []string{"acme", "globex"} {
		u.expect(t, "POST", "/v1/orgs/"+org+"/servers?server_id=github", u.token, `{"serverName":"com.`+org+`/github"}`, 200)
		u.expect(t, "POST", "/v1/orgs/"+org+"/registries?registry_id=prod", u.token, `{}`, 200)
	}
	// Before the organization names its IdP, its tokens mean nothing.
	u.expect(t, "GET", "/v1/users/me", jwt("bob@globex.test", nil), "", 401)
	u.expect(t, "PATCH", "/v1/orgs/globex?update_mask=oidc", u.token,
		`{"oidc":{"issuer":"`+issuer+`","audience":"pylee-globex","jwksUri":"`+jwks.URL+`"}}`, 200)
	u.expect(t, "PATCH", "/v1/orgs/acme?update_mask=oidc", u.token, `{"oidc":{"issuer":"ftp://x","audience":"a"}}`, 400)
	u.expect(t, "POST", "/v1/orgs/globex/teams?team_id=platform", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/globex/bindings", u.token, `{"role":"roles/user","principal":"orgs/globex/teams/platform"}`, 200)
	// Even a binding in another organization does not reach across.
	u.expect(t, "POST", "/v1/orgs/acme/bindings", u.token, `{"role":"roles/owner","principal":"users/bob@globex.test"}`, 200)

	bob := jwt("bob@globex.test", []string{"platform", "acme/admins"})
	if r := u.expect(t, "GET", "/v1/users/me", bob, "", 200); r.body["name"] != "users/bob@globex.test" {
		t.Fatalf("whoami = %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/globex", bob, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme", bob, "", 404)
	u.expect(t, "POST", "/v1/orgs?organization_id=bobs", bob, `{}`, 403)
	// Nor can it mint an API token, which would outlive the limit.
	u.expect(t, "POST", "/v1/users/me/tokens", bob, `{}`, 403)
	r := u.expect(t, "GET", "/v1/orgs", bob, "", 200)
	if orgs, _ := r.body["organizations"].([]any); len(orgs) != 1 || orgs[0].(map[string]any)["name"] != "orgs/globex" {
		t.Fatalf("bob lists %v", r.body)
	}
	// Without the team group, no role in globex.
	u.expect(t, "GET", "/v1/orgs/globex", jwt("carol@globex.test", nil), "", 404)
	// The registry service and the gateway's own routes take the same
	// credential, with its groups and its limit (in a split deployment
	// they verify it through the orgs service).
	u.expect(t, "GET", "/v1/orgs/globex/servers/github", bob, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme/servers/github", bob, "", 404)
	u.officialGet(t, "/registries/globex/prod/v0.1/servers", bob, 200)
	u.officialGet(t, "/registries/acme/prod/v0.1/servers", bob, 404)
	u.expect(t, "GET", "/v1/orgs/globex/servers/github", jwt("carol@globex.test", nil), "", 404)
}

// TestOrgOIDCSplit: the same with orgs, registry, audit and the gateway as
// four processes.
func TestOrgOIDCSplit(t *testing.T) {
	dir := t.TempDir()
	addr := map[string][2]string{}
	for _, target := range []string{"orgs", "registry", "audit", "gateway"} {
		addr[target] = [2]string{freeAddr(t), freeAddr(t)}
	}
	common := []string{"--migrate", "--service-token", "pyl_oidc_split_service_token_0123456789", "--page-token-key",
		"oidc-split-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--relay-poll", "50ms",
		"--orgs-addr", addr["orgs"][0], "--registry-addr", addr["registry"][0], "--audit-addr", addr["audit"][0]}
	for _, target := range []string{"audit", "orgs", "registry", "gateway"} {
		args := append([]string{"serve", "--target=" + target, "--grpc-addr", addr[target][0], "--http-addr", addr[target][1],
			"--data-dir", filepath.Join(dir, target)}, common...)
		startProc(t, addr[target][1], filepath.Join(dir, target+".log"), args...)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "orgs", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	testOrgOIDC(t, &upInstance{rest: "http://" + addr["gateway"][1], token: strings.TrimSpace(string(tok))})
}
