package orgs

import (
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/access"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// Requests are validated in two steps (see docs/design.md). The field rules
// are declared in the protos (`buf.validate`: required fields, lengths in
// characters, ids, page sizes, list sizes) and kit/server checks them
// first; the functions here check, on requests that satisfy them, what
// needs code: resource names, filters, update masks, control characters,
// known permissions and rules across fields.

// bindingOn are the resources that hold bindings, tools aside (their ids
// are MCP tool names, checked by checkBindable).
var bindingOn = []aip.Pattern{names.OrgPattern, names.RegistryPattern, names.ServerPattern}

// timeNow is the clock validation compares expire times with.
var timeNow = time.Now

// Validators returns the hand-written validator of every OrgsService RPC,
// keyed by full method name; the server refuses to start without one per
// RPC.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		orgsv1.OrgsService_CreateOrganization_FullMethodName: server.ValidatorOf(validateCreateOrganization),
		orgsv1.OrgsService_GetOrganization_FullMethodName:    server.NameOnly("name", names.OrgPattern, (*orgsv1.GetOrganizationRequest).GetName),
		orgsv1.OrgsService_ListOrganizations_FullMethodName:  server.ValidatorOf(validateListOrganizations),
		orgsv1.OrgsService_UpdateOrganization_FullMethodName: server.ValidatorOf(validateUpdateOrganization),
		orgsv1.OrgsService_VerifyToken_FullMethodName:        server.DeclaredOnly,
		orgsv1.OrgsService_DeleteOrganization_FullMethodName: server.NameOnly("name", names.OrgPattern, (*orgsv1.DeleteOrganizationRequest).GetName),
	}
}

// AccessValidators returns the hand-written validator of every
// AccessService RPC.
func AccessValidators() map[string]server.Validator {
	return map[string]server.Validator{
		orgsv1.AccessService_GetCurrentUser_FullMethodName:       server.DeclaredOnly,
		orgsv1.AccessService_CreateServiceAccount_FullMethodName: server.ValidatorOf(validateCreateServiceAccount),
		orgsv1.AccessService_GetServiceAccount_FullMethodName:    server.NameOnly("name", names.ServiceAccountPattern, (*orgsv1.GetServiceAccountRequest).GetName),
		orgsv1.AccessService_ListServiceAccounts_FullMethodName:  server.NameOnly("parent", names.OrgPattern, (*orgsv1.ListServiceAccountsRequest).GetParent),
		orgsv1.AccessService_DeleteServiceAccount_FullMethodName: server.NameOnly("name", names.ServiceAccountPattern, (*orgsv1.DeleteServiceAccountRequest).GetName),
		orgsv1.AccessService_CreateToken_FullMethodName:          server.ValidatorOf(validateCreateToken),
		orgsv1.AccessService_ListTokens_FullMethodName:           server.ValidatorOf(validateListTokens),
		orgsv1.AccessService_DeleteToken_FullMethodName:          server.ValidatorOf(validateDeleteToken),
		orgsv1.AccessService_CreateBinding_FullMethodName:        server.ValidatorOf(validateCreateBinding),
		orgsv1.AccessService_ListBindings_FullMethodName:         server.ValidatorOf(validateListBindings),
		orgsv1.AccessService_DeleteBinding_FullMethodName:        server.ValidatorOf(validateDeleteBinding),
		orgsv1.AccessService_PurgeBindings_FullMethodName:        server.ValidatorOf(validatePurgeBindings),
		orgsv1.AccessService_ListRoles_FullMethodName:            server.NameOnly("parent", names.OrgPattern, (*orgsv1.ListRolesRequest).GetParent),
		orgsv1.AccessService_CreateRole_FullMethodName:           server.ValidatorOf(validateCreateRole),
		orgsv1.AccessService_DeleteRole_FullMethodName:           server.NameOnly("name", names.RolePattern, (*orgsv1.DeleteRoleRequest).GetName),
		orgsv1.AccessService_CreateTeam_FullMethodName:           server.ValidatorOf(validateCreateTeam),
		orgsv1.AccessService_ListTeams_FullMethodName:            server.NameOnly("parent", names.OrgPattern, (*orgsv1.ListTeamsRequest).GetParent),
		orgsv1.AccessService_DeleteTeam_FullMethodName:           server.NameOnly("name", names.TeamPattern, (*orgsv1.DeleteTeamRequest).GetName),
		orgsv1.AccessService_AddTeamMember_FullMethodName:        server.ValidatorOf(validateAddTeamMember),
		orgsv1.AccessService_RemoveTeamMember_FullMethodName:     server.ValidatorOf(validateRemoveTeamMember),
		orgsv1.AccessService_ListMembers_FullMethodName:          server.NameOnly("parent", names.OrgPattern, (*orgsv1.ListMembersRequest).GetParent),
		orgsv1.AccessService_DeleteMember_FullMethodName:         server.ValidatorOf(validateDeleteMember),
		orgsv1.AccessService_CreateInvitation_FullMethodName:     server.ValidatorOf(validateCreateInvitation),
		orgsv1.AccessService_ListInvitations_FullMethodName:      server.NameOnly("parent", names.OrgPattern, (*orgsv1.ListInvitationsRequest).GetParent),
		orgsv1.AccessService_RevokeInvitation_FullMethodName:     server.ValidatorOf(validateRevokeInvitation),
		orgsv1.AccessService_AcceptInvitation_FullMethodName:     server.ValidatorOf(validateAcceptInvitation),
		orgsv1.AccessService_ListAllowed_FullMethodName:          server.ValidatorOf(validateListAllowed),
		orgsv1.AccessService_Check_FullMethodName:                server.ValidatorOf(validateCheck),
		orgsv1.AccessService_BatchCheck_FullMethodName:           server.ValidatorOf(validateBatchCheck),
	}
}

