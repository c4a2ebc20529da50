package registry_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/kit/server/servertest"
	"github.com/pyleeai/pylee/services/registry"
	"github.com/pyleeai/pylee/services/registry/internal/serverjson"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// grant lets principal use permission ("*": any) on resource and below.
type grant struct{ principal, permission, resource string }

// testAuthz is a small stand-in for the orgs engine's decisions, enough to
// give each test user the grants it needs.
type testAuthz struct {
	mu     sync.Mutex
	grants []grant
}

func (z *testAuthz) add(g grant) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.grants = append(z.grants, g)
}

func (z *testAuthz) remove(principal string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	kept := z.grants[:0]
	for _, g := range z.grants {
		if g.principal != principal {
			kept = append(kept, g)
		}
	}
	z.grants = kept
}

func (z *testAuthz) Authorize(_ context.Context, p auth.Principal, permission, resource string) error {
	if auth.ServiceOnlyPermissions[permission] { // as the orgs engine: no grant reaches them
		return errs.ErrPermissionDenied
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, g := range z.grants {
		if g.principal == p.Name && (g.permission == "*" || g.permission == permission) &&
			(resource == g.resource || strings.HasPrefix(resource, g.resource+"/")) {
			return nil
		}
	}
	return errs.ErrPermissionDenied
}

// tokens: "pyl_<id>" is users/<id>; "svc_<target>" the service identity
// of target.
type tokens struct{}

func (tokens) Authenticate(_ context.Context, c config.Secret) (auth.Principal, error) {
	if target, ok := strings.CutPrefix(c.Reveal(), "svc_"); ok {
		return auth.ServiceIdentity(target), nil
	}
	id, ok := strings.CutPrefix(c.Reveal(), "pyl_")
	if !ok {
		return auth.Principal{}, errs.ErrUnauthenticated
	}
	return auth.Principal{Name: "users/" + id, Kind: auth.KindUser}, nil
}

type env struct {
	client registryv1.RegistryServiceClient
	authz  *testAuthz
	orgs   *testOrgs
}

func (e *env) as(user string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer pyl_"+user)
}

func start(t *testing.T, url string) *env {
	t.Helper()
	st, err := registry.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	z := &testAuthz{}
	for _, u := range []string{"admin", "alice", "bob", "carol", "dave"} {
		z.add(grant{"users/" + u, "*", "orgs/acme"})
	}
	srv := server.New(servertest.Config(), zap.NewNop())
	srv.SetAuth(tokens{}, z)
	o := newTestOrgs("orgs/acme/teams/platform", "orgs/acme/teams/platform-team", "orgs/acme/teams/data")
	registry.New(st, aip.NewPageTokens([]byte("k")), z).UseOrgs(o).Register(srv)
	srv.AddCleanup("store", func(context.Context) error { return st.Close() })
	return &env{client: registryv1.NewRegistryServiceClient(servertest.Start(t, srv)), authz: z, orgs: o}
}

func backends() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"SQLite":   func(t *testing.T) string { return dbtest.MigratedSQLiteURL(t, registry.MigrateStore) },
		"Postgres": func(t *testing.T) string { return dbtest.PostgresURL(t, "registry", registry.MigrateStore) },
	}
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	for name, db := range backends() {
		t.Run(name, func(t *testing.T) { fn(t, start(t, db(t))) })
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantCode(t *testing.T, err error, code codes.Code, what string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

// badField returns the fields a BadRequest detail names.
func badField(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

func (e *env) server(t *testing.T, id, serverName string) {
	t.Helper()
	must[*registryv1.Server](t)(e.client.CreateServer(e.as("admin"), &registryv1.CreateServerRequest{Parent: "orgs/acme", ServerId: id,
		Server: &registryv1.Server{ServerName: serverName, Description: "the " + id + " server"}}))
}

func (e *env) publish(t *testing.T, server, version string, tools ...*registryv1.Tool) *registryv1.ServerVersion {
	t.Helper()
	return must[*registryv1.ServerVersion](t)(e.client.CreateVersion(e.as("admin"), &registryv1.CreateVersionRequest{
		Parent: "orgs/acme/servers/" + server, Version: &registryv1.ServerVersion{Version: version, Tools: tools}}))
}

func (e *env) registry(t *testing.T, id string, r *registryv1.Registry) *registryv1.Registry {
	t.Helper()
	return must[*registryv1.Registry](t)(e.client.CreateRegistry(e.as("admin"), &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: id, Registry: r}))
}

func tool(name string, readOnly bool) *registryv1.Tool {
	return &registryv1.Tool{Name: name, Description: name + " things", Annotations: &registryv1.ToolAnnotations{ReadOnlyHint: proto.Bool(readOnly)}}
}

func TestVersionsAreImmutableAndOrderedBySemVer(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		for _, v := range []string{"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "1.10.1-beta.2"} {
			e.publish(t, "github", v)
		}
		first := must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("bob"), &registryv1.GetVersionRequest{Name: "orgs/acme/servers/github/versions/1.2.0"}))

		// The same version, one of equal precedence, a changed document: refused, and nothing changes.
		_, err := e.client.CreateVersion(e.as("admin"), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/github",
			Version: &registryv1.ServerVersion{Version: "1.2.0", ReleaseNotes: "sneaky"}})
		wantCode(t, err, codes.AlreadyExists, "republish 1.2.0")
		_, err = e.client.CreateVersion(e.as("admin"), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/github",
			Version: &registryv1.ServerVersion{Version: "1.2.0+build.2"}})
		wantCode(t, err, codes.AlreadyExists, "equal precedence")
		_, err = e.client.ImportServerJson(e.as("admin"), &registryv1.ImportServerJsonRequest{Parent: "orgs/acme/servers/github",
			ServerJson: `{"name":"com.acme/github","description":"changed","version":"1.2.0"}`})
		wantCode(t, err, codes.AlreadyExists, "import over 1.2.0")
		_, err = e.client.CreateVersion(e.as("admin"), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/github",
			Version: &registryv1.ServerVersion{Version: "v1.3"}})
		wantCode(t, err, codes.InvalidArgument, "not semver")

		// The status is the only thing that changes.
		must[*registryv1.ServerVersion](t)(e.client.SetVersionStatus(e.as("admin"), &registryv1.SetVersionStatusRequest{
			Name: first.Name, Status: registryv1.ServerVersion_STATUS_DEPRECATED, Message: "use 1.10"}))
		after := must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("bob"), &registryv1.GetVersionRequest{Name: first.Name}))
		if after.Digest != first.Digest || !proto.Equal(after.ServerJson, first.ServerJson) || after.ReleaseNotes != first.ReleaseNotes ||
			!after.CreateTime.AsTime().Equal(first.CreateTime.AsTime()) {
			t.Fatalf("content changed: %v -> %v", first, after)
		}
		if after.Status != registryv1.ServerVersion_STATUS_DEPRECATED || after.StatusMessage != "use 1.10" {
			t.Fatalf("status = %v %q", after.Status, after.StatusMessage)
		}

		list := must[*registryv1.ListVersionsResponse](t)(e.client.ListVersions(e.as("bob"), &registryv1.ListVersionsRequest{Parent: "orgs/acme/servers/github"}))
		var order []string
		for _, v := range list.Versions {
			order = append(order, v.Version)
			if v.IsLatest != (v.Version == "1.10.0") {
				t.Errorf("%s is_latest = %v", v.Version, v.IsLatest)
			}
		}
		if got := strings.Join(order, " "); got != "2.0.0-rc.1 1.10.1-beta.2 1.10.0 1.2.0 1.0.0" {
			t.Fatalf("order = %s", got)
		}
		// Pages walk the same order.
		var paged []string
		for tok := ""; ; {
			p := must[*registryv1.ListVersionsResponse](t)(e.client.ListVersions(e.as("bob"), &registryv1.ListVersionsRequest{Parent: "orgs/acme/servers/github", PageSize: 2, PageToken: tok}))
			for _, v := range p.Versions {
				paged = append(paged, v.Version)
			}
			if tok = p.NextPageToken; tok == "" {
				break
			}
		}
		if strings.Join(paged, " ") != strings.Join(order, " ") {
			t.Fatalf("paged = %v", paged)
		}

		latest := must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("bob"), &registryv1.GetVersionRequest{Name: "orgs/acme/servers/github/versions/latest"}))
		if latest.Version != "1.10.0" {
			t.Fatalf("latest = %s", latest.Version)
		}
		// Yanking the latest moves latest down.
		must[*registryv1.ServerVersion](t)(e.client.SetVersionStatus(e.as("admin"), &registryv1.SetVersionStatusRequest{
			Name: "orgs/acme/servers/github/versions/1.10.0", Status: registryv1.ServerVersion_STATUS_YANKED, Message: "CVE"}))
		latest = must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("bob"), &registryv1.GetVersionRequest{Name: "orgs/acme/servers/github/versions/latest"}))
		if latest.Version != "1.2.0" {
			t.Fatalf("latest after yank = %s", latest.Version)
		}
		next := must[*registryv1.SuggestNextVersionResponse](t)(e.client.SuggestNextVersion(e.as("bob"), &registryv1.SuggestNextVersionRequest{Parent: "orgs/acme/servers/github", Bump: "major", Prerelease: "rc"}))
		if next.Version != "2.0.0-rc.2" || next.From != "2.0.0-rc.1" {
			t.Fatalf("suggest = %v", next)
		}
	})
}

func TestServerJSONRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.json")
	if len(files) < 6 {
		t.Fatalf("%d documents", len(files))
	}
	each(t, func(t *testing.T, e *env) {
		for i, f := range files {
			doc, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var head struct{ Name, Version string }
			_ = json.Unmarshal(doc, &head)
			id := "s" + string(rune('a'+i))
			e.server(t, id, head.Name)
			v, err := e.client.ImportServerJson(e.as("alice"), &registryv1.ImportServerJsonRequest{Parent: "orgs/acme/servers/" + id, ServerJson: string(doc),
				ReleaseNotes: "first", Tools: []*registryv1.Tool{tool("search", true)}})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if v.Version != head.Version || v.Creator != "users/alice" {
				t.Fatalf("%s: version %s by %s", f, v.Version, v.Creator)
			}
			exp := must[*registryv1.ExportServerJsonResponse](t)(e.client.ExportServerJson(e.as("bob"), &registryv1.ExportServerJsonRequest{Name: v.Name}))
			if !serverjson.Equal(doc, []byte(exp.ServerJson)) {
				t.Fatalf("%s: export differs:\n%s", f, exp.ServerJson)
			}
			// The document in the version resource is the same document.
			b, _ := v.ServerJson.MarshalJSON()
			if !serverjson.Equal(doc, b) {
				t.Fatalf("%s: server_json differs: %s", f, b)
			}
		}
	})
}

