package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
)

// cli runs a pylee client command against u as the admin.
func (u *upInstance) cli(args ...string) (string, string, int) { return u.cliAs(u.token, args...) }

// cliAs runs a pylee client command against u with token.
func (u *upInstance) cliAs(token string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), append([]string{"--api-url", u.rest, "--token", token}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// waitEvents waits until org's log holds at least n events and returns
// their actions, oldest first.
func (u *upInstance) waitEvents(t *testing.T, org string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := u.do(t, "GET", "/v1/orgs/"+org+"/events?page_size=1000", u.token, nil)
		if r.status != 200 {
			t.Fatalf("list events of %s: %d %v", org, r.status, r.body)
		}
		evs, _ := r.body["events"].([]any)
		if len(evs) >= n {
			out := make([]map[string]any, len(evs))
			for i, e := range evs {
				out[len(evs)-1-i] = e.(map[string]any) // newest first from the API
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("org %s has %d events, want %d", org, len(evs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEvent waits until org's log holds an event for which match holds.
func (u *upInstance) waitEvent(t *testing.T, org string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := u.do(t, "GET", "/v1/orgs/"+org+"/events?page_size=1000", u.token, nil)
		if r.status != 200 {
			t.Fatalf("list events of %s: %d %v", org, r.status, r.body)
		}
		evs, _ := r.body["events"].([]any)
		for _, e := range evs {
			if ev := e.(map[string]any); match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("org %s has no matching event among %d", org, len(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testAudit(t *testing.T, u *upInstance) {
	// testREST created, updated and deleted acme; its failed attempts (stale
	// etags, a bad mask, a duplicate) changed nothing and left no event.
	evs := u.waitEvents(t, "acme", 3)
	var actions []string
	for _, e := range evs {
		actions = append(actions, fmt.Sprint(e["action"], "/", e["outcome"]))
	}
	want := "[orgs.organization.create/ok orgs.organization.update/ok orgs.organization.delete/ok]"
	if fmt.Sprint(actions) != want {
		t.Fatalf("acme events = %v, want %s", actions, want)
	}
	if evs[1]["actor"].(map[string]any)["principal"] != "users/admin" || !strings.Contains(fmt.Sprint(evs[1]["changes"]), "Acme Inc") {
		t.Fatalf("update event = %v", evs[1])
	}
	// The requests refused for authentication are in the installation log.
	denied := u.waitEvents(t, "-", 2)
	if denied[0]["outcome"] != "denied" || denied[0]["actor"].(map[string]any)["kind"] != "anonymous" {
		t.Fatalf("denied event = %v", denied[0])
	}

	// Export → verify offline with the printed public key.
	dir := t.TempDir()
	file := filepath.Join(dir, "acme.ndjson")
	if _, errOut, code := u.cli("audit", "export", "--org", "acme", "--format", "ndjson", "-o", file); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	key, errOut, code := u.cli("audit", "public-key")
	if code != 0 {
		t.Fatalf("public-key: %s", errOut)
	}
	key = strings.TrimSpace(key)
	if out, errOut, code := u.cli("audit", "verify", "--file", file, "--public-key", key); code != 0 || !strings.Contains(out, "ok: 3 events") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	// A flipped byte is caught and the event named.
	raw, _ := os.ReadFile(file)
	bad := filepath.Join(dir, "bad.ndjson")
	os.WriteFile(bad, bytes.Replace(raw, []byte("Acme Inc"), []byte("Acme Ind"), 1), 0o600)
	if _, errOut, code := u.cli("audit", "verify", "--file", bad, "--public-key", key); code == 0 || !strings.Contains(errOut, "sequence 2") {
		t.Fatalf("tampered verify: %d %s", code, errOut)
	}
	// CSV: a header row and one row per event.
	csvFile := filepath.Join(dir, "acme.csv")
	if _, errOut, code := u.cli("audit", "export", "--org", "acme", "--format", "csv", "-o", csvFile); code != 0 {
		t.Fatalf("csv export: %s", errOut)
	}
	f, _ := os.Open(csvFile)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 4 || rows[0][0] != "sequence" || rows[3][7] != "orgs.organization.delete" {
		t.Fatalf("csv = %v, %v", rows, err)
	}
	// REST download headers.
	req := mustRequest(t, "GET", u.rest+"/v1/orgs/acme/events:export?format=csv", "")
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename="acme-audit.csv"` || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("download = %d %v", resp.StatusCode, resp.Header)
	}
	if out, _, code := u.cli("audit", "list", "--org", "acme", "--action", "orgs.organization.upd"); code != 0 || strings.Count(out, "orgs.organization.update") != 1 || strings.Contains(out, "create") {
		t.Fatalf("audit list: %d %s", code, out)
	}
	// tail prints what is there, oldest first, then follows until stopped.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var tailOut, tailErr bytes.Buffer
	code = cli.Execute(ctx, []string{"--api-url", u.rest, "--token", u.token, "audit", "tail", "--org", "acme", "--interval", "100ms"}, &tailOut, &tailErr)
	out := tailOut.String()
	if code != 0 || strings.Count(out, "SEQ") != 1 || strings.Index(out, "create") > strings.Index(out, "delete") || strings.Count(out, "orgs.organization.") != 3 {
		t.Fatalf("audit tail: %d %q %s", code, out, tailErr.String())
	}
}

// TestNoSecretAnywhere plants a canary as the credential on every channel a
// client can present one (REST and gRPC, bearer and malformed schemes,
// every method) and checks it appears in no stored event, log line, error
// or database file.
func TestNoSecretAnywhere(t *testing.T) {
	const canary = "pyl_CANARYc4n4ryC4N4RYcanary0123456789"
	u := startUp(t, "--log-level", "debug")
	var bodies []string
	headers := []string{"Bearer " + canary, "Basic " + canary, canary, "bearer " + canary + " extra"}
	for _, h := range headers {
		for _, call := range []struct{ method, path, body string }{
			{"GET", "/v1/orgs", ""}, {"GET", "/v1/orgs/acme", ""}, {"POST", "/v1/orgs?organization_id=canary", `{"displayName":"x"}`},
			{"PATCH", "/v1/orgs/acme?update_mask=display_name", `{"displayName":"x"}`}, {"DELETE", "/v1/orgs/acme", ""},
			{"GET", "/v1/orgs/acme/events", ""}, {"GET", "/v1/orgs/acme/events:export", ""}, {"GET", "/v1/audit/publicKey", ""},
		} {
			req := mustRequest(t, call.method, u.rest+call.path, call.body)
			req.Header.Set("Authorization", h)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("%s %s with a wrong credential: %d", call.method, call.path, resp.StatusCode)
			}
			bodies = append(bodies, b.String()+fmt.Sprint(resp.Header))
		}
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(u.grpc, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+canary)
	_, err = orgsv1.NewOrgsServiceClient(conn).GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/acme"})
	bodies = append(bodies, fmt.Sprint(err))
	_, errOut, _ := cli.ExecuteCapture([]string{"--api-url", u.rest, "--token", canary, "org", "list"})
	bodies = append(bodies, errOut)

	// Wait until the refusals are in the audit log (so the check below
	// looks at real events), then look everywhere.
	// Anonymous refusals are counted into the installation log, one event
	// per source and reason (the wrong schemes and the wrong token differ).
	evs := u.waitEvents(t, "-", 2)
	var everything []string
	everything = append(everything, bodies...)
	everything = append(everything, u.logs.String())
	for _, e := range evs {
		everything = append(everything, fmt.Sprint(e))
	}
	files, _ := filepath.Glob(filepath.Join(u.dataDir, "*.db*"))
	if len(files) < 2 {
		t.Fatalf("database files = %v", files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		everything = append(everything, string(b))
	}
	for i, s := range everything {
		if strings.Contains(s, canary) || strings.Contains(s, canary[4:]) {
			line := ""
			sc := bufio.NewScanner(strings.NewReader(s))
			for sc.Scan() {
				if strings.Contains(sc.Text(), canary[4:]) {
					line = sc.Text()
					break
				}
			}
			t.Fatalf("the credential leaked (item %d): %.300s", i, line)
		}
	}
	if !strings.Contains(u.logs.String(), "Unauthenticated") {
		t.Fatal("no access log of the refused calls: the check above looked at nothing")
	}
}