// --- OrgsService ------------------------------------------------------------

func validateCreateOrganization(req *orgsv1.CreateOrganizationRequest) error {
	var v errs.Violations
	checkOrganizationFields(&v, req.GetOrganization(), updatable)
	return v.Err()
}

func validateListOrganizations(req *orgsv1.ListOrganizationsRequest) error {
	if _, err := parseFilter(req.GetFilter()); err != nil {
		return errs.Field("filter", "%v", err)
	}
	return nil
}

func validateUpdateOrganization(req *orgsv1.UpdateOrganizationRequest) error {
	var v errs.Violations
	checkName(&v, "organization.name", req.GetOrganization().GetName(), names.OrgPattern)
	paths, err := organizationPaths(req)
	if err != nil {
		v.Check("update_mask", err)
	} else {
		checkOrganizationFields(&v, req.GetOrganization(), paths)
	}
	return v.Err()
}

// organizationPaths are the fields an UpdateOrganization changes.
func organizationPaths(req *orgsv1.UpdateOrganizationRequest) ([]string, error) {
	return aip.UpdatePaths(req.GetUpdateMask(), req.GetOrganization(), updatable)
}

// orgID is the id of an organization's name, `orgs/{org}`.
func orgID(name string) (string, error) {
	ids, err := names.OrgPattern.Parse(name)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// checkOrganizationFields checks the named fields of o; their lengths are
// declared in the proto.
func checkOrganizationFields(v *errs.Violations, o *orgsv1.Organization, fields []string) {
	for _, f := range fields {
		switch f {
		case store.FieldDisplayName:
			v.Check("organization."+f, aip.CheckPrintable(o.GetDisplayName(), false))
		case store.FieldDescription:
			v.Check("organization."+f, aip.CheckPrintable(o.GetDescription(), false))
		case store.FieldOverview:
			// The overview is Markdown; the others are single lines.
			v.Check("organization."+f, aip.CheckPrintable(o.GetOverview(), true))
		case store.FieldOIDC:
			checkOIDC(v, o.GetOidc())
		}
	}
}

// orgFilter is a parsed ListOrganizations filter.
type orgFilter struct {
	equals   *string
	contains string
}

func (f orgFilter) apply(q *store.OrganizationQuery) {
	q.DisplayNameEquals = f.equals
	q.DisplayNameContains = f.contains
}

// parseFilter reads the AIP-160 subset ListOrganizations supports:
// `display_name = "text"` (exact) and `display_name : "text"` (contains,
// ignoring case).
func parseFilter(s string) (orgFilter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return orgFilter{}, nil
	}
	i := strings.IndexAny(s, "=:")
	if i < 0 {
		return orgFilter{}, fmt.Errorf(`unsupported filter %q: use display_name = "text" or display_name : "text"`, s)
	}
	field, op, lit := strings.TrimSpace(s[:i]), s[i], strings.TrimSpace(s[i+1:])
	if field != "display_name" {
		return orgFilter{}, fmt.Errorf(`unsupported filter field %q: only display_name can be filtered on`, field)
	}
	val, err := strconv.Unquote(lit)
	if err != nil || !strings.HasPrefix(lit, `"`) {
		return orgFilter{}, fmt.Errorf(`value in %q must be a double-quoted string`, s)
	}
	if op == '=' {
		return orgFilter{equals: &val}, nil
	}
	if val == "" {
		return orgFilter{}, fmt.Errorf(`value of ":" must not be empty`)
	}
	return orgFilter{contains: val}, nil
}

