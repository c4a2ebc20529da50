package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
)

// secretsClient is a gRPC client of the secrets service and the context of
// a credential.
func (u *upInstance) secretsClient(t *testing.T) secretsv1.SecretsServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretsv1.NewSecretsServiceClient(conn)
}

func bearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// serviceToken is the credential of target's service identity in u.
func (u *upInstance) serviceToken(t testing.TB, target string) string {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(u.dataDir, "service.token"))
	if err != nil {
		t.Fatal(err)
	}
	return auth.ServiceTokenFor(config.NewSecret(strings.TrimSpace(string(secret))), target).Reveal()
}

// TestSecretsEndToEnd: secrets and variables at every scope over REST,
// resolution for the gateway's identity only, the seed's table, and no
// value where it does not belong.
func TestSecretsEndToEnd(t *testing.T) {
	t.Run("keyring", func(t *testing.T) { testSecretsEndToEnd(t, startUp(t)) })
	t.Run("vault", func(t *testing.T) {
		v := startVault(t)
		testSecretsEndToEnd(t, startUp(t, "--secrets-backend", "vault", "--vault-addr", v.addr, "--vault-token", v.token))
	})
}

func testSecretsEndToEnd(t *testing.T, u *upInstance) {
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=team", u.token, `{"parent":"orgs/acme/registries/production"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	doc := `{"name":"com.acme/github","description":"GitHub","version":"1.0.0","packages":[{"registryType":"npm","identifier":"@acme/github","version":"1.0.0","transport":{"type":"stdio"},"environmentVariables":[{"name":"GITHUB_TOKEN","isRequired":true,"isSecret":true},{"name":"DB_CONN_STR","isRequired":true,"isSecret":true},{"name":"LOG_LEVEL"},{"name":"MISSING_ONE","isRequired":true}]}]}`
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/versions:import", u.token, fmt.Sprintf(`{"serverJson":%q}`, doc), 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/team/entries/github", u.token, `{"version":"1.0.0"}`, 200)

	// The seed's table: one name at each scope, and overrides.
	const (
		ghToken   = "ghp_canary_user_0123456789"
		dbConn    = "postgres://canary-server-secret@db/acme"
		model     = "gpt-4o-registry-variable"
		sentryDSN = "https://canary-org-secret@sentry.example/1"
	)
	adminUser := strings.TrimSpace(u.expect(t, "GET", "/v1/users/me", u.token, "", 200).body["name"].(string))
	userID := strings.TrimPrefix(adminUser, "users/")
	u.expect(t, "POST", "/v1/orgs/acme/users/"+userID+"/secrets?secret_id=GITHUB_TOKEN", u.token, fmt.Sprintf(`{"value":%q}`, ghToken), 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=GITHUB_TOKEN", u.token, `{"value":"org-level-github-token-canary"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/secrets?secret_id=DB_CONN_STR", u.token, fmt.Sprintf(`{"value":%q}`, dbConn), 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries/production/variables?variable_id=OPENAI_MODEL", u.token, fmt.Sprintf(`{"value":%q}`, model), 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=SENTRY_DSN", u.token, fmt.Sprintf(`{"value":%q}`, sentryDSN), 200)

	// People see metadata, never a secret's value.
	list := u.expect(t, "GET", "/v1/orgs/acme/secrets", u.token, "", 200)
	if s := fmt.Sprint(list.body); strings.Contains(s, "canary") || !strings.Contains(s, "SENTRY_DSN") {
		t.Fatalf("list of secrets: %v", list.body)
	}
	got := u.expect(t, "GET", "/v1/orgs/acme/secrets/SENTRY_DSN", u.token, "", 200)
	if v, ok := got.body["value"]; ok && v != "" || got.body["version"] != "1" || got.body["fingerprint"] == "" {
		t.Fatalf("get secret: %v", got.body)
	}
	if v := u.expect(t, "GET", "/v1/orgs/acme/registries/production/variables/OPENAI_MODEL", u.token, "", 200); v.body["value"] != model {
		t.Fatalf("a variable is readable: %v", v.body)
	}

	// Versions, check-and-set and restore.
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=SENTRY_DSN", u.token, `{"value":"https://canary-rotated@sentry.example/2"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=SENTRY_DSN&expected_version=1", u.token, `{"value":"stale-canary"}`, 409)
	vs := u.expect(t, "GET", "/v1/orgs/acme/secrets/SENTRY_DSN:versions", u.token, "", 200)
	if n := len(vs.body["versions"].([]any)); n != 2 {
		t.Fatalf("versions = %v", vs.body)
	}
	if r := u.expect(t, "POST", "/v1/orgs/acme/secrets/SENTRY_DSN:restore", u.token, `{"version":"1"}`, 200); r.body["version"] != "3" {
		t.Fatalf("restore = %v", r.body)
	}

	// Bad input: a clear 400 naming the field, nothing written.
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=1BAD", u.token, `{"value":"x"}`, 400)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=OK", u.token, `{"value":"`+strings.Repeat("x", 70_000)+`"}`, 413) // the REST body limit
	if _, err := u.secretsClient(t).SetSecret(bearer(u.token), &secretsv1.SetSecretRequest{Parent: "orgs/acme", SecretId: "OK",
		Secret: &secretsv1.Secret{Value: strings.Repeat("x", 65_537)}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "secret.value") {
		t.Fatalf("a value over 64 KiB: %v", err)
	}
	u.expect(t, "GET", "/v1/orgs/acme/secrets/OK", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/acme/secrets/NOPE", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/globex/secrets", u.token, "", 404)

	// Resolution: the gateway's identity only.
	c := u.secretsClient(t)
	req := &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/team", Server: "orgs/acme/servers/github", User: adminUser}
	for _, who := range []string{u.token, u.serviceToken(t, "registry"), u.serviceToken(t, "orgs")} {
		if _, err := c.Resolve(bearer(who), req); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("resolve by a caller other than gateway and deploy: %v", err)
		}
	}
	res, err := c.Resolve(bearer(u.serviceToken(t, "gateway")), req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"GITHUB_TOKEN": {ghToken, "orgs/acme/users/" + userID},
		"DB_CONN_STR":  {dbConn, "orgs/acme/servers/github"},
		"OPENAI_MODEL": {model, "orgs/acme/registries/production"}, // the team registry's parent
		"SENTRY_DSN":   {sentryDSN, "orgs/acme"},
	}
	if len(res.GetValues()) != len(want) {
		t.Fatalf("resolved %v", res.GetValues())
	}
	for _, v := range res.GetValues() {
		if w := want[v.GetName()]; v.GetValue() != w[0] || v.GetScope() != w[1] {
			t.Fatalf("%s = %q from %s, want %q from %s", v.GetName(), v.GetValue(), v.GetScope(), w[0], w[1])
		}
	}

	// The data plane watches for changes: names and versions, never
	// values; from revision 0 it replays them all, then follows.
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/secrets?secret_id=DB_CONN_STR", u.token, `{"value":"postgres://canary-rotated@db/acme"}`, 200)
	wctx, cancel := context.WithTimeout(bearer(u.serviceToken(t, "gateway")), 10*time.Second)
	defer cancel()
	watch, err := c.WatchValues(wctx, &secretsv1.WatchValuesRequest{Parent: "orgs/acme", SinceRevision: 0})
	if err != nil {
		t.Fatal(err)
	}
	next := func(rev int64) *secretsv1.ValueChange {
		t.Helper()
		ch, err := watch.Recv()
		if err != nil || ch.GetRevision() != rev || strings.Contains(ch.String(), "canary") {
			t.Fatalf("change %d: %v, %v", rev, ch, err)
		}
		return ch
	}
	rev := int64(1)
	for ch := next(rev); ch.GetName() != "orgs/acme/servers/github/secrets/DB_CONN_STR" || ch.GetVersion() != 2; ch = next(rev) {
		rev++
	}
	u.expect(t, "POST", "/v1/orgs/acme/variables?variable_id=LIVE", u.token, `{"value":"x"}`, 200)
	if ch := next(rev + 1); ch.GetName() != "orgs/acme/variables/LIVE" || ch.GetType() != "set" {
		t.Fatalf("a live change: %v", ch)
	}
	cancel()

	// A rotated value is in use on the next resolve.
	res, err = c.Resolve(bearer(u.serviceToken(t, "deploy")), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.GetValues() {
		if v.GetName() == "DB_CONN_STR" && v.GetValue() != "postgres://canary-rotated@db/acme" {
			t.Fatalf("after rotation DB_CONN_STR = %q", v.GetValue())
		}
	}

	// Explain: masked, with overrides and what the pinned version lacks.
	ex := u.expect(t, "GET", "/v1/orgs/acme/registries/team/servers/github:explainResolution?user="+adminUser, u.token, "", 200)
	s := fmt.Sprint(ex.body)
	if strings.Contains(s, "canary") || !strings.Contains(s, "********") || !strings.Contains(s, model) {
		t.Fatalf("explain shows a secret, or masks a variable: %v", ex.body)
	}
	if m, _ := ex.body["missing"].([]any); len(m) != 1 || m[0] != "MISSING_ONE" {
		t.Fatalf("missing = %v", ex.body["missing"])
	}
	if !strings.Contains(s, "orgs/acme/secrets/GITHUB_TOKEN") {
		t.Fatalf("explain does not say the user's GITHUB_TOKEN overrides the organization's: %v", ex.body)
	}

	// Explaining shows no more than listing would: another user's scope is
	// refused, and a caller bound on one registry sees nothing of the
	// organization's or the parent registry's values.
	auditor := u.saToken(t, "acme", "auditor", "roles/auditor", "orgs/acme")
	u.expect(t, "GET", "/v1/orgs/acme/registries/team/servers/github:explainResolution?user="+adminUser, auditor, "", 400)
	dev := u.saToken(t, "acme", "teamdev", "roles/developer", "orgs/acme/registries/team")
	if ex := u.expect(t, "GET", "/v1/orgs/acme/registries/team/servers/github:explainResolution", dev, "", 200); strings.Contains(fmt.Sprint(ex.body), model) ||
		strings.Contains(fmt.Sprint(ex.body), "SENTRY_DSN") {
		t.Fatalf("a caller bound on one registry sees its parent's or the organization's values: %v", ex.body)
	}
	// WatchValues is the data plane's: people are refused.
	if w, err := c.WatchValues(bearer(u.token), &secretsv1.WatchValuesRequest{Parent: "orgs/acme"}); err == nil {
		if _, err := w.Recv(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a person's watch: %v", err)
		}
	}

	// A caller whose role does not grant secrets.list sees no names.
	viewer := u.saToken(t, "acme", "viewer", "roles/user", "orgs/acme")
	u.expect(t, "GET", "/v1/orgs/acme/secrets", viewer, "", 403)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=X", viewer, `{"value":"viewer-canary"}`, 403)

	// Deleting.
	u.expect(t, "DELETE", "/v1/orgs/acme/secrets/SENTRY_DSN", u.token, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme/secrets/SENTRY_DSN", u.token, "", 404)

	// A deleted server's values go with it: a server made again under its
	// id starts with none.
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=tmp", u.token, `{"serverName":"com.acme/tmp"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/tmp/secrets?secret_id=OLD", u.token, `{"value":"tmp-canary"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/tmp/variables?variable_id=OLD_VAR", u.token, `{"value":"x"}`, 200)
	u.expect(t, "DELETE", "/v1/orgs/acme/servers/tmp", u.token, "", 200)
	u.expect(t, "GET", "/v1/orgs/acme/servers/tmp/secrets/OLD", u.token, "", 404)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=tmp", u.token, `{"serverName":"com.acme/tmp"}`, 200)
	if l := u.expect(t, "GET", "/v1/orgs/acme/servers/tmp/secrets", u.token, "", 200); len(l.body["secrets"].([]any)) != 0 {
		t.Fatalf("a re-created server has its predecessor's secrets: %v", l.body)
	}
	if l := u.expect(t, "GET", "/v1/orgs/acme/servers/tmp/variables", u.token, "", 200); len(l.body["variables"].([]any)) != 0 {
		t.Fatalf("a re-created server has its predecessor's variables: %v", l.body)
	}

	// No value in the audit log, the logs, or the keyring's database file.
	time.Sleep(300 * time.Millisecond)
	events := u.expect(t, "GET", "/v1/orgs/acme/events?page_size=1000", u.token, "", 200)
	if s := fmt.Sprint(events.body); strings.Contains(s, "canary") || !strings.Contains(s, "secrets.secret.set") || !strings.Contains(s, "secrets.value.resolve") {
		t.Fatalf("audit log: value present or events missing: %.2000s", s)
	}
	if strings.Contains(u.logs.String(), "canary") {
		t.Fatal("a value is in the logs")
	}
	files, _ := filepath.Glob(filepath.Join(u.dataDir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), "canary") {
			t.Fatalf("a value in plain text in %s", f)
		}
	}
}
