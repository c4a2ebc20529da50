package orgs_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// violatedFields returns the fields a BadRequest detail of err names.
func violatedFields(err error) []string {
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

// TestDeclaredRules: rules declared in the orgs protos (buf.validate) are
// enforced by the real server and answered as hand-written ones are:
// INVALID_ARGUMENT naming the field.
func TestDeclaredRules(t *testing.T) {
	c, token := startOrgs(t, dbtest.MigratedSQLiteURL(t, store.Migrate))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	want := func(t *testing.T, err error, field string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), ",") != field {
			t.Fatalf("got %v (fields %v), want INVALID_ARGUMENT naming %s", err, violatedFields(err), field)
		}
	}

	// Lengths count characters: 200 emoji (800 bytes) are 200 characters.
	org := &orgsv1.Organization{DisplayName: strings.Repeat("🚀", 200)}
	if _, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "emoji", Organization: org}); err != nil {
		t.Fatalf("200 characters: %v", err)
	}
	org.DisplayName += "🚀"
	_, err := c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "emoji-two", Organization: org})
	want(t, err, "organization.display_name")
	_, err = c.UpdateOrganization(ctx, &orgsv1.UpdateOrganizationRequest{Organization: &orgsv1.Organization{Name: "orgs/emoji", DisplayName: org.DisplayName}})
	want(t, err, "organization.display_name")

	_, err = c.ListOrganizations(ctx, &orgsv1.ListOrganizationsRequest{PageSize: -1})
	want(t, err, "page_size")
	_, err = c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "acme"})
	want(t, err, "organization")
	_, err = c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: &orgsv1.Organization{},
		RequestId: strings.Repeat("r", 129)})
	want(t, err, "request_id")
	// The hand-written rules still run after the declared ones.
	_, err = c.CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: &orgsv1.Organization{DisplayName: "a\x1bb"}})
	want(t, err, "organization.display_name")
	_, err = c.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/Acme"})
	want(t, err, "name")
}