// checkOIDC checks an identity provider configuration; an empty issuer
// means none, and every other rule depends on it, so all are here.
func checkOIDC(v *errs.Violations, c *orgsv1.OidcConfig) {
	if c.GetIssuer() == "" {
		return
	}
	if !secureURL(c.GetIssuer()) {
		v.Add("organization.oidc.issuer", "must be an https URL (http only for localhost)")
	}
	if c.GetAudience() == "" || len(c.GetAudience()) > 255 {
		v.Add("organization.oidc.audience", "is required with an issuer (at most 255 characters)")
	}
	if c.GetJwksUri() != "" && !secureURL(c.GetJwksUri()) {
		v.Add("organization.oidc.jwks_uri", "must be an https URL (http only for localhost)")
	}
	if len(c.GetGroupsClaim()) > 64 {
		v.Add("organization.oidc.groups_claim", "must be at most 64 characters")
	}
}

func secureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Hostname()
	return u.Scheme == "https" || u.Scheme == "http" && (host == "localhost" || host == "127.0.0.1" || host == "::1")
}

// --- AccessService ----------------------------------------------------------

func validateCreateServiceAccount(r *orgsv1.CreateServiceAccountRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), names.OrgPattern)
	v.Check("service_account.display_name", aip.CheckPrintable(r.GetServiceAccount().GetDisplayName(), false))
	v.Check("service_account.description", aip.CheckPrintable(r.GetServiceAccount().GetDescription(), false))
	return v.Err()
}

func validateCreateToken(r *orgsv1.CreateTokenRequest) error {
	var v errs.Violations
	checkTokenParent(&v, "parent", r.GetParent())
	v.Check("token.display_name", aip.CheckPrintable(r.GetToken().GetDisplayName(), false))
	checkFuture(&v, "token.expire_time", r.GetToken().GetExpireTime())
	return v.Err()
}

func validateListTokens(r *orgsv1.ListTokensRequest) error {
	var v errs.Violations
	checkTokenParent(&v, "parent", r.GetParent())
	return v.Err()
}

func validateDeleteToken(r *orgsv1.DeleteTokenRequest) error {
	var v errs.Violations
	if tok, err := names.ParseToken(r.GetName()); err != nil {
		v.Add("name", "must be {parent}/tokens/{id}")
	} else {
		checkTokenParent(&v, "name", tok.Parent)
	}
	return v.Err()
}

