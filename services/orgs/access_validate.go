package orgs

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/access"
)

var (
	saName         = aip.MustPattern("orgs/{org}/serviceAccounts/{service_account}")
	teamName       = aip.MustPattern("orgs/{org}/teams/{team}")
	roleName       = aip.MustPattern("orgs/{org}/roles/{role}")
	userName       = aip.MustPattern("users/{user}")
	bindingOn      = []aip.Pattern{OrgName, registryName, serverName}
	toolPattern    = aip.MustPattern("orgs/{org}/servers/{server}/tools/{tool}")
	registryName   = aip.MustPattern("orgs/{org}/registries/{registry}")
	serverName     = aip.MustPattern("orgs/{org}/servers/{server}")
	memberName     = aip.MustPattern("orgs/{org}/members/{user}")
	invitationName = aip.MustPattern("orgs/{org}/invitations/{invitation}")
)

// checkBindable checks a resource that can hold bindings.
func checkBindable(v *errs.Violations, field, name string) {
	for _, p := range bindingOn {
		if _, err := p.Parse(name); err == nil {
			return
		}
	}
	if ids, err := toolPattern.ParseLoose(name); err == nil && aip.ValidateSegmentID(ids[0]) == nil && aip.ValidateSegmentID(ids[1]) == nil && validToolName(ids[2]) {
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

func checkPattern(v *errs.Violations, field, name string, p aip.Pattern) {
	if name == "" {
		v.Add(field, "is required")
	} else if _, err := p.Parse(name); err != nil {
		v.Check(field, err)
	}
}

// checkTokenParent accepts a service account or a user (users/me included).
func checkTokenParent(v *errs.Violations, field, name string) {
	if ids, err := userName.ParseLoose(name); err == nil && validUserID(ids[0]) {
		return
	}
	checkPattern(v, field, name, saName)
}

func validUserID(id string) bool { return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/ ") }

// checkPrincipal accepts users/{id}, or a team or service account of org.
func checkPrincipal(v *errs.Violations, field, principal, org string) {
	if ids, err := userName.ParseLoose(principal); err == nil && validUserID(ids[0]) && ids[0] != "me" {
		return
	}
	for _, p := range []aip.Pattern{teamName, saName} {
		if ids, err := p.Parse(principal); err == nil {
			if ids[0] != org {
				v.Add(field, "must belong to orgs/%s", org)
			}
			return
		}
	}
	v.Add(field, "must be users/{id}, orgs/{org}/teams/{team} or orgs/{org}/serviceAccounts/{sa}")
}

// AccessValidators returns the request validator of every AccessService RPC.
func AccessValidators() map[string]server.Validator {
	one := func(fn func(v *errs.Violations, m proto.Message)) server.Validator {
		return func(m proto.Message) error {
			var v errs.Violations
			fn(&v, m)
			return v.Err()
		}
	}
	return map[string]server.Validator{
		orgsv1.AccessService_GetCurrentUser_FullMethodName: one(func(*errs.Violations, proto.Message) {}),
		orgsv1.AccessService_CreateServiceAccount_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateServiceAccountRequest)
			checkPattern(v, "parent", r.GetParent(), OrgName)
			v.Check("service_account_id", aip.ValidateSegmentID(r.GetServiceAccountId()))
			v.Check("service_account.display_name", aip.CheckText(r.GetServiceAccount().GetDisplayName(), maxDisplayName, false))
			v.Check("service_account.description", aip.CheckText(r.GetServiceAccount().GetDescription(), maxDescription, false))
		}),
		orgsv1.AccessService_GetServiceAccount_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "name", m.(*orgsv1.GetServiceAccountRequest).GetName(), saName)
		}),
		orgsv1.AccessService_ListServiceAccounts_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.ListServiceAccountsRequest)
			checkPattern(v, "parent", r.GetParent(), OrgName)
			if _, err := aip.PageSize(r.GetPageSize(), defaultPageSize, maxPageSize); err != nil {
				v.Check("page_size", err)
			}
		}),
		orgsv1.AccessService_DeleteServiceAccount_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "name", m.(*orgsv1.DeleteServiceAccountRequest).GetName(), saName)
		}),
		orgsv1.AccessService_CreateToken_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateTokenRequest)
			checkTokenParent(v, "parent", r.GetParent())
			v.Check("token.display_name", aip.CheckText(r.GetToken().GetDisplayName(), maxDisplayName, false))
			if et := r.GetToken().GetExpireTime(); et != nil && (!et.IsValid() || et.AsTime().Before(timeNow())) {
				v.Add("token.expire_time", "must be in the future")
			}
		}),
		orgsv1.AccessService_ListTokens_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkTokenParent(v, "parent", m.(*orgsv1.ListTokensRequest).GetParent())
		}),
		orgsv1.AccessService_DeleteToken_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			name := m.(*orgsv1.DeleteTokenRequest).GetName()
			i := strings.LastIndex(name, "/tokens/")
			if i <= 0 || name[i+len("/tokens/"):] == "" || strings.Contains(name[i+len("/tokens/"):], "/") {
				v.Add("name", "must be {parent}/tokens/{id}")
				return
			}
			checkTokenParent(v, "name", name[:i])
		}),
		orgsv1.AccessService_CreateBinding_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateBindingRequest)
			checkBindable(v, "parent", r.GetParent())
			if r.GetBinding() == nil {
				v.Add("binding", "is required")
				return
			}
			if r.GetBinding().GetRole() == "" {
				v.Add("binding.role", "is required")
			}
			checkPrincipal(v, "binding.principal", r.GetBinding().GetPrincipal(), access.OrgOf(r.GetParent()))
		}),
		orgsv1.AccessService_ListBindings_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkBindable(v, "parent", m.(*orgsv1.ListBindingsRequest).GetParent())
		}),
		orgsv1.AccessService_DeleteBinding_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			name := m.(*orgsv1.DeleteBindingRequest).GetName()
			i := strings.LastIndex(name, "/bindings/")
			if i <= 0 || name[i+len("/bindings/"):] == "" || strings.Contains(name[i+len("/bindings/"):], "/") {
				v.Add("name", "must be {resource}/bindings/{id}")
				return
			}
			checkBindable(v, "name", name[:i])
		}),
		orgsv1.AccessService_PurgeBindings_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			res := m.(*orgsv1.PurgeBindingsRequest).GetResource()
			if _, err := registryName.Parse(res); err == nil {
				return
			}
			checkPattern(v, "resource", res, serverName)
		}),
		orgsv1.AccessService_ListRoles_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "parent", m.(*orgsv1.ListRolesRequest).GetParent(), OrgName)
		}),
		orgsv1.AccessService_CreateRole_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateRoleRequest)
			checkPattern(v, "parent", r.GetParent(), OrgName)
			v.Check("role_id", aip.ValidateSegmentID(r.GetRoleId()))
			v.Check("role.title", aip.CheckText(r.GetRole().GetTitle(), maxDisplayName, false))
			v.Check("role.description", aip.CheckText(r.GetRole().GetDescription(), maxDescription, false))
			if len(r.GetRole().GetPermissions()) == 0 {
				v.Add("role.permissions", "is required")
			}
			for i, p := range r.GetRole().GetPermissions() {
				if !access.Known(p) || access.SelfPermissions[p] || auth.ServiceOnlyPermissions[p] || p == "orgs.create" || p == "secrets.resolve" {
					v.Add(fmt.Sprintf("role.permissions[%d]", i), "%q is not a permission a custom role can hold (see docs/permissions.md)", p)
				}
			}
		}),
		orgsv1.AccessService_DeleteRole_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "name", m.(*orgsv1.DeleteRoleRequest).GetName(), roleName)
		}),
		orgsv1.AccessService_CreateTeam_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateTeamRequest)
			checkPattern(v, "parent", r.GetParent(), OrgName)
			v.Check("team_id", aip.ValidateSegmentID(r.GetTeamId()))
			v.Check("team.display_name", aip.CheckText(r.GetTeam().GetDisplayName(), maxDisplayName, false))
		}),
		orgsv1.AccessService_ListTeams_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "parent", m.(*orgsv1.ListTeamsRequest).GetParent(), OrgName)
		}),
		orgsv1.AccessService_DeleteTeam_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "name", m.(*orgsv1.DeleteTeamRequest).GetName(), teamName)
		}),
		orgsv1.AccessService_AddTeamMember_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.AddTeamMemberRequest)
			checkPattern(v, "team", r.GetTeam(), teamName)
			checkMember(v, r.GetMember())
		}),
		orgsv1.AccessService_RemoveTeamMember_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.RemoveTeamMemberRequest)
			checkPattern(v, "team", r.GetTeam(), teamName)
			checkMember(v, r.GetMember())
		}),
		orgsv1.AccessService_ListMembers_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "parent", m.(*orgsv1.ListMembersRequest).GetParent(), OrgName)
		}),
		orgsv1.AccessService_DeleteMember_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			name := m.(*orgsv1.DeleteMemberRequest).GetName()
			ids, err := memberName.ParseLoose(name)
			if err != nil || aip.ValidateID(ids[0]) != nil || !validUserID(ids[1]) {
				v.Add("name", "must be orgs/{org}/members/{user}")
			}
		}),
		orgsv1.AccessService_CreateInvitation_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.CreateInvitationRequest)
			checkPattern(v, "parent", r.GetParent(), OrgName)
			if r.GetInvitation() == nil {
				v.Add("invitation", "is required")
				return
			}
			if a, err := mail.ParseAddress(r.GetInvitation().GetEmail()); err != nil || a.Address != r.GetInvitation().GetEmail() || strings.ContainsAny(a.Address, "/ ") {
				v.Add("invitation.email", "must be a plain email address")
			}
			if r.GetInvitation().GetRole() == "" {
				v.Add("invitation.role", "is required")
			}
			if et := r.GetInvitation().GetExpireTime(); et != nil && (!et.IsValid() || et.AsTime().Before(timeNow())) {
				v.Add("invitation.expire_time", "must be in the future")
			}
		}),
		orgsv1.AccessService_ListInvitations_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkPattern(v, "parent", m.(*orgsv1.ListInvitationsRequest).GetParent(), OrgName)
		}),
		orgsv1.AccessService_RevokeInvitation_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			name := m.(*orgsv1.RevokeInvitationRequest).GetName()
			if ids, err := invitationName.ParseLoose(name); err != nil || aip.ValidateID(ids[0]) != nil {
				v.Add("name", "must be orgs/{org}/invitations/{id}")
			}
		}),
		orgsv1.AccessService_AcceptInvitation_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			if tok := m.(*orgsv1.AcceptInvitationRequest).GetToken(); !strings.HasPrefix(tok, invitationPrefix) || len(tok) > 200 {
				v.Add("token", "must be an invitation token (pyli_…)")
			}
		}),
		orgsv1.AccessService_ListAllowed_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.ListAllowedRequest)
			checkCheck(v, "", &orgsv1.CheckRequest{Permission: r.GetPermission()})
			if len(r.GetResources()) == 0 || len(r.GetResources()) > 1000 {
				v.Add("resources", "must hold 1 to 1000 resources")
			}
		}),
		orgsv1.AccessService_Check_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			checkCheck(v, "", m.(*orgsv1.CheckRequest))
		}),
		orgsv1.AccessService_BatchCheck_FullMethodName: one(func(v *errs.Violations, m proto.Message) {
			r := m.(*orgsv1.BatchCheckRequest)
			if len(r.GetChecks()) == 0 || len(r.GetChecks()) > 1000 {
				v.Add("checks", "must hold 1 to 1000 checks")
			}
			for i, c := range r.GetChecks() {
				checkCheck(v, fmt.Sprintf("checks[%d].", i), c)
			}
		}),
	}
}

func checkMember(v *errs.Violations, member string) {
	if ids, err := userName.ParseLoose(member); err == nil && validUserID(ids[0]) && ids[0] != "me" {
		return
	}
	if _, err := saName.Parse(member); err == nil {
		return
	}
	v.Add("member", "must be users/{id} or orgs/{org}/serviceAccounts/{sa}")
}

func checkCheck(v *errs.Violations, prefix string, c *orgsv1.CheckRequest) {
	if !access.Known(c.GetPermission()) && !auth.ServiceOnlyPermissions[c.GetPermission()] {
		v.Add(prefix+"permission", "%q is not a known permission", c.GetPermission())
	}
	if len(c.GetResource()) > 1024 {
		v.Add(prefix+"resource", "is too long")
	}
}

// timeNow is the clock validation compares expire times with.
var timeNow = time.Now
