package orgs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/access"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// AccessService implements pylee.orgs.v1.AccessService.
type AccessService struct {
	orgsv1.UnimplementedAccessServiceServer
	store  store.Store
	engine *Engine
	tokens *aip.PageTokens
	// resources checks that a registry or server named in a binding
	// exists; nil refuses such bindings (no registry service to ask).
	resources ResourceChecker
}

// ResourceChecker reports whether a resource that another service owns (a
// registry or a server) exists: nil if it does, an error wrapping
// errs.ErrNotFound if it does not, and any other error when it cannot tell
// (the caller then refuses and changes nothing).
type ResourceChecker func(ctx context.Context, name string) error

// CheckResourcesWith sets how bindings on registries, servers and tools
// check that their resource exists.
func (s *AccessService) CheckResourcesWith(fn ResourceChecker) *AccessService {
	s.resources = fn
	return s
}

// NewAccessService returns the access service; engine is the one the
// process authorizes with, so changes here drop its cache at once.
func NewAccessService(st store.Store, engine *Engine, pageTokens *aip.PageTokens) *AccessService {
	return &AccessService{store: st, engine: engine, tokens: pageTokens}
}

// Register registers the service and its validators on srv.
func (s *AccessService) Register(srv *server.Server) {
	srv.RegisterService(&orgsv1.AccessService_ServiceDesc, s, AccessValidators())
}

// changed runs after every committed access change: decisions cached by
// this process are dropped at once.
func (s *AccessService) changed() { s.engine.Invalidate() }

func caller(ctx context.Context) auth.Principal {
	p, _ := auth.FromContext(ctx)
	return p
}

// self resolves `users/me` to the caller.
func self(ctx context.Context, name string) string {
	if name == "users/me" {
		return caller(ctx).Name
	}
	if strings.HasPrefix(name, "users/me/") {
		return caller(ctx).Name + strings.TrimPrefix(name, "users/me")
	}
	return name
}

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// GetCurrentUser implements AccessService.
func (s *AccessService) GetCurrentUser(ctx context.Context, _ *orgsv1.GetCurrentUserRequest) (*orgsv1.User, error) {
	p := caller(ctx)
	return &orgsv1.User{Name: p.Name, DisplayName: p.DisplayName, Kind: string(p.Kind)}, nil
}

func saProto(sa store.ServiceAccount) *orgsv1.ServiceAccount {
	return &orgsv1.ServiceAccount{Name: sa.Name, DisplayName: sa.DisplayName, Description: sa.Description, CreateTime: timestamppb.New(sa.CreateTime)}
}

// CreateServiceAccount implements AccessService.
func (s *AccessService) CreateServiceAccount(ctx context.Context, req *orgsv1.CreateServiceAccountRequest) (*orgsv1.ServiceAccount, error) {
	org := names.OrgID(req.GetParent())
	name := names.ServiceAccount{Org: org, ServiceAccount: req.GetServiceAccountId()}.String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_CreateServiceAccount_FullMethodName), name)
	sa, err := s.store.CreateServiceAccount(ctx, store.ServiceAccount{Name: name, Organization: org,
		DisplayName: req.GetServiceAccount().GetDisplayName(), Description: req.GetServiceAccount().GetDescription()}, ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return saProto(sa), nil
}

// GetServiceAccount implements AccessService.
func (s *AccessService) GetServiceAccount(ctx context.Context, req *orgsv1.GetServiceAccountRequest) (*orgsv1.ServiceAccount, error) {
	sa, err := s.store.GetServiceAccount(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return saProto(sa), nil
}

// ListServiceAccounts implements AccessService.
func (s *AccessService) ListServiceAccounts(ctx context.Context, req *orgsv1.ListServiceAccountsRequest) (*orgsv1.ListServiceAccountsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListServiceAccounts", req.GetParent()))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListServiceAccounts(ctx, names.OrgID(req.GetParent()), page.After, page.Limit())
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListServiceAccountsResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(sa store.ServiceAccount) string { return sa.Name })
	for _, r := range rows {
		resp.ServiceAccounts = append(resp.ServiceAccounts, saProto(r))
	}
	return resp, nil
}

