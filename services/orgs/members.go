package orgs

import (
	"context"
	"crypto/sha256"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// InvitationTTL is how long an invitation stays valid unless set.
const InvitationTTL = 7 * 24 * time.Hour

// invitationPrefix starts invitation tokens, so they are told from API
// tokens at a glance.
const invitationPrefix = "pyli_"

// ListMembers implements AccessService.
func (s *AccessService) ListMembers(ctx context.Context, req *orgsv1.ListMembersRequest) (*orgsv1.ListMembersResponse, error) {
	bs, err := s.store.MemberBindings(ctx, names.OrgID(req.GetParent()))
	if err != nil {
		return nil, err
	}
	byPrincipal := map[string][]string{}
	var order []string
	for _, b := range bs {
		if _, ok := byPrincipal[b.Principal]; !ok {
			order = append(order, b.Principal)
		}
		byPrincipal[b.Principal] = append(byPrincipal[b.Principal], b.Role+" on "+b.Resource)
	}
	sort.Strings(order)
	resp := &orgsv1.ListMembersResponse{}
	for _, p := range order {
		resp.Members = append(resp.Members, &orgsv1.Member{Principal: p, Roles: byPrincipal[p]})
	}
	return resp, nil
}

// DeleteMember implements AccessService.
func (s *AccessService) DeleteMember(ctx context.Context, req *orgsv1.DeleteMemberRequest) (*emptypb.Empty, error) {
	m, err := names.ParseMember(req.GetName())
	if err != nil {
		return nil, errs.Field("name", "%v", err)
	}
	org, principal := m.Org, m.UserName().String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_DeleteMember_FullMethodName), req.GetName())
	ev.Metadata = map[string]string{"principal": principal}
	if err := s.store.DeleteMember(ctx, org, principal, ev); err != nil {
		return nil, err
	}
	s.changed()
	return &emptypb.Empty{}, nil
}

func invitationProto(i store.Invitation) *orgsv1.Invitation {
	return &orgsv1.Invitation{Name: i.Name, Email: i.Email, Role: i.Role, ExpireTime: timestamppb.New(i.ExpireTime),
		State: i.State, Inviter: i.Inviter, CreateTime: timestamppb.New(i.CreateTime)}
}

// CreateInvitation implements AccessService. The inviter must hold the
// role's permissions on the organization, as for a binding.
func (s *AccessService) CreateInvitation(ctx context.Context, req *orgsv1.CreateInvitationRequest) (*orgsv1.Invitation, error) {
	parent, in := req.GetParent(), req.GetInvitation()
	org := names.OrgID(parent)
	role, err := s.role(ctx, org, in.GetRole())
	if err != nil {
		return nil, err
	}
	if err := s.holdsAll(ctx, server.ActionFor(orgsv1.AccessService_CreateInvitation_FullMethodName), role.Sorted(), parent, "invite as "+role.Name); err != nil {
		return nil, err
	}
	p := caller(ctx)
	secret, _, err := auth.NewAPIToken()
	if err != nil {
		return nil, err
	}
	token := invitationPrefix + strings.TrimPrefix(secret.Reveal(), auth.TokenPrefix)
	sum := sha256.Sum256([]byte(token))
	expire := time.Now().Add(InvitationTTL).UTC()
	if et := in.GetExpireTime(); et != nil {
		expire = et.AsTime().UTC()
	}
	name := names.Invitation{Org: org, Invitation: uuid.NewString()[:8]}.String()
	ev := outbox.NewEvent(ctx, org, server.ActionFor(orgsv1.AccessService_CreateInvitation_FullMethodName), name)
	ev.Metadata = map[string]string{"email": strings.ToLower(in.GetEmail()), "role": role.Name}
	inv, err := s.store.CreateInvitation(ctx, store.Invitation{Name: name, Organization: org, Email: strings.ToLower(in.GetEmail()),
		Role: role.Name, Hash: sum[:], ExpireTime: expire, Inviter: p.Name}, ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	out := invitationProto(inv)
	out.Token = token // shown once
	return out, nil
}

// ListInvitations implements AccessService.
func (s *AccessService) ListInvitations(ctx context.Context, req *orgsv1.ListInvitationsRequest) (*orgsv1.ListInvitationsResponse, error) {
	rows, err := s.store.ListInvitations(ctx, names.OrgID(req.GetParent()))
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListInvitationsResponse{}
	for _, i := range rows {
		resp.Invitations = append(resp.Invitations, invitationProto(i))
	}
	return resp, nil
}

// RevokeInvitation implements AccessService.
func (s *AccessService) RevokeInvitation(ctx context.Context, req *orgsv1.RevokeInvitationRequest) (*orgsv1.Invitation, error) {
	ev := outbox.NewEvent(ctx, names.OrgID(req.GetName()), server.ActionFor(orgsv1.AccessService_RevokeInvitation_FullMethodName), req.GetName())
	inv, err := s.store.RevokeInvitation(ctx, req.GetName(), ev)
	if err != nil {
		return nil, err
	}
	s.changed()
	return invitationProto(inv), nil
}

// AcceptInvitation implements AccessService.
func (s *AccessService) AcceptInvitation(ctx context.Context, req *orgsv1.AcceptInvitationRequest) (*orgsv1.AcceptInvitationResponse, error) {
	sum := sha256.Sum256([]byte(req.GetToken()))
	now := time.Now().UTC()
	resp := &orgsv1.AcceptInvitationResponse{}
	p, authenticated := auth.FromContext(ctx)
	var tok *store.APIToken
	var secret string
	if !authenticated {
		// The invited user is created from the invitation's email; the
		// principal is known only inside the transaction, so mint the
		// token for whichever email the invitation names.
		p = auth.Principal{Kind: auth.KindUser}
		sec, hash, err := auth.NewAPIToken()
		if err != nil {
			return nil, err
		}
		secret = sec.Reveal()
		tok = &store.APIToken{ID: uuid.NewString()[:8], Hash: hash, DisplayName: "from invitation", CreateTime: now.Truncate(time.Microsecond)}
	}
	principal := ""
	if authenticated {
		principal = p.Name
	}
	ev := outbox.NewEvent(ctx, "-", server.ActionFor(orgsv1.AccessService_AcceptInvitation_FullMethodName), "")
	inv, err := s.store.AcceptInvitation(ctx, sum[:], principal, p.DisplayName, now, tok, ev)
	if err != nil {
		return nil, err
	}
	principal = inv.AcceptedBy
	s.changed()
	resp.User = &orgsv1.User{Name: principal, Email: inv.Email, Kind: string(auth.KindUser)}
	resp.Organization = names.Org{Org: inv.Organization}.String()
	if tok != nil {
		resp.Token = &orgsv1.Token{Name: names.Token{Parent: principal, Token: tok.ID}.String(), DisplayName: tok.DisplayName, CreateTime: timestamppb.New(tok.CreateTime), Secret: secret}
	}
	return resp, nil
}

// ListAllowed implements AccessService.
func (s *AccessService) ListAllowed(ctx context.Context, req *orgsv1.ListAllowedRequest) (*orgsv1.ListAllowedResponse, error) {
	resp := &orgsv1.ListAllowedResponse{}
	for _, r := range req.GetResources() {
		c, err := s.check(ctx, req.GetPrincipal(), &orgsv1.CheckRequest{Permission: req.GetPermission(), Resource: r})
		if err != nil {
			return nil, err
		}
		if c.GetAllowed() {
			resp.Resources = append(resp.Resources, r)
		}
	}
	return resp, nil
}