func TestImportRefusals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		tests := []struct{ doc, field string }{
			{`{"name":"com.acme/other","description":"d","version":"1.0.0"}`, "server_json.name"},
			{`{"name":"com.acme/github","description":"d","version":"1.0.0","packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"name":"T","isSecret":true,"value":"ghp_123"}]}]}`,
				"server_json.packages[0].environmentVariables[0].value"},
			{`{"name":"com.acme/github","description":"d","version":"1.0"}`, "server_json.version"},
			{`not json`, "server_json"},
		}
		for _, tc := range tests {
			_, err := e.client.ImportServerJson(e.as("admin"), &registryv1.ImportServerJsonRequest{Parent: "orgs/acme/servers/github", ServerJson: tc.doc})
			wantCode(t, err, codes.InvalidArgument, tc.doc)
			if f := badField(err); len(f) == 0 || f[0] != tc.field {
				t.Errorf("%s: fields %v, want %s", tc.doc, f, tc.field)
			}
			if strings.Contains(status.Convert(err).Message(), "ghp_123") {
				t.Errorf("error repeats the secret: %v", err)
			}
		}
		list := must[*registryv1.ListVersionsResponse](t)(e.client.ListVersions(e.as("admin"), &registryv1.ListVersionsRequest{Parent: "orgs/acme/servers/github"}))
		if len(list.Versions) != 0 {
			t.Fatalf("a refused import stored %d versions", len(list.Versions))
		}
		// From the server's own fields, with a document given as a Struct.
		st, _ := structpb.NewStruct(map[string]any{"name": "com.acme/github", "description": "from fields", "remotes": []any{
			map[string]any{"type": "streamable-http", "url": "https://mcp.acme.example/github"}}})
		v := must[*registryv1.ServerVersion](t)(e.client.CreateVersion(e.as("admin"), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/github",
			Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: st}}))
		if got := v.ServerJson.AsMap()["version"]; got != "1.0.0" {
			t.Fatalf("version in document = %v", got)
		}
	})
}

func TestDiffShowsSilentToolChanges(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0", tool("search", true), tool("delete_repo", false), tool("old", true))
		changed := tool("search", true)
		changed.Annotations.ReadOnlyHint = nil
		e.publish(t, "github", "1.1.0", changed, tool("delete_repo", false), tool("create_issue", false))
		d := must[*registryv1.ToolDiff](t)(e.client.DiffVersions(e.as("bob"), &registryv1.DiffVersionsRequest{Parent: "orgs/acme/servers/github", Base: "1.0.0", Target: "1.1.0"}))
		if len(d.Added) != 1 || d.Added[0].Name != "create_issue" || len(d.Removed) != 1 || d.Removed[0].Name != "old" ||
			len(d.Changed) != 1 || d.Changed[0].Name != "search" || strings.Join(d.Changed[0].Changes, ";") != "annotations.readOnlyHint: true -> unset" {
			t.Fatalf("diff = %v", d)
		}
	})
}

func TestRegistryInheritanceAsTheSeedDescribesIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.registry(t, "development", &registryv1.Registry{Description: "experiments", AutoUpgrade: proto.Bool(true), ApprovalRequired: proto.Bool(false)})
		e.registry(t, "staging", &registryv1.Registry{ApprovalRequired: proto.Bool(true)})
		e.registry(t, "production", &registryv1.Registry{ApprovalRequired: proto.Bool(true), MinApprovals: proto.Int32(3),
			OwnerTeams: []string{"orgs/acme/teams/platform"}, Namespaces: []string{"com.acme"}, ToolPolicy: registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY,
			RolloutPolicy: &registryv1.RolloutPolicy{Strategy: registryv1.RolloutPolicy_STRATEGY_CANARY, MaxErrorRate: 0.02,
				Steps: []*registryv1.CanaryStep{{WeightPercent: 10}, {WeightPercent: 50}, {WeightPercent: 100}}}})
		// Bare ids stand for names in the organization.
		pp := e.registry(t, "production-platform", &registryv1.Registry{Parent: "production", OwnerTeams: []string{"platform-team"}})
		pd := e.registry(t, "production-data", &registryv1.Registry{Parent: "orgs/acme/registries/production", OwnerTeams: []string{"orgs/acme/teams/data"}, MinApprovals: proto.Int32(2)})
		for _, r := range []*registryv1.Registry{pp, pd} {
			eff := r.Effective
			if !eff.ApprovalRequired || eff.AutoUpgrade || eff.ToolPolicy != registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY ||
				eff.RolloutPolicy.GetStrategy() != registryv1.RolloutPolicy_STRATEGY_CANARY || len(eff.Namespaces) != 1 {
				t.Fatalf("%s effective = %v", r.Name, eff)
			}
		}
		if pp.Parent != "orgs/acme/registries/production" || pp.OwnerTeams[0] != "orgs/acme/teams/platform-team" {
			t.Fatalf("bare ids not expanded: %v", pp)
		}
		if pp.Effective.MinApprovals != 3 || pd.Effective.MinApprovals != 2 || pp.Effective.OwnerTeams[0] != "orgs/acme/teams/platform-team" {
			t.Fatalf("own settings lost: %v / %v", pp.Effective, pd.Effective)
		}
		dev := must[*registryv1.Registry](t)(e.client.GetRegistry(e.as("bob"), &registryv1.GetRegistryRequest{Name: "orgs/acme/registries/development"}))
		if !dev.Effective.AutoUpgrade || dev.Effective.ApprovalRequired || dev.Effective.ToolPolicy != registryv1.ToolPolicy_TOOL_POLICY_ALL {
			t.Fatalf("development = %v", dev.Effective)
		}
		// A cycle, a missing parent, bad settings: refused naming the field.
		_, err := e.client.UpdateRegistry(e.as("admin"), &registryv1.UpdateRegistryRequest{Registry: &registryv1.Registry{
			Name: "orgs/acme/registries/development", Parent: "orgs/acme/registries/development"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"parent"}}})
		wantCode(t, err, codes.InvalidArgument, "self parent")
		_, err = e.client.CreateRegistry(e.as("admin"), &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: "x",
			Registry: &registryv1.Registry{Parent: "orgs/acme/registries/nope"}})
		wantCode(t, err, codes.InvalidArgument, "missing parent")
		_, err = e.client.CreateRegistry(e.as("admin"), &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: "y",
			Registry: &registryv1.Registry{MinApprovals: proto.Int32(0)}})
		if f := badField(err); len(f) == 0 || f[0] != "registry.min_approvals" {
			t.Fatalf("min_approvals 0: %v", err)
		}
		// Deleting a registry with children is refused.
		_, err = e.client.DeleteRegistry(e.as("admin"), &registryv1.DeleteRegistryRequest{Name: "orgs/acme/registries/production"})
		wantCode(t, err, codes.FailedPrecondition, "delete parent")
	})
}