// DeleteServiceAccount implements AccessService.
func (s *AccessService) DeleteServiceAccount(ctx context.Context, req *orgsv1.DeleteServiceAccountRequest) (*emptypb.Empty, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetName()), server.ActionFor(orgsv1.AccessService_DeleteServiceAccount_FullMethodName), req.GetName())
	if err := s.store.DeleteServiceAccount(ctx, req.GetName(), ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

func tokenID(t store.APIToken) string { return t.ID }

func tokenProto(t store.APIToken) *orgsv1.Token {
	return &orgsv1.Token{Name: names.Token{Parent: t.Principal, Token: t.ID}.String(), DisplayName: t.DisplayName, CreateTime: timestamppb.New(t.CreateTime),
		ExpireTime: ts(t.ExpireTime), LastUseTime: ts(t.LastUseTime)}
}

// auditOrg is the organization whose log records a change to principal.
func auditOrg(principal string) string {
	if org := names.OrgID(principal); org != "" {
		return org
	}
	return "-"
}

// CreateToken implements AccessService.
func (s *AccessService) CreateToken(ctx context.Context, req *orgsv1.CreateTokenRequest) (*orgsv1.Token, error) {
	parent := self(ctx, req.GetParent())
	if strings.HasPrefix(parent, "orgs/") {
		if _, err := s.store.GetServiceAccount(ctx, parent); err != nil {
			return nil, err
		}
	}
	secret, hash, err := auth.NewAPIToken()
	if err != nil {
		return nil, err
	}
	t := store.APIToken{ID: uuid.NewString()[:8], Hash: hash, Principal: parent, DisplayName: req.GetToken().GetDisplayName(),
		CreateTime: time.Now().UTC().Truncate(time.Microsecond)}
	if et := req.GetToken().GetExpireTime(); et != nil {
		e := et.AsTime().UTC()
		t.ExpireTime = &e
	}
	ev := outbox.NewEvent(ctx, auditOrg(parent), server.ActionFor(orgsv1.AccessService_CreateToken_FullMethodName), names.Token{Parent: parent, Token: t.ID}.String())
	if err := s.store.CreateAPIToken(ctx, t, ev); err != nil {
		return nil, err
	}
	s.changed()
	out := tokenProto(t)
	out.Secret = secret.Reveal() // shown once
	return out, nil
}

// ListTokens implements AccessService.
func (s *AccessService) ListTokens(ctx context.Context, req *orgsv1.ListTokensRequest) (*orgsv1.ListTokensResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListTokens", self(ctx, req.GetParent())))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListAPITokens(ctx, self(ctx, req.GetParent()))
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListTokensResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, aip.Resume(page, rows, tokenID), tokenID)
	for _, t := range rows {
		resp.Tokens = append(resp.Tokens, tokenProto(t))
	}
	return resp, nil
}

// DeleteToken implements AccessService.
func (s *AccessService) DeleteToken(ctx context.Context, req *orgsv1.DeleteTokenRequest) (*emptypb.Empty, error) {
	name := self(ctx, req.GetName())
	tok, err := names.ParseToken(name)
	if err != nil {
		return nil, errs.Field("name", "%v", err)
	}
	principal, id := tok.Parent, tok.Token
	ev := outbox.NewEvent(ctx, auditOrg(principal), server.ActionFor(orgsv1.AccessService_DeleteToken_FullMethodName), name)
	if err := s.store.DeleteAPIToken(ctx, principal, id, ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

func bindingProto(b store.Binding) *orgsv1.Binding {
	return &orgsv1.Binding{Name: b.Name, Role: b.Role, Principal: b.Principal, CreateTime: timestamppb.New(b.CreateTime), Creator: b.Creator}
}

// CreateBinding implements AccessService. Nobody grants what they do not
// hold: the caller must hold every permission of the role on the resource.
func (s *AccessService) CreateBinding(ctx context.Context, req *orgsv1.CreateBindingRequest) (*orgsv1.Binding, error) {
	parent, b := req.GetParent(), req.GetBinding()
	org := names.OrgID(parent)
	role, err := s.role(ctx, org, b.GetRole())
	if err != nil {
		return nil, err
	}
	if err := s.principalExists(ctx, org, b.GetPrincipal()); err != nil {
		return nil, err
	}
	p := caller(ctx)
	if err := s.holdsAll(ctx, server.ActionFor(orgsv1.AccessService_CreateBinding_FullMethodName), role.Sorted(), parent, "grant "+role.Name); err != nil {
		return nil, err
	}
	if err := s.resourceExists(ctx, parent); err != nil {
		return nil, err
	}
	name := names.Binding{Resource: parent, Binding: uuid.NewString()[:8]}.String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_CreateBinding_FullMethodName), name)
	ev.Metadata = map[string]string{"role": role.Name, "principal": b.GetPrincipal()}
	created, err := s.store.CreateBinding(ctx, store.Binding{Name: name, Resource: parent, Organization: org,
		Role: role.Name, Principal: b.GetPrincipal(), Creator: p.Name}, ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return bindingProto(created), nil
}

// resourceExists checks the resource a binding is created on. The
// organization exists (the engine refuses calls under one that does not);
// a registry or server must exist in the registry service, and a tool's
// server must: a tool may be granted before a version declares it, since
// tools arrive with versions.
func (s *AccessService) resourceExists(ctx context.Context, resource string) error {
	target := resource
	if t, err := names.ParseTool(resource); err == nil {
		target = t.ServerName().String()
	}
	if target == names.OrgOf(resource) {
		return nil
	}
	if s.resources == nil {
		return fmt.Errorf("cannot check that %s exists: this orgs service has no registry service (--registry-addr): %w", target, errs.ErrUnavailable)
	}
	err := s.resources(ctx, target)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errs.ErrNotFound):
		return fmt.Errorf("parent: %s does not exist: %w", target, errs.ErrNotFound)
	default:
		return fmt.Errorf("cannot check that %s exists: %v: %w", target, err, errs.ErrUnavailable)
	}
}