func validateCreateBinding(r *orgsv1.CreateBindingRequest) error {
	var v errs.Violations
	checkBindable(&v, "parent", r.GetParent())
	checkPrincipal(&v, "binding.principal", r.GetBinding().GetPrincipal(), names.OrgID(r.GetParent()))
	return v.Err()
}

func validateListBindings(r *orgsv1.ListBindingsRequest) error {
	var v errs.Violations
	checkBindable(&v, "parent", r.GetParent())
	return v.Err()
}

func validateDeleteBinding(r *orgsv1.DeleteBindingRequest) error {
	var v errs.Violations
	if b, err := names.ParseBinding(r.GetName()); err != nil {
		v.Add("name", "must be {resource}/bindings/{id}")
	} else {
		checkBindable(&v, "name", b.Resource)
	}
	return v.Err()
}

func validatePurgeBindings(r *orgsv1.PurgeBindingsRequest) error {
	if _, err := names.RegistryPattern.Parse(r.GetResource()); err == nil {
		return nil
	}
	var v errs.Violations
	checkName(&v, "resource", r.GetResource(), names.ServerPattern)
	return v.Err()
}

func validateCreateRole(r *orgsv1.CreateRoleRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), names.OrgPattern)
	v.Check("role.title", aip.CheckPrintable(r.GetRole().GetTitle(), false))
	v.Check("role.description", aip.CheckPrintable(r.GetRole().GetDescription(), false))
	for i, p := range r.GetRole().GetPermissions() {
		if !access.Known(p) || access.SelfPermissions[p] || auth.ServiceOnlyPermissions[p] || p == "orgs.create" || p == "secrets.resolve" {
			v.Add(fmt.Sprintf("role.permissions[%d]", i), "%q is not a permission a custom role can hold (see docs/permissions.md)", p)
		}
	}
	return v.Err()
}

func validateCreateTeam(r *orgsv1.CreateTeamRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), names.OrgPattern)
	v.Check("team.display_name", aip.CheckPrintable(r.GetTeam().GetDisplayName(), false))
	return v.Err()
}

func validateAddTeamMember(r *orgsv1.AddTeamMemberRequest) error {
	return checkTeamMember(r.GetTeam(), r.GetMember())
}

func validateRemoveTeamMember(r *orgsv1.RemoveTeamMemberRequest) error {
	return checkTeamMember(r.GetTeam(), r.GetMember())
}

func checkTeamMember(team, member string) error {
	var v errs.Violations
	checkName(&v, "team", team, names.TeamPattern)
	if !validMember(member) {
		v.Add("member", "must be users/{id} or orgs/{org}/serviceAccounts/{sa}")
	}
	return v.Err()
}

func validateDeleteMember(r *orgsv1.DeleteMemberRequest) error {
	ids, err := names.MemberPattern.ParseLoose(r.GetName())
	if err != nil || aip.ValidateID(ids[0]) != nil || !validUserID(ids[1]) {
		return errs.Field("name", "must be orgs/{org}/members/{user}")
	}
	return nil
}

func validateCreateInvitation(r *orgsv1.CreateInvitationRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), names.OrgPattern)
	inv := r.GetInvitation()
	if a, err := mail.ParseAddress(inv.GetEmail()); err != nil || a.Address != inv.GetEmail() || strings.ContainsAny(a.Address, "/ ") {
		v.Add("invitation.email", "must be a plain email address")
	}
	checkFuture(&v, "invitation.expire_time", inv.GetExpireTime())
	return v.Err()
}

func validateRevokeInvitation(r *orgsv1.RevokeInvitationRequest) error {
	if ids, err := names.InvitationPattern.ParseLoose(r.GetName()); err != nil || aip.ValidateID(ids[0]) != nil {
		return errs.Field("name", "must be orgs/{org}/invitations/{id}")
	}
	return nil
}

