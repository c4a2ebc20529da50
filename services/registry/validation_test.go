package registry_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/registry"
)

// TestDeclaredRules: rules declared in the registry protos (buf.validate)
// are enforced by the real server, unary and streaming, and answered as
// hand-written ones are: INVALID_ARGUMENT naming the field.
func TestDeclaredRules(t *testing.T) {
	e := start(t, dbtest.MigratedSQLiteURL(t, registry.MigrateStore))
	ctx := e.as("admin")
	want := func(t *testing.T, err error, field string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || strings.Join(badField(err), ",") != field {
			t.Fatalf("got %v (fields %v), want INVALID_ARGUMENT naming %s", err, badField(err), field)
		}
	}

	// Lengths count characters: a title of 200 emoji is 200 characters.
	create := func(id, title string) error {
		_, err := e.client.CreateServer(ctx, &registryv1.CreateServerRequest{Parent: "orgs/acme", ServerId: id,
			Server: &registryv1.Server{ServerName: "com.acme/" + id, Title: title}})
		return err
	}
	if err := create("emoji", strings.Repeat("🚀", 200)); err != nil {
		t.Fatalf("200 characters: %v", err)
	}
	want(t, create("emoji-two", strings.Repeat("🚀", 201)), "server.title")
	want(t, create("Emoji", "x"), "server_id")

	_, err := e.client.ListServers(ctx, &registryv1.ListServersRequest{Parent: "orgs/acme", PageSize: -1})
	want(t, err, "page_size")

	// Enums take their defined values only.
	_, err = e.client.ListEntries(ctx, &registryv1.ListEntriesRequest{Parent: "orgs/acme/registries/r", View: registryv1.EntryView(7)})
	want(t, err, "view")
	_, err = e.client.SetVersionStatus(ctx, &registryv1.SetVersionStatusRequest{Name: "orgs/acme/servers/emoji/versions/1.0.0",
		Status: registryv1.ServerVersion_Status(9)})
	want(t, err, "status")
	_, err = e.client.CreateRegistry(ctx, &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: "r",
		Registry: &registryv1.Registry{ToolPolicy: registryv1.ToolPolicy(5)}})
	want(t, err, "registry.tool_policy")

	// Nested and repeated fields are named by their path.
	_, err = e.client.CreateVersion(ctx, &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/emoji",
		Version: &registryv1.ServerVersion{Version: "1.0.0", Tools: []*registryv1.Tool{{Name: "ok"}, {Name: "not ok"}}}})
	want(t, err, "version.tools[1].name")

	// The first message of a stream is validated the same way.
	stream, err := e.client.WatchEntries(ctx, &registryv1.WatchEntriesRequest{Parent: "orgs/acme/registries/r", SinceRevision: -1})
	if err == nil {
		_, err = stream.Recv()
	}
	want(t, err, "since_revision")
}
