package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
)

// TestHostileHTTP: each finding of the hardening issue that an HTTP client
// can show, against a real `pylee up`.
func TestHostileHTTP(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{"displayName":"Acme"}`, 200)

	// Invalid UTF-8 in a path, a query or a body: 400, not 500.
	for _, path := range []string{"/v1/orgs/%ff", "/v1/orgs?page_token=%ff", "/v1/orgs?filter=%ff", "/registries/acme/r/v0.1/servers?cursor=%ff"} {
		for _, tok := range []string{"", u.token} {
			if r := u.do(t, "GET", path, tok, nil); r.status != 400 {
				t.Errorf("GET %s (token %v): %d %v, want 400", path, tok != "", r.status, r.body)
			}
		}
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=bad-utf", u.token, "{\"displayName\":\"\xff\"}", 400)

	// A wrong method: 405 with Allow.
	r := u.do(t, "PUT", "/v1/orgs/acme", u.token, strings.NewReader(`{}`))
	if r.status != 405 || r.header.Get("Allow") != "DELETE, GET, PATCH" {
		t.Errorf("PUT /v1/orgs/acme: %d Allow=%q %v", r.status, r.header.Get("Allow"), r.body)
	}

	// Trailing data after the JSON body: refused, nothing created.
	u.expect(t, "POST", "/v1/orgs?organization_id=trail-one", u.token, `{"displayName":"x"} trailing`, 400)
	u.expect(t, "POST", "/v1/orgs?organization_id=trail-two", u.token, `{"displayName":"x"}{"a":1}`, 400)
	u.expect(t, "GET", "/v1/orgs/trail-one", u.token, "", 404)
	u.expect(t, "GET", "/v1/orgs/trail-two", u.token, "", 404)
	u.expect(t, "POST", "/v1/orgs?organization_id=deep", u.token, `{"displayName":"x","oidc":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`, 400)

	// Control characters in text: refused.
	u.expect(t, "POST", "/v1/orgs?organization_id=ansi", u.token, `{"displayName":"\u001b]0;pwned\u0007"}`, 400)
	u.expect(t, "POST", "/v1/orgs?organization_id=nul", u.token, `{"description":"a\u0000b"}`, 400)
	// Lengths count characters: 200 emoji are 200 characters.
	u.expect(t, "POST", "/v1/orgs?organization_id=emoji", u.token, `{"displayName":"`+strings.Repeat("🚀", 200)+`"}`, 200)

	// The update mask in its JSON spelling.
	u.expect(t, "PATCH", "/v1/orgs/acme?updateMask=displayName", u.token, `{"displayName":"Acme Inc"}`, 200)
	if r := u.expect(t, "GET", "/v1/orgs/acme", u.token, "", 200); r.body["displayName"] != "Acme Inc" {
		t.Errorf("after updateMask=displayName: %v", r.body)
	}

	// Page tokens carry no org id, and another caller cannot use one.
	for _, id := range []string{"beta", "gamma"} {
		u.expect(t, "POST", "/v1/orgs?organization_id="+id, u.token, `{}`, 200)
	}
	page := u.expect(t, "GET", "/v1/orgs?page_size=1", u.token, "", 200)
	next, _ := page.body["nextPageToken"].(string)
	raw, _ := base64.RawURLEncoding.DecodeString(next)
	if next == "" || strings.Contains(string(raw), "acme") || strings.Contains(string(raw), "beta") {
		t.Errorf("page token %q reveals an id", next)
	}
	other := u.saToken(t, "acme", "reader", "roles/admin", "orgs/acme")
	u.expect(t, "GET", "/v1/orgs?page_size=1&page_token="+next, other, "", 400)
	u.expect(t, "GET", "/v1/orgs?page_size=1&page_token="+next, u.token, "", 200)
}

// TestSlowBodyIsCut: a client trickling its body is disconnected once the
// read timeout passes, instead of holding the connection for ever.
func TestSlowBodyIsCut(t *testing.T) {
	u := startUp(t, "--read-timeout", "1s")
	conn, err := net.Dial("tcp", strings.TrimPrefix(u.rest, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/orgs?organization_id=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{", u.token)
	start := time.Now()
	closed := false
	for i := 0; i < 20 && !closed; i++ {
		if _, err := conn.Write([]byte(" ")); err != nil {
			closed = true
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 512)
		if _, err := conn.Read(buf); errors.Is(err, io.EOF) || err == nil {
			closed = true
		}
	}
	if !closed {
		t.Fatalf("a body trickled for %s is still being read", time.Since(start).Round(time.Second))
	}
}

// TestDataDirectoryLock: a second `pylee up` on the same data directory
// refuses to start and names the holder.
func TestDataDirectoryLock(t *testing.T) {
	u := startUp(t)
	out, errOut, code := cli.ExecuteCapture([]string{"up", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", u.dataDir})
	if code == 0 || !strings.Contains(out+errOut, "in use") || !strings.Contains(out+errOut, "process ") {
		t.Fatalf("second pylee up: exit %d: %s %s", code, out, errOut)
	}
	// pylee up listens on loopback unless told otherwise.
	help, _, _ := cli.ExecuteCapture([]string{"up", "--help"})
	if !strings.Contains(help, `"127.0.0.1:8080"`) || !strings.Contains(help, `"127.0.0.1:9090"`) {
		t.Fatalf("pylee up defaults are not loopback:\n%s", help)
	}
}

// TestRelayUnderHostileLoad: 1,000 refused requests with 900 KB
// User-Agents while 100 org changes happen; every change reaches the
// audit log, in order, soon after, and memory stays bounded.
func TestRelayUnderHostileLoad(t *testing.T) {
	u := startUp(t)
	ua := strings.Repeat("A", 900_000)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/orgs/victim-%d", u.rest, i%10), nil)
				req.Header.Set("Authorization", "Bearer pyl_wrong")
				req.Header.Set("User-Agent", ua)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Errorf("refused request: %d", resp.StatusCode)
					return
				}
			}
		}(w)
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=busy", u.token, `{}`, 200)
	for i := 0; i < 99; i++ {
		u.expect(t, "PATCH", "/v1/orgs/busy?update_mask=display_name", u.token, fmt.Sprintf(`{"displayName":"v%d"}`, i), 200)
	}
	wg.Wait()
	start := time.Now()
	evs := u.waitEvents(t, "busy", 100)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the changes took %s to reach the audit log", d)
	}
	for i, ev := range evs[1:] {
		if !strings.Contains(fmt.Sprint(ev["changes"]), fmt.Sprintf("v%d", i)) {
			t.Fatalf("event %d out of order: %v", i+1, ev["changes"])
		}
	}
	// The refusals did not each become an event in the named orgs' logs.
	u.expect(t, "GET", "/v1/orgs/victim-1", u.token, "", 404)
	refusals := u.waitEvent(t, "-", func(ev map[string]any) bool { return ev["action"] == "auth.credential.refuse" })
	if len(fmt.Sprint(refusals["userAgent"])) > 2000 {
		t.Fatalf("aggregated refusal keeps a %d-byte user agent", len(fmt.Sprint(refusals["userAgent"])))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 300<<20 {
		t.Fatalf("heap in use after the run: %d MB", ms.HeapInuse>>20)
	}
	t.Logf("100 changes delivered in order; heap in use %d MB", ms.HeapInuse>>20)
}

// TestDeleteOrganizationDeletesEverything: after DELETE /v1/orgs/{org}
// nothing beneath it is reachable, its invitation is void, and the id
// created again starts empty with new etags.
func TestDeleteOrganizationDeletesEverything(t *testing.T) {
	u := startUp(t)
	testDeleteOrganization(t, u)
}

func testDeleteOrganization(t *testing.T, u *upInstance) {
	first := u.expect(t, "POST", "/v1/orgs?organization_id=doomed", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/doomed/servers?server_id=github", u.token, `{"serverName":"com.doomed/github","title":"GitHub"}`, 200)
	u.expect(t, "POST", "/v1/orgs/doomed/servers/github/versions:import", u.token,
		`{"serverJson":"{\"name\":\"com.doomed/github\",\"description\":\"d\",\"version\":\"1.0.0\"}"}`, 200)
	u.expect(t, "POST", "/v1/orgs/doomed/registries?registry_id=staging", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/doomed/registries?registry_id=production", u.token, `{"approvalRequired":true,"minApprovals":1}`, 200)
	u.expect(t, "PUT", "/v1/orgs/doomed/registries/staging/entries/github", u.token, `{"version":"1.0.0"}`, 200)
	u.expect(t, "PUT", "/v1/orgs/doomed/registries/production/entries/github", u.token, `{"version":"1.0.0"}`, 200)
	inv := u.expect(t, "POST", "/v1/orgs/doomed/invitations", u.token, `{"email":"eve@doomed.test","role":"roles/developer"}`, 200)
	u.officialGet(t, "/registries/doomed/staging/v0.1/servers", u.token, 200)

	u.expect(t, "DELETE", "/v1/orgs/doomed", u.token, "", 200)
	for _, path := range []string{"/v1/orgs/doomed/servers/github", "/v1/orgs/doomed/servers/github/versions/1.0.0",
		"/v1/orgs/doomed/registries/staging", "/v1/orgs/doomed/registries/staging/entries/github"} {
		if r := u.do(t, "GET", path, u.token, nil); r.status != 404 {
			t.Errorf("GET %s after deleting the org: %d %v", path, r.status, r.body)
		}
	}
	if r := u.do(t, "POST", "/v1/orgs/doomed/servers?server_id=ghost", u.token, strings.NewReader(`{"serverName":"com.doomed/ghost"}`)); r.status < 400 || r.status >= 500 {
		t.Errorf("create a server in the deleted org: %d", r.status)
	}
	if r := u.do(t, "POST", "/v1/invitations:accept", "", strings.NewReader(`{"token":"`+inv.body["token"].(string)+`"}`)); r.status < 400 || r.status >= 500 {
		t.Errorf("accept an invitation to the deleted org: %d %v", r.status, r.body)
	}

	again := u.expect(t, "POST", "/v1/orgs?organization_id=doomed", u.token, `{}`, 200)
	if again.body["etag"] == first.body["etag"] {
		t.Errorf("the re-created org repeats the etag %v", first.body["etag"])
	}
	for _, path := range []string{"/v1/orgs/doomed/servers", "/v1/orgs/doomed/registries", "/v1/orgs/doomed/invitations"} {
		r := u.expect(t, "GET", path, u.token, "", 200)
		for k, v := range r.body {
			if l, ok := v.([]any); ok && len(l) > 0 {
				t.Errorf("GET %s on the re-created org: %s = %v", path, k, l)
			}
		}
	}
	u.expect(t, "GET", "/v1/orgs/doomed/servers/github", u.token, "", 404)
	if r := u.do(t, "GET", "/registries/doomed/staging/v0.1/servers", u.token, nil); r.status != 404 {
		t.Errorf("official API of a registry of the deleted org: %d", r.status)
	}
}