// PurgeBindings implements AccessService: the registry service deleted (or
// is about to delete, or create anew) a server or registry.
func (s *AccessService) PurgeBindings(ctx context.Context, req *orgsv1.PurgeBindingsRequest) (*orgsv1.PurgeBindingsResponse, error) {
	res := req.GetResource()
	n, err := s.store.PurgeBindings(ctx, res, outbox.NewEvent(ctx, names.OrgID(res), server.ActionFor(orgsv1.AccessService_PurgeBindings_FullMethodName), res))
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.changed()
	}
	return &orgsv1.PurgeBindingsResponse{Deleted: int64(n)}, nil
}

// holdsAll refuses what would escalate: the caller must itself hold every
// one of perms on resource to do what (grant a role, create a custom role,
// invite with a role). Service identities hold everything.
func (s *AccessService) holdsAll(ctx context.Context, action string, perms []string, resource, what string) error {
	p := caller(ctx)
	if p.Kind == auth.KindService {
		return nil
	}
	for _, perm := range perms {
		d, _, err := s.engine.Decide(ctx, p.Name, p.Groups, perm, resource)
		if err != nil {
			return err
		}
		if !d.Allowed {
			refused := fmt.Errorf("%s cannot %s on %q: it does not hold %s there: %w", p.Name, what, resource, perm, errs.ErrPermissionDenied)
			// A refusal decided here is audited like the interceptor's.
			ev := outbox.NewEvent(ctx, names.OrgID(resource), action, resource)
			ev.Outcome = auditlog.OutcomeDenied
			ev.Metadata = map[string]string{"reason": "escalation", "permission": perm}
			if err := s.store.RecordEvent(ctx, ev); err != nil {
				return err
			}
			return refused
		}
	}
	return nil
}

// role resolves a role name valid in org.
func (s *AccessService) role(ctx context.Context, org, name string) (access.Role, error) {
	if r, ok := access.BuiltinRole(name); ok && name != access.RoleInstallationOwner.Name {
		return r, nil
	}
	if strings.HasPrefix(name, "orgs/"+org+"/roles/") {
		cr, err := s.store.GetRole(ctx, name)
		if err != nil {
			return access.Role{}, errs.Field("binding.role", "role %q does not exist", name)
		}
		perms := map[string]bool{}
		for _, p := range cr.Permissions {
			perms[p] = true
		}
		return access.Role{Name: cr.Name, Permissions: perms}, nil
	}
	return access.Role{}, errs.Field("binding.role", "must be roles/{owner|admin|developer|user|auditor} or orgs/%s/roles/{id}", org)
}

// principalExists checks that a team or service account being granted a
// role exists in org; users may be granted before they first sign in.
func (s *AccessService) principalExists(ctx context.Context, org, principal string) error {
	switch {
	case strings.HasPrefix(principal, "orgs/"+org+"/serviceAccounts/"):
		if _, err := s.store.GetServiceAccount(ctx, principal); err != nil {
			return errs.Field("binding.principal", "service account %q does not exist", principal)
		}
	case strings.HasPrefix(principal, "orgs/"+org+"/teams/"):
		if _, err := s.store.GetTeam(ctx, principal); err != nil {
			return errs.Field("binding.principal", "team %q does not exist", principal)
		}
	}
	return nil
}

// ListBindings implements AccessService.
func (s *AccessService) ListBindings(ctx context.Context, req *orgsv1.ListBindingsRequest) (*orgsv1.ListBindingsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListBindings", req.GetParent()))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListBindings(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListBindingsResponse{}
	name := func(b store.Binding) string { return b.Name }
	rows, resp.NextPageToken = aip.Finish(ctx, page, aip.Resume(page, rows, name), name)
	for _, b := range rows {
		resp.Bindings = append(resp.Bindings, bindingProto(b))
	}
	return resp, nil
}