func pin(t *testing.T, e *env, user, registry, server, version string) *registryv1.PinEntryResponse {
	t.Helper()
	return must[*registryv1.PinEntryResponse](t)(e.client.PinEntry(e.as(user), &registryv1.PinEntryRequest{
		Name: "orgs/acme/registries/" + registry + "/entries/" + server, Version: version}))
}

func entryVersion(t *testing.T, e *env, registry, server string) string {
	t.Helper()
	en, err := e.client.GetEntry(e.as("admin"), &registryv1.GetEntryRequest{Name: "orgs/acme/registries/" + registry + "/entries/" + server})
	if status.Code(err) == codes.NotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return en.Version
}

func TestApprovals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0", tool("search", true))
		e.publish(t, "github", "1.1.0", tool("search", false))
		e.registry(t, "production", &registryv1.Registry{ApprovalRequired: proto.Bool(true), MinApprovals: proto.Int32(2)})

		req := pin(t, e, "alice", "production", "github", "1.0.0").GetApproval()
		if req == nil || req.State != registryv1.Approval_STATE_PENDING || entryVersion(t, e, "production", "github") != "" {
			t.Fatalf("pin in an approval registry applied at once: %v", req)
		}
		_, err := e.client.Approve(e.as("alice"), &registryv1.ApproveRequest{Name: req.Name})
		wantCode(t, err, codes.PermissionDenied, "self-approval")
		a := must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: req.Name, Comment: "lgtm"}))
		if a.State != registryv1.Approval_STATE_PENDING || entryVersion(t, e, "production", "github") != "" {
			t.Fatalf("one approval of two applied: %v", a)
		}
		_, err = e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: req.Name})
		wantCode(t, err, codes.FailedPrecondition, "bob twice")
		a = must[*registryv1.Approval](t)(e.client.Approve(e.as("carol"), &registryv1.ApproveRequest{Name: req.Name}))
		if a.State != registryv1.Approval_STATE_APPLIED || len(a.Approvals) != 2 || entryVersion(t, e, "production", "github") != "1.0.0" {
			t.Fatalf("two approvals: %v, entry %s", a, entryVersion(t, e, "production", "github"))
		}
		_, err = e.client.Approve(e.as("dave"), &registryv1.ApproveRequest{Name: req.Name})
		wantCode(t, err, codes.FailedPrecondition, "approve an applied request")

		// The next request shows the tool that lost readOnlyHint.
		up := pin(t, e, "alice", "production", "github", "1.1.0").GetApproval()
		if up.CurrentVersion != "1.0.0" || len(up.ToolDiff.GetChanged()) != 1 || !strings.Contains(up.ToolDiff.Changed[0].Changes[0], "readOnlyHint: true -> false") {
			t.Fatalf("request diff = %v", up)
		}
		// Rejected: nothing applies, and it stays rejected.
		must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: up.Name}))
		rej := must[*registryv1.Approval](t)(e.client.Reject(e.as("carol"), &registryv1.RejectRequest{Name: up.Name, Comment: "write access"}))
		if rej.State != registryv1.Approval_STATE_REJECTED || rej.Decision.GetPrincipal() != "users/carol" {
			t.Fatalf("reject = %v", rej)
		}
		_, err = e.client.Approve(e.as("dave"), &registryv1.ApproveRequest{Name: up.Name})
		wantCode(t, err, codes.FailedPrecondition, "approve a rejected request")
		if v := entryVersion(t, e, "production", "github"); v != "1.0.0" {
			t.Fatalf("rejected request applied: %s", v)
		}
		// Cancelled by its requester; another user who is no approver cannot.
		c := pin(t, e, "alice", "production", "github", "1.1.0").GetApproval()
		e.authz.add(grant{"users/eve", "approvals.get", "orgs/acme"})
		_, err = e.client.CancelApproval(e.as("eve"), &registryv1.CancelApprovalRequest{Name: c.Name})
		wantCode(t, err, codes.PermissionDenied, "cancel by a stranger")
		if got := must[*registryv1.Approval](t)(e.client.CancelApproval(e.as("alice"), &registryv1.CancelApprovalRequest{Name: c.Name})); got.State != registryv1.Approval_STATE_CANCELLED {
			t.Fatalf("cancel = %v", got)
		}
		// A request whose version was yanked meanwhile fails cleanly.
		y := pin(t, e, "alice", "production", "github", "1.1.0").GetApproval()
		must[*registryv1.ServerVersion](t)(e.client.SetVersionStatus(e.as("admin"), &registryv1.SetVersionStatusRequest{
			Name: "orgs/acme/servers/github/versions/1.1.0", Status: registryv1.ServerVersion_STATUS_YANKED, Message: "broken"}))
		must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: y.Name}))
		f := must[*registryv1.Approval](t)(e.client.Approve(e.as("carol"), &registryv1.ApproveRequest{Name: y.Name}))
		if f.State != registryv1.Approval_STATE_FAILED || !strings.Contains(f.Failure, "yanked") || entryVersion(t, e, "production", "github") != "1.0.0" {
			t.Fatalf("yanked request = %v, entry %s", f, entryVersion(t, e, "production", "github"))
		}
		// A yanked version cannot be newly requested either.
		_, err = e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{Name: "orgs/acme/registries/production/entries/github", Version: "1.1.0"})
		wantCode(t, err, codes.FailedPrecondition, "pin a yanked version")

		// Settings changes and unpins go through approval too.
		u := must[*registryv1.UpdateRegistryResponse](t)(e.client.UpdateRegistry(e.as("alice"), &registryv1.UpdateRegistryRequest{
			Registry: &registryv1.Registry{Name: "orgs/acme/registries/production", MinApprovals: proto.Int32(1)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"min_approvals"}}}))
		if u.GetApproval() == nil {
			t.Fatalf("settings change applied at once: %v", u)
		}
		must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: u.GetApproval().Name}))
		must[*registryv1.Approval](t)(e.client.Approve(e.as("carol"), &registryv1.ApproveRequest{Name: u.GetApproval().Name}))
		r := must[*registryv1.Registry](t)(e.client.GetRegistry(e.as("admin"), &registryv1.GetRegistryRequest{Name: "orgs/acme/registries/production"}))
		if r.Effective.MinApprovals != 1 {
			t.Fatalf("approved settings change not applied: %v", r.Effective)
		}
		un := must[*registryv1.UnpinEntryResponse](t)(e.client.UnpinEntry(e.as("alice"), &registryv1.UnpinEntryRequest{Name: "orgs/acme/registries/production/entries/github"}))
		if un.Approval == nil || entryVersion(t, e, "production", "github") != "1.0.0" {
			t.Fatalf("unpin applied at once")
		}
		must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: un.Approval.Name}))
		if v := entryVersion(t, e, "production", "github"); v != "" {
			t.Fatalf("approved unpin left %s", v)
		}
		list := must[*registryv1.ListApprovalsResponse](t)(e.client.ListApprovals(e.as("admin"), &registryv1.ListApprovalsRequest{Parent: "orgs/acme/registries/production", State: registryv1.Approval_STATE_APPLIED}))
		if len(list.Approvals) != 3 {
			t.Fatalf("applied approvals = %d", len(list.Approvals))
		}
	})
}

func TestConcurrentFinalApprovalsApplyOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0")
		e.registry(t, "production", &registryv1.Registry{ApprovalRequired: proto.Bool(true), MinApprovals: proto.Int32(2)})
		users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
		for _, u := range users {
			e.authz.add(grant{"users/" + u, "*", "orgs/acme"})
		}
		for round := 0; round < 5; round++ {
			req := pin(t, e, "alice", "production", "github", "1.0.0").GetApproval()
			must[*registryv1.Approval](t)(e.client.Approve(e.as("bob"), &registryv1.ApproveRequest{Name: req.Name}))
			var wg sync.WaitGroup
			results := make(chan error, len(users))
			for _, u := range users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.client.Approve(e.as(u), &registryv1.ApproveRequest{Name: req.Name})
					results <- err
				}()
			}
			wg.Wait()
			close(results)
			ok := 0
			for err := range results {
				switch {
				case err == nil:
					ok++
				case status.Code(err) != codes.FailedPrecondition:
					t.Fatalf("concurrent approve: %v", err)
				}
			}
			a := must[*registryv1.Approval](t)(e.client.GetApproval(e.as("admin"), &registryv1.GetApprovalRequest{Name: req.Name}))
			if ok != 1 || a.State != registryv1.Approval_STATE_APPLIED || len(a.Approvals) != 2 {
				t.Fatalf("round %d: %d approvals succeeded, state %v with %d approvals", round, ok, a.State, len(a.Approvals))
			}
		}
		// Exactly one entry change per applied request.
		en := must[*registryv1.Entry](t)(e.client.GetEntry(e.as("admin"), &registryv1.GetEntryRequest{Name: "orgs/acme/registries/production/entries/github"}))
		if en.Revision != 5 {
			t.Fatalf("entry revision = %d after 5 applied requests", en.Revision)
		}
	})
}

func TestAutoUpgradeFollowsPublishedVersions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0")
		e.publish(t, "github", "1.1.0")
		e.registry(t, "development", &registryv1.Registry{AutoUpgrade: proto.Bool(true)})
		e.registry(t, "fixed", &registryv1.Registry{})
		r := must[*registryv1.PinEntryResponse](t)(e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{
			Name: "orgs/acme/registries/development/entries/github", VersionRange: "^1.0"}))
		if r.GetEntry().GetVersion() != "1.1.0" || r.GetEntry().GetVersionRange() != "^1.0" {
			t.Fatalf("range pin = %v", r)
		}
		_, err := e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{Name: "orgs/acme/registries/fixed/entries/github", VersionRange: "^1.0"})
		wantCode(t, err, codes.FailedPrecondition, "range in a registry without auto_upgrade")

		e.publish(t, "github", "1.2.0-rc.1")
		if v := entryVersion(t, e, "development", "github"); v != "1.1.0" {
			t.Fatalf("a prerelease was picked: %s", v)
		}
		e.publish(t, "github", "2.0.0")
		if v := entryVersion(t, e, "development", "github"); v != "1.1.0" {
			t.Fatalf("left the range: %s", v)
		}
		e.publish(t, "github", "1.2.0")
		if v := entryVersion(t, e, "development", "github"); v != "1.2.0" {
			t.Fatalf("did not follow 1.2.0: %s", v)
		}
		// Yanking the version in force falls back to the next in range.
		must[*registryv1.ServerVersion](t)(e.client.SetVersionStatus(e.as("admin"), &registryv1.SetVersionStatusRequest{
			Name: "orgs/acme/servers/github/versions/1.2.0", Status: registryv1.ServerVersion_STATUS_YANKED}))
		if v := entryVersion(t, e, "development", "github"); v != "1.1.0" {
			t.Fatalf("after yank: %s", v)
		}
		// A range asking for prereleases gets them.
		e.publish(t, "github", "1.3.0-beta.1")
		pre := must[*registryv1.PinEntryResponse](t)(e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{
			Name: "orgs/acme/registries/development/entries/github", VersionRange: "~1.3.0-0"}))
		if pre.GetEntry().GetVersion() != "1.3.0-beta.1" {
			t.Fatalf("prerelease range pin = %v", pre)
		}
		e.publish(t, "github", "1.3.0-beta.2")
		if v := entryVersion(t, e, "development", "github"); v != "1.3.0-beta.2" {
			t.Fatalf("prerelease range: %s", v)
		}
	})
}

