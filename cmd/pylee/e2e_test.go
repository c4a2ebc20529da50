package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/audit"
	"github.com/pyleeai/pylee/services/orgs"
)

func TestMain(m *testing.M) {
	// Never read or write the developer's own CLI configuration.
	cfgDir, err := os.MkdirTemp("", "pylee-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("PYLEE_CONFIG_DIR", cfgDir)
	code := m.Run()
	os.RemoveAll(cfgDir)
	dbtest.DropTemplates()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for the command's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upInstance is a `pylee up` running in this process.
type upInstance struct {
	rest    string // http://host:port
	grpc    string
	dataDir string
	token   string
	logs    *syncBuffer // what pylee up wrote to stderr
}

var (
	restRe = regexp.MustCompile(`REST API:\s+(http://\S+)/v1`)
	grpcRe = regexp.MustCompile(`gRPC:\s+(\S+)`)
)

// startUp runs the real `pylee up` command on random ports in a temporary
// data directory and stops it (SIGINT-equivalent: context cancel) at the
// end of the test.
func startUp(t testing.TB, extra ...string) *upInstance {
	t.Helper()
	return startUpAt(t, filepath.Join(t.TempDir(), "data"), extra...)
}

// startUpAt is startUp on the data directory dataDir.
func startUpAt(t testing.TB, dataDir string, extra ...string) *upInstance {
	t.Helper()
	args := append([]string{"up", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--data-dir", dataDir, "--log-level", "warn", "--max-body-bytes", "65536", "--relay-poll", "50ms",
		"--denied-window", "100ms"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- cli.Execute(ctx, args, out, errOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("pylee up exited %d: %s", code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("pylee up did not stop within 30s")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := restRe.FindStringSubmatch(out.String()); m != nil {
			g := grpcRe.FindStringSubmatch(out.String())
			tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			if err != nil {
				t.Fatalf("admin token: %v", err)
			}
			return &upInstance{rest: m[1], grpc: g[1], dataDir: dataDir, token: strings.TrimSpace(string(tok)), logs: errOut}
		}
		select {
		case code := <-done:
			t.Fatalf("pylee up exited %d: %s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pylee up did not start: %s %s", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type restResp struct {
	status int
	body   map[string]any
	header http.Header
}

func (u *upInstance) do(t *testing.T, method, path, token string, body io.Reader) restResp {
	t.Helper()
	req, err := http.NewRequest(method, u.rest+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := restResp{status: resp.StatusCode, header: resp.Header, body: map[string]any{}}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return out
}

func TestUpEndToEndSQLite(t *testing.T) {
	u := startUp(t)
	testREST(t, u)
	testGRPC(t, u)
	testCLI(t, u)
	testAudit(t, u)
}

func TestUpEndToEndPostgres(t *testing.T) {
	u := startUp(t, "--database-url", dbtest.PostgresURL(t, "e2e", migrateAll))
	testREST(t, u)
	testGRPC(t, u)
	testAudit(t, u)
}

// migrateAll prepares a template database for a `pylee up` sharing one
// PostgreSQL database between its services.
func migrateAll(ctx context.Context, url string) error {
	if err := orgs.MigrateStore(ctx, url); err != nil {
		return err
	}
	return audit.MigrateStore(ctx, url)
}

func testREST(t *testing.T, u *upInstance) {
	tok := u.token
	str := func(r restResp, k string) string { s, _ := r.body[k].(string); return s }
	expect := func(r restResp, status int, what string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: status %d, want %d: %v", what, r.status, status, r.body)
		}
	}

	// 401 without or with a wrong token, with a bearer challenge.
	r := u.do(t, "GET", "/v1/orgs", "", nil)
	expect(r, 401, "no token")
	if r.header.Get("WWW-Authenticate") != `Bearer realm="pylee"` {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	expect(u.do(t, "GET", "/v1/orgs", "pyl_notatoken", nil), 401, "wrong token")

	// Create; duplicate; bad id.
	r = u.do(t, "POST", "/v1/orgs?organization_id=acme", tok, strings.NewReader(`{"displayName":"Acme","overview":"# Acme"}`))
	expect(r, 200, "create")
	if str(r, "name") != "orgs/acme" || str(r, "displayName") != "Acme" || str(r, "etag") == "" {
		t.Fatalf("created = %v", r.body)
	}
	etag := str(r, "etag")
	expect(u.do(t, "POST", "/v1/orgs?organization_id=acme", tok, strings.NewReader(`{}`)), 409, "duplicate")
	r = u.do(t, "POST", "/v1/orgs?organization_id=9lives", tok, strings.NewReader(`{}`))
	expect(r, 400, "bad id")
	if !strings.Contains(str(r, "message"), "organization_id") {
		t.Fatalf("bad id message = %q", str(r, "message"))
	}
	r = u.do(t, "POST", "/v1/orgs?organization_id=beta", tok, strings.NewReader(`{"displayName":"`+strings.Repeat("x", 300)+`"}`))
	expect(r, 400, "long display name")
	if !strings.Contains(str(r, "message"), "organization.display_name") {
		t.Fatalf("long name message = %q", str(r, "message"))
	}
	// 413 for a body over the limit (65536 here).
	expect(u.do(t, "POST", "/v1/orgs?organization_id=huge", tok, strings.NewReader(`{"overview":"`+strings.Repeat("x", 70000)+`"}`)), 413, "oversized")

	// List in two pages.
	for _, id := range []string{"beta", "gamma"} {
		expect(u.do(t, "POST", "/v1/orgs?organization_id="+id, tok, strings.NewReader(`{"displayName":"`+id+`"}`)), 200, "create "+id)
	}
	r = u.do(t, "GET", "/v1/orgs?page_size=2", tok, nil)
	expect(r, 200, "list page 1")
	page1, _ := r.body["organizations"].([]any)
	next := str(r, "nextPageToken")
	if len(page1) != 2 || next == "" {
		t.Fatalf("page 1 = %v", r.body)
	}
	r = u.do(t, "GET", "/v1/orgs?page_size=2&page_token="+next, tok, nil)
	expect(r, 200, "list page 2")
	page2, _ := r.body["organizations"].([]any)
	if len(page2) != 1 || str(r, "nextPageToken") != "" || page2[0].(map[string]any)["name"] != "orgs/gamma" {
		t.Fatalf("page 2 = %v", r.body)
	}
	expect(u.do(t, "GET", "/v1/orgs?page_size=2&page_token=forged", tok, nil), 400, "forged token")

	// Get; 404.
	r = u.do(t, "GET", "/v1/orgs/acme", tok, nil)
	expect(r, 200, "get")
	if str(r, "overview") != "# Acme" {
		t.Fatalf("get = %v", r.body)
	}
	expect(u.do(t, "GET", "/v1/orgs/nope", tok, nil), 404, "get missing")

	// Update with mask and etag; stale etag conflicts.
	r = u.do(t, "PATCH", "/v1/orgs/acme?update_mask=display_name", tok, strings.NewReader(`{"displayName":"Acme Inc","description":"ignored","etag":"`+etag+`"}`))
	expect(r, 200, "update")
	if str(r, "displayName") != "Acme Inc" || str(r, "description") != "" || str(r, "etag") == etag {
		t.Fatalf("updated = %v", r.body)
	}
	newEtag := str(r, "etag")
	expect(u.do(t, "PATCH", "/v1/orgs/acme?update_mask=display_name", tok, strings.NewReader(`{"displayName":"Stale","etag":"`+etag+`"}`)), 409, "stale etag")
	expect(u.do(t, "PATCH", "/v1/orgs/acme?update_mask=name", tok, strings.NewReader(`{"displayName":"x"}`)), 400, "bad mask")

	// Delete.
	expect(u.do(t, "DELETE", "/v1/orgs/acme?etag="+etag, tok, nil), 409, "stale delete")
	expect(u.do(t, "DELETE", "/v1/orgs/acme?etag="+newEtag, tok, nil), 200, "delete")
	expect(u.do(t, "GET", "/v1/orgs/acme", tok, nil), 404, "get deleted")
	for _, id := range []string{"beta", "gamma"} {
		expect(u.do(t, "DELETE", "/v1/orgs/"+id, tok, nil), 200, "delete "+id)
	}
}

func testGRPC(t *testing.T, u *upInstance) {
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := orgsv1.NewOrgsServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+u.token)
	if _, err := c.ListOrganizations(context.Background(), &orgsv1.ListOrganizationsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	var etag string
	for _, id := range []string{"grpc-a", "grpc-b", "grpc-c"} {
		o, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: id, Organization: &orgsv1.Organization{DisplayName: id}})
		if err != nil {
			t.Fatal(err)
		}
		if id == "grpc-a" {
			etag = o.Etag
		}
	}
	p1, err := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: 2})
	if err != nil || len(p1.Organizations) != 2 || p1.NextPageToken == "" {
		t.Fatalf("page 1 = %v, %v", p1, err)
	}
	p2, err := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: 2, PageToken: p1.NextPageToken})
	if err != nil || len(p2.Organizations) != 1 || p2.NextPageToken != "" {
		t.Fatalf("page 2 = %v, %v", p2, err)
	}
	if _, err := c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/grpc-a"}); err != nil {
		t.Fatal(err)
	}
	up, err := c.UpdateOrganization(ctx, &orgsv1.UpdateOrganizationRequest{
		Organization: &orgsv1.Organization{Name: "orgs/grpc-a", Description: "via gRPC", Etag: etag},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	})
	if err != nil || up.Description != "via gRPC" {
		t.Fatalf("update = %v, %v", up, err)
	}
	if _, err := c.UpdateOrganization(ctx, &orgsv1.UpdateOrganizationRequest{
		Organization: &orgsv1.Organization{Name: "orgs/grpc-a", Description: "stale", Etag: etag},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	}); status.Code(err) != codes.Aborted {
		t.Fatalf("stale: %v", err)
	}
	if _, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "grpc-a", Organization: &orgsv1.Organization{}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	for _, id := range []string{"grpc-a", "grpc-b", "grpc-c"} {
		if _, err := c.DeleteOrganization(ctx, &orgsv1.DeleteOrganizationRequest{Name: "orgs/" + id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/grpc-a"}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted: %v", err)
	}
}

func testCLI(t *testing.T, u *upInstance) {
	run := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := cli.Execute(context.Background(), append([]string{"--api-url", u.rest, "--token", u.token}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	if out, errOut, code := run("org", "create", "cli-org", "--display-name", "CLI Org"); code != 0 || !strings.Contains(out, "orgs/cli-org") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	out, _, code := run("org", "get", "cli-org", "-o", "json")
	var o map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &o) != nil || o["displayName"] != "CLI Org" {
		t.Fatalf("get json: %d %s", code, out)
	}
	if out, _, code := run("org", "update", "cli-org", "--description", "from the CLI", "-o", "yaml"); code != 0 || !strings.Contains(out, "description: from the CLI") {
		t.Fatalf("update yaml: %d %s", code, out)
	}
	if out, _, code := run("org", "list", "--filter", `display_name : "cli"`); code != 0 || !strings.Contains(out, "orgs/cli-org") || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("list: %d %s", code, out)
	}
	_, errOut, code := run("org", "get", "missing-org")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "NOT_FOUND") {
		t.Fatalf("missing: %d %q", code, errOut)
	}
	if _, errOut, code := run("org", "create", "Bad_Id"); code == 0 || !strings.Contains(errOut, "organization_id") {
		t.Fatalf("bad id: %d %q", code, errOut)
	}
	var out2, errOut2 bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"--api-url", u.rest, "--token", "pyl_wrong", "org", "list"}, &out2, &errOut2); code == 0 || !strings.Contains(errOut2.String(), "UNAUTHENTICATED") {
		t.Fatalf("wrong token: %d %q", code, errOut2.String())
	}
	if out, _, code := run("org", "delete", "cli-org", "--yes"); code != 0 || !strings.Contains(out, "deleted orgs/cli-org") {
		t.Fatalf("delete: %d %s", code, out)
	}
}

func TestTokenFileWrittenOnceWithMode0600(t *testing.T) {
	u := startUp(t)
	fi, err := os.Stat(filepath.Join(u.dataDir, "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
	if !strings.HasPrefix(u.token, "pyl_") {
		t.Fatal("token lacks pyl_ prefix")
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