// DeleteBinding implements AccessService.
func (s *AccessService) DeleteBinding(ctx context.Context, req *orgsv1.DeleteBindingRequest) (*emptypb.Empty, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetName()), server.ActionFor(orgsv1.AccessService_DeleteBinding_FullMethodName), req.GetName())
	if err := s.store.DeleteBinding(ctx, req.GetName(), ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

func roleProto(r access.Role, builtin bool, title, description string) *orgsv1.Role {
	return &orgsv1.Role{Name: r.Name, Title: title, Description: description, Permissions: r.Sorted(), Builtin: builtin}
}

// ListRoles implements AccessService.
func (s *AccessService) ListRoles(ctx context.Context, req *orgsv1.ListRolesRequest) (*orgsv1.ListRolesResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListRoles", req.GetParent()))
	if err != nil {
		return nil, err
	}
	var roles []*orgsv1.Role
	for _, r := range access.BuiltinRoles {
		roles = append(roles, roleProto(r, true, r.Title, r.Description))
	}
	custom, err := s.store.ListRoles(ctx, names.OrgID(req.GetParent()))
	if err != nil {
		return nil, err
	}
	for _, cr := range custom {
		sort.Strings(cr.Permissions)
		roles = append(roles, &orgsv1.Role{Name: cr.Name, Title: cr.Title, Description: cr.Description, Permissions: cr.Permissions})
	}
	resp := &orgsv1.ListRolesResponse{}
	name := func(r *orgsv1.Role) string { return r.GetName() }
	resp.Roles, resp.NextPageToken = aip.Finish(ctx, page, aip.Resume(page, roles, name), name)
	return resp, nil
}

// CreateRole implements AccessService.
func (s *AccessService) CreateRole(ctx context.Context, req *orgsv1.CreateRoleRequest) (*orgsv1.Role, error) {
	parent := req.GetParent()
	perms := dedupe(req.GetRole().GetPermissions())
	if err := s.holdsAll(ctx, server.ActionFor(orgsv1.AccessService_CreateRole_FullMethodName), perms, parent, "create a role with these permissions"); err != nil {
		return nil, err
	}
	org := names.OrgID(parent)
	name := names.Role{Org: org, Role: req.GetRoleId()}.String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_CreateRole_FullMethodName), name)
	ev.Metadata = map[string]string{"permissions": strings.Join(perms, ",")}
	cr, err := s.store.CreateRole(ctx, store.CustomRole{Name: name, Organization: org,
		Title: req.GetRole().GetTitle(), Description: req.GetRole().GetDescription(), Permissions: perms}, ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return &orgsv1.Role{Name: cr.Name, Title: cr.Title, Description: cr.Description, Permissions: cr.Permissions}, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range in {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// DeleteRole implements AccessService.
func (s *AccessService) DeleteRole(ctx context.Context, req *orgsv1.DeleteRoleRequest) (*emptypb.Empty, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetName()), server.ActionFor(orgsv1.AccessService_DeleteRole_FullMethodName), req.GetName())
	if err := s.store.DeleteRole(ctx, req.GetName(), ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

func teamProto(t store.Team) *orgsv1.Team {
	return &orgsv1.Team{Name: t.Name, DisplayName: t.DisplayName, Members: t.Members, CreateTime: timestamppb.New(t.CreateTime)}
}

// CreateTeam implements AccessService.
func (s *AccessService) CreateTeam(ctx context.Context, req *orgsv1.CreateTeamRequest) (*orgsv1.Team, error) {
	org := names.OrgID(req.GetParent())
	name := names.Team{Org: org, Team: req.GetTeamId()}.String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_CreateTeam_FullMethodName), name)
	t, err := s.store.CreateTeam(ctx, store.Team{Name: name, Organization: org, DisplayName: req.GetTeam().GetDisplayName()}, ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return teamProto(t), nil
}

// ListTeams implements AccessService.
func (s *AccessService) ListTeams(ctx context.Context, req *orgsv1.ListTeamsRequest) (*orgsv1.ListTeamsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListTeams", req.GetParent()))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListTeams(ctx, names.OrgID(req.GetParent()))
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListTeamsResponse{}
	name := func(t store.Team) string { return t.Name }
	rows, resp.NextPageToken = aip.Finish(ctx, page, aip.Resume(page, rows, name), name)
	for _, t := range rows {
		resp.Teams = append(resp.Teams, teamProto(t))
	}
	return resp, nil
}

// DeleteTeam implements AccessService.
func (s *AccessService) DeleteTeam(ctx context.Context, req *orgsv1.DeleteTeamRequest) (*emptypb.Empty, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetName()), server.ActionFor(orgsv1.AccessService_DeleteTeam_FullMethodName), req.GetName())
	if err := s.store.DeleteTeam(ctx, req.GetName(), ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

// AddTeamMember implements AccessService.
func (s *AccessService) AddTeamMember(ctx context.Context, req *orgsv1.AddTeamMemberRequest) (*orgsv1.Team, error) {
	org := names.OrgID(req.GetTeam())
	if strings.HasPrefix(req.GetMember(), "orgs/") {
		if !strings.HasPrefix(req.GetMember(), "orgs/"+org+"/serviceAccounts/") {
			return nil, errs.Field("member", "must be a user or a service account of %s", names.Org{Org: org})
		}
		if _, err := s.store.GetServiceAccount(ctx, req.GetMember()); err != nil {
			return nil, errs.Field("member", "service account %q does not exist", req.GetMember())
		}
	} else if member, err := s.store.HasBindingIn(ctx, []string{req.GetMember()}, org); err != nil {
		return nil, err
	} else if !member {
		// A user joins a team of an organization it is a member of: one
		// that holds a role there (granted, or by an accepted invitation).
		return nil, errs.Field("member", "%s is not a member of orgs/%s; grant it a role or invite it first", req.GetMember(), org)
	}
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_AddTeamMember_FullMethodName), req.GetTeam())
	ev.Metadata = map[string]string{"member": req.GetMember()}
	t, err := s.store.AddTeamMember(ctx, req.GetTeam(), req.GetMember(), ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return teamProto(t), nil
}