func TestPinsGuardServersAndWatch(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.server(t, "other", "org.elsewhere/other")
		e.publish(t, "github", "1.0.0")
		e.publish(t, "github", "1.1.0")
		e.publish(t, "other", "1.0.0")
		e.registry(t, "staging", &registryv1.Registry{Namespaces: []string{"com.acme"}})
		e.registry(t, "production", &registryv1.Registry{})

		ctx, cancel := context.WithTimeout(e.as("admin"), 20*time.Second)
		defer cancel()
		watch, err := e.client.WatchEntries(ctx, &registryv1.WatchEntriesRequest{Parent: "orgs/acme/registries/staging"})
		if err != nil {
			t.Fatal(err)
		}
		pin(t, e, "alice", "staging", "github", "1.0.0")
		_, err = e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{Name: "orgs/acme/registries/staging/entries/other", Version: "1.0.0"})
		wantCode(t, err, codes.FailedPrecondition, "outside the namespaces")
		_, err = e.client.PinEntry(e.as("alice"), &registryv1.PinEntryRequest{Name: "orgs/acme/registries/staging/entries/github", Version: "9.9.9"})
		wantCode(t, err, codes.NotFound, "missing version")
		_, err = e.client.DeleteServer(e.as("admin"), &registryv1.DeleteServerRequest{Name: "orgs/acme/servers/github"})
		wantCode(t, err, codes.FailedPrecondition, "delete a pinned server")

		pin(t, e, "alice", "staging", "github", "1.1.0")
		promoted := must[*registryv1.PinEntryResponse](t)(e.client.PromoteEntry(e.as("alice"), &registryv1.PromoteEntryRequest{
			Name: "orgs/acme/registries/staging/entries/github", TargetRegistry: "orgs/acme/registries/production"}))
		if promoted.GetEntry().GetVersion() != "1.1.0" {
			t.Fatalf("promote = %v", promoted)
		}
		must[*registryv1.UnpinEntryResponse](t)(e.client.UnpinEntry(e.as("alice"), &registryv1.UnpinEntryRequest{Name: "orgs/acme/registries/staging/entries/github"}))

		var got []string
		for len(got) < 3 {
			ev, err := watch.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Type.String()+" "+ev.Entry.Version+" "+string(rune('0'+ev.Revision)))
		}
		if strings.Join(got, ",") != "TYPE_PINNED 1.0.0 1,TYPE_PINNED 1.1.0 2,TYPE_UNPINNED 1.1.0 3" {
			t.Fatalf("watch = %v", got)
		}
		// Resuming after revision 1 replays the rest.
		resume, err := e.client.WatchEntries(ctx, &registryv1.WatchEntriesRequest{Parent: "orgs/acme/registries/staging", SinceRevision: 1})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := resume.Recv()
		if err != nil || ev.Revision != 2 {
			t.Fatalf("resume = %v, %v", ev, err)
		}
		// Unpinned everywhere, the server can go, with its versions.
		must[*registryv1.UnpinEntryResponse](t)(e.client.UnpinEntry(e.as("alice"), &registryv1.UnpinEntryRequest{Name: "orgs/acme/registries/production/entries/github"}))
		if _, err := e.client.DeleteServer(e.as("admin"), &registryv1.DeleteServerRequest{Name: "orgs/acme/servers/github"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.client.GetVersion(e.as("admin"), &registryv1.GetVersionRequest{Name: "orgs/acme/servers/github/versions/1.0.0"})
		wantCode(t, err, codes.NotFound, "version of a deleted server")
	})
}

func TestListsShowOnlyWhatBindingsAllow(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for _, s := range []string{"a", "b", "c"} {
			e.server(t, s, "com.acme/"+s)
			e.publish(t, s, "1.0.0")
		}
		e.registry(t, "production", &registryv1.Registry{})
		e.registry(t, "staging", &registryv1.Registry{})
		for _, s := range []string{"a", "b", "c"} {
			pin(t, e, "admin", "production", s, "1.0.0")
		}
		// Frank may see one entry; Grace the staging registry only.
		e.authz.add(grant{"users/frank", "entries.get", "orgs/acme/registries/production/entries/b"})
		e.authz.add(grant{"users/grace", "*", "orgs/acme/registries/staging"})
		l := must[*registryv1.ListEntriesResponse](t)(e.client.ListEntries(e.as("frank"), &registryv1.ListEntriesRequest{Parent: "orgs/acme/registries/production"}))
		if len(l.Entries) != 1 || l.Entries[0].ServerName != "com.acme/b" {
			t.Fatalf("frank sees %v", l.Entries)
		}
		_, err := e.client.ListEntries(e.as("grace"), &registryv1.ListEntriesRequest{Parent: "orgs/acme/registries/production"})
		wantCode(t, err, codes.PermissionDenied, "grace on production")
		regs := must[*registryv1.ListRegistriesResponse](t)(e.client.ListRegistries(e.as("grace"), &registryv1.ListRegistriesRequest{Parent: "orgs/acme"}))
		if len(regs.Registries) != 1 || regs.Registries[0].Name != "orgs/acme/registries/staging" {
			t.Fatalf("grace's registries = %v", regs.Registries)
		}
		all := must[*registryv1.ListEntriesResponse](t)(e.client.ListEntries(e.as("admin"), &registryv1.ListEntriesRequest{Parent: "orgs/acme/registries/production", PageSize: 2}))
		if len(all.Entries) != 2 || all.NextPageToken == "" {
			t.Fatalf("admin page = %v", all)
		}
		_, err = e.client.ListEntries(e.as("admin"), &registryv1.ListEntriesRequest{Parent: "orgs/acme/registries/production", PageToken: all.NextPageToken, Search: "x"})
		wantCode(t, err, codes.InvalidArgument, "page token of another query")
	})
}

