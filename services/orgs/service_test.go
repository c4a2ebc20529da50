package orgs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/kit/server/servertest"
	"github.com/pyleeai/pylee/services/orgs"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.DropTemplates()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startOrgs runs the orgs service in a real kit server on loopback ports,
// over a fresh database, and returns a client and the bootstrap token.
func startOrgs(t *testing.T, dbURL string) (orgsv1.OrgsServiceClient, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if created, err := orgs.Bootstrap(ctx, st, tokenFile); err != nil || !created {
		t.Fatalf("bootstrap = %v, %v", created, err)
	}
	raw, _ := os.ReadFile(tokenFile)
	srv := server.New(servertest.Config(), zap.NewNop())
	engine := orgs.NewEngine(st)
	srv.SetAuth(orgs.NewTokenAuthenticator(st), engine)
	orgs.New(st, engine, aip.NewPageTokens([]byte("test-key"))).Register(srv)
	srv.AddCleanup("store", func(context.Context) error { return st.Close() })
	conn := servertest.Start(t, srv)
	return orgsv1.NewOrgsServiceClient(conn), strings.TrimSpace(string(raw))
}

func TestServiceSQLite(t *testing.T) { testService(t, dbtest.MigratedSQLiteURL(t, store.Migrate)) }

func TestServicePostgres(t *testing.T) {
	testService(t, dbtest.PostgresURL(t, "orgssvc", store.Migrate))
}

func testService(t *testing.T, dbURL string) {
	c, token := startOrgs(t, dbURL)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	code := func(err error) codes.Code { return status.Code(err) }

	// Authentication.
	if _, err := c.ListOrganizations(context.Background(), &orgsv1.ListOrganizationsRequest{}); code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer pyl_wrong")
	if _, err := c.ListOrganizations(bad, &orgsv1.ListOrganizationsRequest{}); code(err) != codes.Unauthenticated {
		t.Fatalf("bad token: %v", err)
	}

	// Create, idempotently.
	req := &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", RequestId: "r-1",
		Organization: &orgsv1.Organization{DisplayName: "Acme", Overview: "# Acme"}}
	created, err := c.CreateOrganization(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "orgs/acme" || created.Etag == "" || created.CreateTime == nil {
		t.Fatalf("created = %v", created)
	}
	again, err := c.CreateOrganization(ctx, req)
	if err != nil || again.Etag != created.Etag {
		t.Fatalf("retry = %v, %v", again, err)
	}
	req.RequestId = ""
	if _, err := c.CreateOrganization(ctx, req); code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "Bad_Id", Organization: &orgsv1.Organization{}}); code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "organization_id") {
		t.Fatalf("bad id: %v", err)
	}

	// List in pages.
	for i := 0; i < 4; i++ {
		if _, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: fmt.Sprintf("org-%d", i), Organization: &orgsv1.Organization{DisplayName: fmt.Sprintf("Org %d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	tok := ""
	pages := 0
	for {
		resp, err := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range resp.Organizations {
			names = append(names, o.Name)
		}
		if tok = resp.NextPageToken; tok == "" {
			break
		}
	}
	if pages != 3 || len(names) != 5 || names[0] != "orgs/acme" {
		t.Fatalf("pages = %d, names = %v", pages, names)
	}
	// A token is bound to its query.
	first, _ := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: 1})
	if _, err := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: 1, PageToken: first.NextPageToken, Filter: `display_name : "org"`}); code(err) != codes.InvalidArgument {
		t.Fatalf("token reused with another filter: %v", err)
	}
	filtered, err := c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{Filter: `display_name : "ORG "`})
	if err != nil || len(filtered.Organizations) != 4 {
		t.Fatalf("filtered = %v, %v", filtered, err)
	}

	// Update with mask and etag.
	up, err := c.UpdateOrganization(ctx, &orgsv1.UpdateOrganizationRequest{
		Organization: &orgsv1.Organization{Name: "orgs/acme", DisplayName: "Acme Inc", Description: "not in mask", Etag: created.Etag},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.DisplayName != "Acme Inc" || up.Description != "" || up.Overview != "# Acme" || up.Etag == created.Etag {
		t.Fatalf("updated = %v", up)
	}
	if _, err := c.UpdateOrganization(ctx, &orgsv1.UpdateOrganizationRequest{
		Organization: &orgsv1.Organization{Name: "orgs/acme", DisplayName: "Stale", Etag: created.Etag},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
	}); code(err) != codes.Aborted {
		t.Fatalf("stale etag: %v", err)
	}
	got, err := c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/acme"})
	if err != nil || got.DisplayName != "Acme Inc" || got.Etag != up.Etag {
		t.Fatalf("get = %v, %v", got, err)
	}

	// Delete.
	if _, err := c.DeleteOrganization(ctx, &orgsv1.DeleteOrganizationRequest{Name: "orgs/acme", Etag: created.Etag}); code(err) != codes.Aborted {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := c.DeleteOrganization(ctx, &orgsv1.DeleteOrganizationRequest{Name: "orgs/acme", Etag: up.Etag}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/acme"}); code(err) != codes.NotFound {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := c.DeleteOrganization(ctx, &orgsv1.DeleteOrganizationRequest{Name: "orgs/acme"}); code(err) != codes.NotFound {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestBootstrapOnce(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.MigratedSQLiteURL(t, store.Migrate)
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	path := filepath.Join(t.TempDir(), "data", "admin.token")
	if created, err := orgs.Bootstrap(ctx, st, path); err != nil || !created {
		t.Fatal(created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(tok, "pyl_") {
		t.Fatalf("token %q lacks the prefix", tok[:4])
	}
	if created, err := orgs.Bootstrap(ctx, st, path); err != nil || created {
		t.Fatalf("second bootstrap = %v, %v", created, err)
	}
	raw2, _ := os.ReadFile(path)
	if string(raw2) != string(raw) {
		t.Fatal("token file rewritten")
	}
	// Stored only as a hash: the plain token is not in the database file.
	dbFiles, _ := filepath.Glob(strings.TrimPrefix(dbURL, "sqlite:") + "*")
	if len(dbFiles) == 0 {
		t.Fatal("no database files found")
	}
	for _, f := range dbFiles {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), tok) {
			t.Fatalf("plain token stored in %s", f)
		}
	}
	a := orgs.NewTokenAuthenticator(st)
	p, err := a.Authenticate(ctx, config.NewSecret(tok))
	if err != nil || p.Name != orgs.BootstrapPrincipal {
		t.Fatalf("authenticate = %v, %v", p, err)
	}
	if _, err := a.Authenticate(ctx, config.NewSecret(tok+"x")); err == nil {
		t.Fatal("wrong token accepted")
	}
}

func TestExpiredToken(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, dbtest.MigratedSQLiteURL(t, store.Migrate))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, hash, _ := auth.NewAPIToken()
	past := time.Now().Add(-time.Hour)
	if err := st.CreateAPIToken(ctx, store.APIToken{ID: "t", Hash: hash, Principal: "users/x", CreateTime: past.Add(-time.Hour), ExpireTime: &past}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = orgs.NewTokenAuthenticator(st).Authenticate(ctx, tok)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}