// RemoveTeamMember implements AccessService.
func (s *AccessService) RemoveTeamMember(ctx context.Context, req *orgsv1.RemoveTeamMemberRequest) (*orgsv1.Team, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetTeam()), server.ActionFor(orgsv1.AccessService_RemoveTeamMember_FullMethodName), req.GetTeam())
	ev.Metadata = map[string]string{"member": req.GetMember()}
	t, err := s.store.RemoveTeamMember(ctx, req.GetTeam(), req.GetMember(), ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return teamProto(t), nil
}

// check answers one question for principal (empty: the caller); only
// services may ask about others.
func (s *AccessService) check(ctx context.Context, principal string, c *orgsv1.CheckRequest) (*orgsv1.CheckResponse, error) {
	p := caller(ctx)
	if principal == "" || principal == p.Name {
		principal = p.Name
	} else if p.Kind != auth.KindService {
		return nil, fmt.Errorf("only services may check another principal's access: %w", errs.ErrPermissionDenied)
	}
	if principal == p.Name && p.Kind == auth.KindService {
		return &orgsv1.CheckResponse{Allowed: true, Member: true}, nil
	}
	if principal == p.Name && p.OutsideOrg(c.GetResource()) {
		return &orgsv1.CheckResponse{}, nil
	}
	var groups []string
	switch {
	case principal == p.Name:
		groups = p.Groups
	case p.Kind == auth.KindService:
		// A service asks for a principal whose credential it verified.
		groups = c.GetGroups()
	}
	d, member, err := s.engine.Decide(ctx, principal, groups, c.GetPermission(), c.GetResource())
	if err != nil {
		return nil, err
	}
	if d.Allowed {
		// The same answer Authorize gives: nothing under an organization
		// that does not exist (a process asking remotely must not allow
		// what this one would refuse).
		switch err := s.engine.orgExists(ctx, c.GetPermission(), c.GetResource()); {
		case errors.Is(err, errs.ErrNotFound):
			return &orgsv1.CheckResponse{}, nil
		case err != nil:
			return nil, err
		}
	}
	return &orgsv1.CheckResponse{Allowed: d.Allowed, Binding: d.Binding, Member: member || d.Allowed}, nil
}

// Check implements AccessService.
func (s *AccessService) Check(ctx context.Context, req *orgsv1.CheckRequest) (*orgsv1.CheckResponse, error) {
	return s.check(ctx, req.GetPrincipal(), req)
}

// BatchCheck implements AccessService.
func (s *AccessService) BatchCheck(ctx context.Context, req *orgsv1.BatchCheckRequest) (*orgsv1.BatchCheckResponse, error) {
	resp := &orgsv1.BatchCheckResponse{}
	for _, c := range req.GetChecks() {
		r, err := s.check(ctx, req.GetPrincipal(), c)
		if err != nil {
			return nil, err
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