// TestListEntriesFullOverTheWire: a full-view list goes over gRPC spliced
// from its entries' encodings, made once (kit/frozen). What the client
// decodes is what GetEntry gives for each entry, on the first read, on a
// read served from the kept encodings, and after a pin changes an entry.
func TestListEntriesFullOverTheWire(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for _, s := range []string{"a", "b", "c"} {
			e.server(t, s, "com.acme/"+s)
			e.publish(t, s, "1.0.0")
			e.publish(t, s, "1.1.0")
		}
		e.registry(t, "production", &registryv1.Registry{})
		for _, s := range []string{"a", "b", "c"} {
			pin(t, e, "admin", "production", s, "1.0.0")
		}
		check := func(wantVersion map[string]string) {
			t.Helper()
			for round := range 2 {
				l := must[*registryv1.ListEntriesResponse](t)(e.client.ListEntries(e.as("admin"), &registryv1.ListEntriesRequest{
					Parent: "orgs/acme/registries/production", View: registryv1.EntryView_ENTRY_VIEW_FULL}))
				if len(l.Entries) != 3 {
					t.Fatalf("round %d: %d entries, want 3", round, len(l.Entries))
				}
				for _, got := range l.Entries {
					want := must[*registryv1.Entry](t)(e.client.GetEntry(e.as("admin"), &registryv1.GetEntryRequest{Name: got.Name,
						View: registryv1.EntryView_ENTRY_VIEW_FULL}))
					if !proto.Equal(got, want) {
						t.Fatalf("round %d: listed\n%v\nGetEntry gives\n%v", round, got, want)
					}
					if got.GetVersionDetail().GetServerJson() == nil || got.Version != wantVersion[got.ServerName] {
						t.Fatalf("round %d: %s at %q with server.json %v, want %q with its document", round, got.ServerName, got.Version,
							got.GetVersionDetail().GetServerJson(), wantVersion[got.ServerName])
					}
				}
			}
		}
		check(map[string]string{"com.acme/a": "1.0.0", "com.acme/b": "1.0.0", "com.acme/c": "1.0.0"})
		pin(t, e, "admin", "production", "b", "1.1.0")
		check(map[string]string{"com.acme/a": "1.0.0", "com.acme/b": "1.1.0", "com.acme/c": "1.0.0"})
	})
}

// TestRecordObservedTools: the gateway's identity records what a version
// published without tools first listed, once; nobody else may; GetVersion
// shows it; bad listings are refused naming the field.
func TestRecordObservedTools(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0")
		e.publish(t, "github", "2.0.0", &registryv1.Tool{Name: "search", Description: "Searches."})
		gateway := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer svc_gateway")
		deploy := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer svc_deploy")
		name := "orgs/acme/servers/github/versions/1.0.0"
		schema, _ := structpb.NewStruct(map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}})
		listing := []*registryv1.Tool{{Name: "get data", Description: "Reads.", InputSchema: schema,
			Annotations: &registryv1.ToolAnnotations{ReadOnlyHint: proto.Bool(true)}}, {Name: "write", InputSchema: schema}}

		_, err := e.client.RecordObservedTools(e.as("admin"), &registryv1.RecordObservedToolsRequest{Name: name, Tools: listing})
		wantCode(t, err, codes.PermissionDenied, "an organization admin recording tools")
		_, err = e.client.RecordObservedTools(deploy, &registryv1.RecordObservedToolsRequest{Name: name, Tools: listing})
		wantCode(t, err, codes.PermissionDenied, "the deploy identity recording tools")
		for _, bad := range []struct {
			field string
			tools []*registryv1.Tool
		}{
			{"tools[0].name", []*registryv1.Tool{{Name: ""}}},
			{"tools[0].name", []*registryv1.Tool{{Name: "bell\a"}}},
			{"tools[0].name", []*registryv1.Tool{{Name: strings.Repeat("x", 129)}}},
			{"tools[1].name", []*registryv1.Tool{{Name: "a"}, {Name: "a"}}},
			{"tools[0].description", []*registryv1.Tool{{Name: "a", Description: strings.Repeat("d", 10001)}}},
			{"tools[0].input_schema", []*registryv1.Tool{{Name: "a", InputSchema: &structpb.Struct{}}}},
			{"tools", make([]*registryv1.Tool, 1001)},
		} {
			_, err := e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{Name: name, Tools: bad.tools})
			wantCode(t, err, codes.InvalidArgument, bad.field)
			if f := badField(err); len(f) == 0 || f[0] != bad.field {
				t.Fatalf("refusal names %v, want %s", f, bad.field)
			}
		}
		v := must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("admin"), &registryv1.GetVersionRequest{Name: name}))
		if v.ToolsObservedTime != nil || len(v.ObservedTools) != 0 {
			t.Fatalf("refused recordings changed the version: %v", v)
		}

		got := must[*registryv1.ServerVersion](t)(e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{Name: name, Tools: listing}))
		if got.ToolsObservedTime == nil || len(got.ObservedTools) != 2 || len(got.Tools) != 0 {
			t.Fatalf("recorded = %v", got)
		}
		v = must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("admin"), &registryv1.GetVersionRequest{Name: name}))
		if !proto.Equal(v.ObservedTools[0], listing[0]) || !proto.Equal(v.ObservedTools[1], listing[1]) || v.Digest != got.Digest {
			t.Fatalf("GetVersion shows %v", v)
		}
		// Once: neither a second listing nor a version with published tools.
		_, err = e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{Name: name, Tools: listing[:1]})
		wantCode(t, err, codes.FailedPrecondition, "a second recording")
		_, err = e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{Name: "orgs/acme/servers/github/versions/2.0.0", Tools: listing})
		wantCode(t, err, codes.FailedPrecondition, "a version with published tools")
		_, err = e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{Name: "orgs/acme/servers/github/versions/9.0.0", Tools: listing})
		wantCode(t, err, codes.NotFound, "an absent version")
		v = must[*registryv1.ServerVersion](t)(e.client.GetVersion(e.as("admin"), &registryv1.GetVersionRequest{Name: name}))
		if len(v.ObservedTools) != 2 {
			t.Fatalf("a refused second recording changed the first: %v", v.ObservedTools)
		}
		// A server that lists nothing is recorded as listing nothing.
		e.publish(t, "github", "3.0.0")
		empty := must[*registryv1.ServerVersion](t)(e.client.RecordObservedTools(gateway, &registryv1.RecordObservedToolsRequest{
			Name: "orgs/acme/servers/github/versions/3.0.0"}))
		if empty.ToolsObservedTime == nil || len(empty.ObservedTools) != 0 {
			t.Fatalf("empty listing recorded as %v", empty)
		}
	})
}

