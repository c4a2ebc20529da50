package orgs

import (
	"errors"
	"strings"
	"testing"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func TestValidators(t *testing.T) {
	org := func(name, display string) *orgsv1.Organization {
		return &orgsv1.Organization{Name: name, DisplayName: display}
	}
	tests := []struct {
		name  string
		req   proto.Message
		field string // "" means valid
	}{
		{"create ok", &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: org("", "Acme")}, ""},
		{"create no id", &orgsv1.CreateOrganizationRequest{Organization: org("", "Acme")}, "organization_id"},
		{"create bad id", &orgsv1.CreateOrganizationRequest{OrganizationId: "Acme!", Organization: org("", "")}, "organization_id"},
		{"create short id", &orgsv1.CreateOrganizationRequest{OrganizationId: "ab", Organization: org("", "")}, "organization_id"},
		{"create no org", &orgsv1.CreateOrganizationRequest{OrganizationId: "acme"}, "organization"},
		{"create long name", &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: org("", strings.Repeat("x", 201))}, "organization.display_name"},
		{"create long description", &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: &orgsv1.Organization{Description: strings.Repeat("x", 1001)}}, "organization.description"},
		{"create long request id", &orgsv1.CreateOrganizationRequest{OrganizationId: "acme", Organization: org("", ""), RequestId: strings.Repeat("r", 129)}, "request_id"},
		{"get ok", &orgsv1.GetOrganizationRequest{Name: "orgs/acme"}, ""},
		{"get empty", &orgsv1.GetOrganizationRequest{}, "name"},
		{"get bad", &orgsv1.GetOrganizationRequest{Name: "acme"}, "name"},
		{"get nested", &orgsv1.GetOrganizationRequest{Name: "orgs/acme/x"}, "name"},
		{"list ok", &orgsv1.ListOrganizationsRequest{PageSize: 10, Filter: `display_name : "ac"`}, ""},
		{"list exact", &orgsv1.ListOrganizationsRequest{Filter: `display_name="Acme Inc"`}, ""},
		{"list negative", &orgsv1.ListOrganizationsRequest{PageSize: -1}, "page_size"},
		{"list bad filter field", &orgsv1.ListOrganizationsRequest{Filter: `description = "x"`}, "filter"},
		{"list bad filter value", &orgsv1.ListOrganizationsRequest{Filter: `display_name = x`}, "filter"},
		{"list bad filter op", &orgsv1.ListOrganizationsRequest{Filter: `display_name > "x"`}, "filter"},
		{"update ok", &orgsv1.UpdateOrganizationRequest{Organization: org("orgs/acme", "A"), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}}, ""},
		{"update implied mask", &orgsv1.UpdateOrganizationRequest{Organization: org("orgs/acme", "A")}, ""},
		{"update no org", &orgsv1.UpdateOrganizationRequest{}, "organization"},
		{"update bad name", &orgsv1.UpdateOrganizationRequest{Organization: org("acme", "A")}, "organization.name"},
		{"update bad mask", &orgsv1.UpdateOrganizationRequest{Organization: org("orgs/acme", "A"), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}}, "update_mask"},
		{"update long", &orgsv1.UpdateOrganizationRequest{Organization: org("orgs/acme", strings.Repeat("x", 201)), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"*"}}}, "organization.display_name"},
		{"delete ok", &orgsv1.DeleteOrganizationRequest{Name: "orgs/acme"}, ""},
		{"delete bad", &orgsv1.DeleteOrganizationRequest{Name: "orgs/"}, "name"},
	}
	// The declared rules (protovalidate) first, then the hand-written ones,
	// as the server runs them.
	validation, err := server.NewValidation(Validators(), orgsv1.OrgsService_ServiceDesc.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := ""
			switch tt.req.(type) {
			case *orgsv1.CreateOrganizationRequest:
				method = orgsv1.OrgsService_CreateOrganization_FullMethodName
			case *orgsv1.GetOrganizationRequest:
				method = orgsv1.OrgsService_GetOrganization_FullMethodName
			case *orgsv1.ListOrganizationsRequest:
				method = orgsv1.OrgsService_ListOrganizations_FullMethodName
			case *orgsv1.UpdateOrganizationRequest:
				method = orgsv1.OrgsService_UpdateOrganization_FullMethodName
			case *orgsv1.DeleteOrganizationRequest:
				method = orgsv1.OrgsService_DeleteOrganization_FullMethodName
			}
			err := validation.Check(method, tt.req)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *errs.InvalidFieldsError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a field violation of %s", err, tt.field)
			}
			if fe.Violations[0].Field != tt.field {
				t.Fatalf("field = %s (%v), want %s", fe.Violations[0].Field, err, tt.field)
			}
		})
	}
}

func TestParseFilter(t *testing.T) {
	f, err := parseFilter(`  display_name  :  "a b"  `)
	if err != nil || f.contains != "a b" || f.equals != nil {
		t.Fatalf("contains = %+v, %v", f, err)
	}
	f, err = parseFilter(`display_name = "say \"hi\""`)
	if err != nil || f.equals == nil || *f.equals != `say "hi"` {
		t.Fatalf("equals = %+v, %v", f, err)
	}
	if _, err := parseFilter(`display_name : ""`); err == nil {
		t.Fatal("empty contains accepted")
	}
}