func validateAcceptInvitation(r *orgsv1.AcceptInvitationRequest) error {
	if tok := r.GetToken(); !strings.HasPrefix(tok, invitationPrefix) || len(tok) > 200 {
		return errs.Field("token", "must be an invitation token (pyli_…)")
	}
	return nil
}

func validateCheck(r *orgsv1.CheckRequest) error {
	var v errs.Violations
	checkPermission(&v, "permission", r.GetPermission())
	return v.Err()
}

func validateListAllowed(r *orgsv1.ListAllowedRequest) error {
	var v errs.Violations
	checkPermission(&v, "permission", r.GetPermission())
	return v.Err()
}

func validateBatchCheck(r *orgsv1.BatchCheckRequest) error {
	var v errs.Violations
	for i, c := range r.GetChecks() {
		checkPermission(&v, fmt.Sprintf("checks[%d].permission", i), c.GetPermission())
	}
	return v.Err()
}

// checkName checks that name has the form of p, with valid ids.
func checkName(v *errs.Violations, field, name string, p aip.Pattern) {
	_, err := p.Parse(name)
	v.Check(field, err)
}

// checkBindable checks a resource that can hold bindings.
func checkBindable(v *errs.Violations, field, name string) {
	for _, p := range bindingOn {
		if _, err := p.Parse(name); err == nil {
			return
		}
	}
	if ids, err := names.ToolPattern.ParseLoose(name); err == nil && aip.ValidateSegmentID(ids[0]) == nil && aip.ValidateSegmentID(ids[1]) == nil && validToolName(ids[2]) {
		return
	}
	v.Add(field, "must be orgs/{org}, orgs/{org}/registries/{r}, orgs/{org}/servers/{s} or orgs/{org}/servers/{s}/tools/{t}")
}

// validToolName accepts MCP tool names: 1 to 128 of letters, digits, _ - .
func validToolName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkTokenParent accepts a service account or a user (users/me included).
func checkTokenParent(v *errs.Violations, field, name string) {
	if ids, err := names.UserPattern.ParseLoose(name); err == nil && validUserID(ids[0]) {
		return
	}
	checkName(v, field, name, names.ServiceAccountPattern)
}

func validUserID(id string) bool { return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/ ") }

// checkPrincipal accepts users/{id}, or a team or service account of org.
func checkPrincipal(v *errs.Violations, field, principal, org string) {
	if ids, err := names.UserPattern.ParseLoose(principal); err == nil && validUserID(ids[0]) && ids[0] != "me" {
		return
	}
	for _, p := range []aip.Pattern{names.TeamPattern, names.ServiceAccountPattern} {
		if ids, err := p.Parse(principal); err == nil {
			if ids[0] != org {
				v.Add(field, "must belong to orgs/%s", org)
			}
			return
		}
	}
	v.Add(field, "must be users/{id}, orgs/{org}/teams/{team} or orgs/{org}/serviceAccounts/{sa}")
}

// validMember accepts users/{id} (not users/me) or a service account.
func validMember(member string) bool {
	if ids, err := names.UserPattern.ParseLoose(member); err == nil && validUserID(ids[0]) && ids[0] != "me" {
		return true
	}
	_, err := names.ServiceAccountPattern.Parse(member)
	return err == nil
}

// checkPermission accepts a known permission (a service-only one
// included: the engine answers for it).
func checkPermission(v *errs.Violations, field, p string) {
	if !access.Known(p) && !auth.ServiceOnlyPermissions[p] {
		v.Add(field, "%q is not a known permission", p)
	}
}

// checkFuture refuses an expire time that is set and not in the future.
func checkFuture(v *errs.Violations, field string, t *timestamppb.Timestamp) {
	if t != nil && (!t.IsValid() || t.AsTime().Before(timeNow())) {
		v.Add(field, "must be in the future")
	}
}