// TestRequireRecordedTools: a registry requiring recorded tools (its own
// setting or inherited) refuses pinning a version published without tools,
// and an auto-upgrading range does not move to one.
func TestRequireRecordedTools(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.server(t, "github", "com.acme/github")
		e.publish(t, "github", "1.0.0", &registryv1.Tool{Name: "search"})
		e.publish(t, "github", "1.1.0")
		e.registry(t, "strict", &registryv1.Registry{RequireRecordedTools: proto.Bool(true), AutoUpgrade: proto.Bool(true)})
		e.registry(t, "child", &registryv1.Registry{Parent: "orgs/acme/registries/strict"})
		e.registry(t, "open", &registryv1.Registry{})
		reg := must[*registryv1.Registry](t)(e.client.GetRegistry(e.as("admin"), &registryv1.GetRegistryRequest{Name: "orgs/acme/registries/child"}))
		if !reg.GetEffective().GetRequireRecordedTools() {
			t.Fatalf("child's effective settings: %v", reg.GetEffective())
		}
		for _, r := range []string{"strict", "child"} {
			_, err := e.client.PinEntry(e.as("admin"), &registryv1.PinEntryRequest{Name: "orgs/acme/registries/" + r + "/entries/github", Version: "1.1.0"})
			wantCode(t, err, codes.FailedPrecondition, "pinning a version without tools in "+r)
			if !strings.Contains(status.Convert(err).Message(), "requires recorded tools") {
				t.Fatalf("refusal says %q", status.Convert(err).Message())
			}
		}
		pin(t, e, "admin", "open", "github", "1.1.0")
		pin(t, e, "admin", "strict", "github", "1.0.0")
		// A range follows only versions with tools.
		must[*registryv1.PinEntryResponse](t)(e.client.PinEntry(e.as("admin"), &registryv1.PinEntryRequest{
			Name: "orgs/acme/registries/strict/entries/github", VersionRange: "^1.0.0"}))
		en := must[*registryv1.Entry](t)(e.client.GetEntry(e.as("admin"), &registryv1.GetEntryRequest{Name: "orgs/acme/registries/strict/entries/github"}))
		if en.Version != "1.0.0" {
			t.Fatalf("range pinned %s, want 1.0.0 (1.1.0 has no tools)", en.Version)
		}
		e.publish(t, "github", "1.2.0", &registryv1.Tool{Name: "search"})
		en = must[*registryv1.Entry](t)(e.client.GetEntry(e.as("admin"), &registryv1.GetEntryRequest{Name: "orgs/acme/registries/strict/entries/github"}))
		if en.Version != "1.2.0" {
			t.Fatalf("range follows to %s, want 1.2.0", en.Version)
		}
	})
}

// TestMcpLimitsInherit: each limit left 0 comes from the parent registry,
// then the default; out-of-range limits are refused naming the field.
func TestMcpLimitsInherit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.registry(t, "parent", &registryv1.Registry{McpLimits: &registryv1.McpLimits{RequestsPerMinutePerCaller: 60, SessionsPerCaller: 3}})
		e.registry(t, "child", &registryv1.Registry{Parent: "orgs/acme/registries/parent",
			McpLimits: &registryv1.McpLimits{SessionsPerCaller: 5, RequestsPerMinutePerServer: 1000}})
		got := must[*registryv1.Registry](t)(e.client.GetRegistry(e.as("admin"), &registryv1.GetRegistryRequest{Name: "orgs/acme/registries/child"}))
		want := &registryv1.McpLimits{RequestsPerMinutePerCaller: 60, RequestsPerMinutePerServer: 1000, SessionsPerCaller: 5,
			MaxRequestBytes: registry.MaxRequestBytes}
		if !proto.Equal(got.GetEffective().GetMcpLimits(), want) {
			t.Fatalf("child's limits = %v, want %v", got.GetEffective().GetMcpLimits(), want)
		}
		plain := e.registry(t, "plain", &registryv1.Registry{})
		if l := plain.GetEffective().GetMcpLimits(); l.GetSessionsPerCaller() != 0 ||
			l.GetRequestsPerMinutePerCaller() != 0 || l.GetMaxRequestBytes() != registry.MaxRequestBytes {
			t.Fatalf("defaults = %v", l)
		}
		up := must[*registryv1.UpdateRegistryResponse](t)(e.client.UpdateRegistry(e.as("admin"), &registryv1.UpdateRegistryRequest{
			Registry:   &registryv1.Registry{Name: "orgs/acme/registries/plain", McpLimits: &registryv1.McpLimits{MaxRequestBytes: 1024}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"mcp_limits"}}})).GetRegistry()
		if up.GetEffective().GetMcpLimits().GetMaxRequestBytes() != 1024 {
			t.Fatalf("after update: %v", up.GetEffective().GetMcpLimits())
		}
		_, err := e.client.CreateRegistry(e.as("admin"), &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: "bad",
			Registry: &registryv1.Registry{McpLimits: &registryv1.McpLimits{MaxRequestBytes: 5 << 20}}})
		wantCode(t, err, codes.InvalidArgument, "max_request_bytes over 4 MiB")
		if f := badField(err); len(f) == 0 || !strings.Contains(f[0], "max_request_bytes") {
			t.Fatalf("refusal names %v", f)
		}
	})
}
