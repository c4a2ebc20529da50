package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
)

// cliIn runs a pylee client command against u as the admin with stdin as
// standard input, a terminal or not.
func (u *upInstance) cliIn(stdin string, terminal bool, args ...string) (string, string, int) {
	var out, errOut strings.Builder
	code := cli.ExecuteStreams(context.Background(), append([]string{"--api-url", u.rest, "--token", u.token}, args...),
		cli.Streams{In: strings.NewReader(stdin), InTerminal: terminal, Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

func TestCLIHardening(t *testing.T) {
	u := startUp(t)
	t.Run("deletes ask first", func(t *testing.T) { testDeletesAskFirst(t, u) })
	t.Run("server data is escaped", func(t *testing.T) { testServerDataEscaped(t, u) })
	t.Run("enums and refusals", func(t *testing.T) { testEnumsAndRefusals(t, u) })
}

func testDeletesAskFirst(t *testing.T, u *upInstance) {
	u.expect(t, "POST", "/v1/orgs?organization_id=doomed", u.token, `{}`, 200)
	// A script without --yes: refused before anything is sent.
	_, errOut, code := u.cliIn("doomed\n", false, "org", "delete", "doomed")
	if code != 1 || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "orgs/doomed") {
		t.Fatalf("non-interactive delete without --yes: %d %q", code, errOut)
	}
	u.expect(t, "GET", "/v1/orgs/doomed", u.token, "", 200)
	// At a terminal, a wrong answer keeps it; its id deletes it.
	if _, errOut, code := u.cliIn("y\n", true, "org", "delete", "doomed"); code != 1 || !strings.Contains(errOut, "was not deleted") {
		t.Fatalf("wrong answer: %d %q", code, errOut)
	}
	u.expect(t, "GET", "/v1/orgs/doomed", u.token, "", 200)
	if out, errOut, code := u.cliIn("doomed\n", true, "org", "delete", "doomed"); code != 0 || !strings.Contains(out, "deleted orgs/doomed") ||
		!strings.Contains(errOut, `Type the organization id "doomed"`) {
		t.Fatalf("confirmed: %d %q %q", code, out, errOut)
	}
	u.expect(t, "GET", "/v1/orgs/doomed", u.token, "", 404)

	// Servers and registries alike; -y in scripts.
	u.expect(t, "POST", "/v1/orgs?organization_id=keep", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/keep/servers?server_id=tmp", u.token, `{"serverName":"com.keep/tmp"}`, 200)
	u.expect(t, "POST", "/v1/orgs/keep/registries?registry_id=tmp", u.token, `{}`, 200)
	for _, c := range [][]string{{"server", "delete", "tmp"}, {"registry", "delete", "tmp"}} {
		args := append([]string{"--org", "keep"}, c...)
		if _, errOut, code := u.cliIn("", false, args...); code != 1 || !strings.Contains(errOut, "--yes") {
			t.Fatalf("%v without --yes: %d %q", c, code, errOut)
		}
		if out, errOut, code := u.cliIn("", false, append(args, "-y")...); code != 0 || !strings.Contains(out, "deleted orgs/keep/") {
			t.Fatalf("%v -y: %d %q %q", c, code, out, errOut)
		}
	}
	u.expect(t, "GET", "/v1/orgs/keep/servers/tmp", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/keep/registries/tmp", u.token, "", 404)
	// --yes as scripts and the README use it.
	if out, errOut, code := u.cli("org", "delete", "keep", "--yes"); code != 0 || out != "deleted orgs/keep\n" {
		t.Fatalf("--yes: %d %q %q", code, out, errOut)
	}
}

func testServerDataEscaped(t *testing.T, u *upInstance) {
	// The API refuses control characters in text, but not format
	// characters: a right-to-left override makes "Acme exe.txt" read
	// otherwise.
	display := "Acme \u202etxt.exe"
	u.expect(t, "POST", "/v1/orgs?organization_id=bidi", u.token, `{"displayName":"Acme \u202etxt.exe"}`, 200)
	for _, args := range [][]string{{"org", "get", "bidi"}, {"org", "list"}, {"org", "get", "bidi", "-o", "yaml"}} {
		out, errOut, code := u.cli(args...)
		if code != 0 || strings.ContainsRune(out, '\u202e') || !strings.Contains(out, `Acme \u202etxt.exe`) {
			t.Fatalf("%v: %d %q %q", args, code, out, errOut)
		}
	}
	out, _, code := u.cli("org", "get", "bidi", "-o", "json")
	var o map[string]any
	if code != 0 || strings.ContainsRune(out, '\u202e') || json.Unmarshal([]byte(out), &o) != nil || o["displayName"] != display {
		t.Fatalf("json: %d %q", code, out)
	}
	// An error about what was sent never carries it raw.
	_, errOut, code := u.cli("org", "create", "bad\x1b]0;owned\x07id")
	if code != 1 || strings.ContainsAny(errOut, "\x1b\x07") || !strings.Contains(errOut, `\x1b`) {
		t.Fatalf("error: %d %q", code, errOut)
	}
}

func testEnumsAndRefusals(t *testing.T, u *upInstance) {
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", u.token, `{"serverName":"com.acme/github"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/versions", u.token, `{"version":"1.0.0"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{"approvalRequired":true,"minApprovals":2}`, 200)
	r := u.expect(t, "PUT", "/v1/orgs/acme/registries/production/entries/github", u.token, `{"version":"1.0.0"}`, 200)
	api := r.body["approval"].(map[string]any)
	name := api["name"].(string)

	// One spelling: -o json is what the API answers, and the table shows
	// the same names.
	out, _, code := u.cli("approval", "show", name, "-o", "json")
	var a map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a["kind"] != api["kind"] || a["state"] != api["state"] || a["state"] != "STATE_PENDING" {
		t.Fatalf("json %q, API %v", out, api)
	}
	if out, _, _ := u.cli("approval", "show", name, "-o", "yaml"); !strings.Contains(out, "state: STATE_PENDING") || !strings.Contains(out, "kind: KIND_PIN") {
		t.Fatalf("yaml: %s", out)
	}
	for _, state := range []string{"pending", "STATE_PENDING"} {
		out, _, code := u.cli("--org", "acme", "approval", "list", "--registry", "production", "--state", state)
		if code != 0 || !strings.Contains(out, "KIND_PIN") || !strings.Contains(out, "STATE_PENDING") || !strings.Contains(out, "0/2") {
			t.Fatalf("table with --state %s: %d %s", state, code, out)
		}
	}
	if out, _, _ := u.cli("--org", "acme", "registry", "entries", "production"); strings.Contains(out, "active") {
		t.Fatalf("entries table uses a short enum name: %s", out)
	}

	// The requester approving its own request is refused in the handler,
	// and audited like a refusal at the door.
	_, errOut, code := u.cli("approval", "approve", name)
	if code != 1 || !strings.Contains(errOut, "PERMISSION_DENIED") {
		t.Fatalf("self-approval: %d %q", code, errOut)
	}
	ev := u.waitEvent(t, "acme", func(e map[string]any) bool {
		return e["action"] == "registry.approval.approve" && e["outcome"] == "denied"
	})
	md, _ := ev["metadata"].(map[string]any)
	if ev["resource"] != name || !strings.Contains(md["reason"].(string), "cannot approve") || ev["actor"].(map[string]any)["principal"] != "users/admin" {
		t.Fatalf("denied event = %v", ev)
	}
	// Exactly one: once a later event is in the log, every earlier one is.
	a1 := u.saToken(t, "acme", "approver1", "roles/admin", "orgs/acme")
	if _, errOut, code := u.cliAs(a1, "approval", "approve", name); code != 0 {
		t.Fatalf("approve: %s", errOut)
	}
	u.waitEvent(t, "acme", func(e map[string]any) bool {
		return e["action"] == "registry.approval.approve" && e["outcome"] == "ok"
	})
	time.Sleep(100 * time.Millisecond)
	n := 0
	for _, e := range u.waitEvents(t, "acme", 1) {
		if e["action"] == "registry.approval.approve" && e["outcome"] == "denied" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d denied approve events, want 1", n)
	}
}
