package server

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/errs"
)

// badFields returns the code of err and the fields its BadRequest names.
func badFields(err error) (codes.Code, []string) {
	st := status.Convert(err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return st.Code(), fields
}

// TestDeclaredRules: the rules a request declares in its proto
// (protovalidate) refuse it with INVALID_ARGUMENT naming the field, as a
// hand-written validator does; the hand-written one runs only on a request
// that satisfies them.
func TestDeclaredRules(t *testing.T) {
	var handwritten []string
	v := allValidators(validGet)
	v[orgsv1.OrgsService_CreateOrganization_FullMethodName] = func(m proto.Message) error {
		handwritten = append(handwritten, m.(*orgsv1.CreateOrganizationRequest).GetOrganizationId())
		if m.(*orgsv1.CreateOrganizationRequest).GetOrganizationId() == "taken" {
			return errs.Field("organization_id", "is taken")
		}
		return nil
	}
	v[orgsv1.OrgsService_VerifyToken_FullMethodName] = DeclaredOnly
	h := startWith(t, Config{}, v)
	create := func(id, display string) *orgsv1.CreateOrganizationRequest {
		return &orgsv1.CreateOrganizationRequest{OrganizationId: id, Organization: &orgsv1.Organization{DisplayName: display}}
	}
	const createOrg = orgsv1.OrgsService_CreateOrganization_FullMethodName
	tests := []struct {
		name   string
		method string
		req    proto.Message
		code   codes.Code
		fields []string
	}{
		// Unimplemented: the fake has no handler, so the request passed validation.
		{"200 characters in 800 bytes", createOrg, create("acme", strings.Repeat("🚀", 200)), codes.Unimplemented, nil},
		{"201 characters", createOrg, create("acme", strings.Repeat("🚀", 201)), codes.InvalidArgument,
			[]string{"organization.display_name: must be at most 200 characters"}},
		{"every violation", createOrg, &orgsv1.CreateOrganizationRequest{OrganizationId: "Ab"}, codes.InvalidArgument,
			[]string{"organization: is required", "organization_id: must be at least 3 characters", "organization_id: does not match regex pattern `^[a-z][a-z0-9-]*$`, got \"Ab\""}},
		{"hand-written after declared", createOrg, create("taken", ""), codes.InvalidArgument, []string{"organization_id: is taken"}},
		{"negative page size", orgsv1.OrgsService_ListOrganizations_FullMethodName, &orgsv1.ListOrganizationsRequest{PageSize: -1}, codes.InvalidArgument,
			[]string{"page_size: must be greater than or equal to 0"}},
		{"declared only", orgsv1.OrgsService_VerifyToken_FullMethodName, &orgsv1.VerifyTokenRequest{}, codes.InvalidArgument,
			[]string{"token: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, fields := badFields(h.conn.Invoke(authed("pyl_good"), tt.method, tt.req, &emptypb.Empty{}))
			if code != tt.code || strings.Join(fields, "\n") != strings.Join(tt.fields, "\n") {
				t.Fatalf("got %v %q, want %v %q", code, fields, tt.code, tt.fields)
			}
		})
	}
	if strings.Join(handwritten, ",") != "acme,taken" {
		t.Errorf("the hand-written validator saw %v, want only the requests that passed the declared rules", handwritten)
	}
}

func TestDeclaresRules(t *testing.T) {
	for _, tt := range []struct {
		msg  proto.Message
		want bool
	}{
		{&orgsv1.VerifyTokenRequest{}, true},
		{&orgsv1.ListOrganizationsRequest{}, true},
		{&orgsv1.VerifyTokenResponse{}, false},
	} {
		if got := declaresRules(tt.msg.ProtoReflect().Descriptor()); got != tt.want {
			t.Errorf("declaresRules(%s) = %v, want %v", tt.msg.ProtoReflect().Descriptor().FullName(), got, tt.want)
		}
	}
}

// TestValidationCheck: the same check without a server, as services'
// validator tables use it.
func TestValidationCheck(t *testing.T) {
	val, err := NewValidation(allValidators(validGet), orgsv1.OrgsService_ServiceDesc.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	err = val.Check(orgsv1.OrgsService_GetOrganization_FullMethodName, &orgsv1.GetOrganizationRequest{})
	if code, fields := badFields(errs.ToStatus(err, "").Err()); code != codes.InvalidArgument || strings.Join(fields, ",") != "name: is required" {
		t.Fatalf("got %v %q", code, fields)
	}
	if _, err := NewValidation(nil, "pylee.nope.v1.NopeService"); err == nil {
		t.Fatal("an unknown service was accepted")
	}
}

// TestPatternEchoesValue: a pattern violation shows the refused value,
// quoted and clipped, so that it says what was wrong without carrying a
// control character to the client's terminal.
func TestPatternEchoesValue(t *testing.T) {
	val, err := NewValidation(allValidators(validGet), orgsv1.OrgsService_ServiceDesc.ServiceName)
	if err != nil {
		t.Fatal(err)
	}
	id := "bad\x1b]0;owned\x07" + strings.Repeat("x", 45)
	err = val.Check(orgsv1.OrgsService_CreateOrganization_FullMethodName,
		&orgsv1.CreateOrganizationRequest{OrganizationId: id, Organization: &orgsv1.Organization{}})
	msg := errs.ToStatus(err, "").Message()
	if !strings.Contains(msg, `got "bad\x1b]0;owned\a`) || strings.ContainsAny(msg, "\x1b\x07") {
		t.Fatalf("message = %q", msg)
	}
	if got := clip(strings.Repeat("🚀", 70), maxEcho); got != strings.Repeat("🚀", 64)+"…" {
		t.Fatalf("clip = %q", got)
	}
	if got := clip("short", maxEcho); got != "short" {
		t.Fatalf("clip = %q", got)
	}
}
