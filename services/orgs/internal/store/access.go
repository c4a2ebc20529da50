package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/services/orgs/internal/ent"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/apitoken"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/binding"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/customrole"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/invitation"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/serviceaccount"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/team"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/teammember"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/user"
)

// ServiceAccount is a stored service account.
type ServiceAccount struct {
	Name, Organization, DisplayName, Description string
	CreateTime                                   time.Time
}

// Binding is a stored role binding.
type Binding struct {
	Name, Resource, Organization, Role, Principal, Creator string
	CreateTime                                             time.Time
}

// Team is a stored team with its members.
type Team struct {
	Name, Organization, DisplayName string
	Members                         []string
	CreateTime                      time.Time
}

// CustomRole is a stored custom role.
type CustomRole struct {
	Name, Organization, Title, Description string
	Permissions                            []string
	CreateTime                             time.Time
}

// OwnerRole is the role an organization must always have one holder of.
const OwnerRole = "roles/owner"

// AccessStore persists principals, bindings, teams and roles. Every change
// takes its audit event (nil: none), written in the same transaction.
type AccessStore interface {
	// CreateServiceAccount must return ErrAlreadyExists if the name is taken.
	CreateServiceAccount(ctx context.Context, sa ServiceAccount, ev *auditv1.Event) (ServiceAccount, error)
	// GetServiceAccount must return ErrNotFound if there is none.
	GetServiceAccount(ctx context.Context, name string) (ServiceAccount, error)
	// ListServiceAccounts returns org's service accounts with names after
	// after, ordered by name, at most limit.
	ListServiceAccounts(ctx context.Context, org, after string, limit int) ([]ServiceAccount, error)
	// DeleteServiceAccount deletes it with its tokens, bindings and team
	// memberships; ErrNotFound if there is none.
	DeleteServiceAccount(ctx context.Context, name string, ev *auditv1.Event) error

	// ListAPITokens returns principal's tokens, oldest first.
	ListAPITokens(ctx context.Context, principal string) ([]APIToken, error)
	// DeleteAPIToken revokes token id of principal; ErrNotFound if none.
	DeleteAPIToken(ctx context.Context, principal, id string, ev *auditv1.Event) error

	// CreateBinding must return ErrAlreadyExists if the same role is bound
	// to the same principal on the same resource.
	CreateBinding(ctx context.Context, b Binding, ev *auditv1.Event) (Binding, error)
	// ListBindings returns the bindings on resource itself.
	ListBindings(ctx context.Context, resource string) ([]Binding, error)
	// DeleteBinding must return ErrNotFound if there is none, and
	// ErrFailedPrecondition, changing nothing, if it is the last owner
	// binding of an organization.
	DeleteBinding(ctx context.Context, name string, ev *auditv1.Event) error
	// PurgeBindings deletes every binding on resource and on any resource
	// below it (resource + "/..."), returning how many; none is no error.
	PurgeBindings(ctx context.Context, resource string, ev *auditv1.Event) (int, error)
	// BindingsFor returns the bindings of any of principals on any of
	// resources.
	BindingsFor(ctx context.Context, principals, resources []string) ([]Binding, error)
	// HasBindingIn reports whether any of principals holds any binding in
	// organization org (its membership).
	HasBindingIn(ctx context.Context, principals []string, org string) (bool, error)

	// TeamsOf returns the teams principal is a member of.
	TeamsOf(ctx context.Context, principal string) ([]string, error)
	// CreateTeam must return ErrAlreadyExists if the name is taken.
	CreateTeam(ctx context.Context, t Team, ev *auditv1.Event) (Team, error)
	// GetTeam must return ErrNotFound if there is none.
	GetTeam(ctx context.Context, name string) (Team, error)
	// ListTeams returns org's teams by name.
	ListTeams(ctx context.Context, org string) ([]Team, error)
	// DeleteTeam deletes it with its memberships and bindings.
	DeleteTeam(ctx context.Context, name string, ev *auditv1.Event) error
	// AddTeamMember adds member (idempotent) and returns the team.
	AddTeamMember(ctx context.Context, team, member string, ev *auditv1.Event) (Team, error)
	// RemoveTeamMember removes member; ErrNotFound if it is not one.
	RemoveTeamMember(ctx context.Context, team, member string, ev *auditv1.Event) (Team, error)

	// CreateRole must return ErrAlreadyExists if the name is taken.
	CreateRole(ctx context.Context, r CustomRole, ev *auditv1.Event) (CustomRole, error)
	// GetRole must return ErrNotFound if there is none.
	GetRole(ctx context.Context, name string) (CustomRole, error)
	// ListRoles returns org's custom roles by name.
	ListRoles(ctx context.Context, org string) ([]CustomRole, error)
	// DeleteRole must return ErrFailedPrecondition while a binding uses it.
	DeleteRole(ctx context.Context, name string, ev *auditv1.Event) error

	CreateInvitation(ctx context.Context, inv Invitation, ev *auditv1.Event) (Invitation, error)
	ListInvitations(ctx context.Context, org string) ([]Invitation, error)
	RevokeInvitation(ctx context.Context, name string, ev *auditv1.Event) (Invitation, error)
	// AcceptInvitation: see EntStore.AcceptInvitation; tok, when not nil,
	// is a new API token for principal created in the same transaction.
	AcceptInvitation(ctx context.Context, hash []byte, principal, displayName string, now time.Time, tok *APIToken, ev *auditv1.Event) (Invitation, error)
	MemberBindings(ctx context.Context, org string) ([]Binding, error)
	DeleteMember(ctx context.Context, org, principal string, ev *auditv1.Event) error
	// EnsureUser records a user on first sign-in; idempotent.
	EnsureUser(ctx context.Context, u User, ev *auditv1.Event) (bool, error)
	// GetUser must return ErrNotFound if there is none.
	GetUser(ctx context.Context, id string) (User, error)
}

func toSA(s *ent.ServiceAccount) ServiceAccount {
	return ServiceAccount{Name: s.ID, Organization: s.Organization, DisplayName: s.DisplayName, Description: s.Description, CreateTime: s.CreateTime.UTC()}
}

func toBinding(b *ent.Binding) Binding {
	return Binding{Name: b.ID, Resource: b.Resource, Organization: b.Organization, Role: b.Role, Principal: b.Principal, Creator: b.Creator, CreateTime: b.CreateTime.UTC()}
}

func toToken(t *ent.APIToken) APIToken {
	return APIToken{ID: t.ID, Hash: t.TokenHash, Principal: t.Principal, DisplayName: t.DisplayName,
		CreateTime: t.CreateTime.UTC(), ExpireTime: t.ExpireTime, LastUseTime: t.LastUseTime}
}

func notFound(kind, name string) error { return fmt.Errorf("%s %q: %w", kind, name, errs.ErrNotFound) }

// one maps an ent lookup of one row to the store's form, with ErrNotFound
// naming kind and name.
func one[E, T any](e *E, err error, kind, name string, conv func(*E) T) (T, error) {
	var zero T
	if ent.IsNotFound(err) {
		return zero, notFound(kind, name)
	}
	if err != nil {
		return zero, err
	}
	return conv(e), nil
}

// CreateServiceAccount implements AccessStore.
func (s *EntStore) CreateServiceAccount(ctx context.Context, sa ServiceAccount, ev *auditv1.Event) (ServiceAccount, error) {
	var out ServiceAccount
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.Organization.Get(ctx, sa.Organization); ent.IsNotFound(err) {
			return notFound("organization", names.Org{Org: sa.Organization}.String())
		}
		created, err := tx.ServiceAccount.Create().SetID(sa.Name).SetOrganization(sa.Organization).
			SetDisplayName(sa.DisplayName).SetDescription(sa.Description).SetCreateTime(s.now()).Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("service account %q: %w", sa.Name, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = toSA(created)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// GetServiceAccount implements AccessStore.
func (s *EntStore) GetServiceAccount(ctx context.Context, name string) (ServiceAccount, error) {
	sa, err := s.client.ServiceAccount.Get(ctx, name)
	return one(sa, err, "service account", name, toSA)
}

// ListServiceAccounts implements AccessStore.
func (s *EntStore) ListServiceAccounts(ctx context.Context, org, after string, limit int) ([]ServiceAccount, error) {
	q := s.client.ServiceAccount.Query().Where(serviceaccount.Organization(org)).Order(ent.Asc(serviceaccount.FieldID)).Limit(limit)
	if after != "" {
		q.Where(serviceaccount.IDGT(after))
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceAccount, len(rows))
	for i, r := range rows {
		out[i] = toSA(r)
	}
	return out, nil
}

// DeleteServiceAccount implements AccessStore.
func (s *EntStore) DeleteServiceAccount(ctx context.Context, name string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		n, err := tx.ServiceAccount.Delete().Where(serviceaccount.ID(name)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("service account", name)
		}
		if err := deletePrincipal(ctx, tx, name); err != nil {
			return err
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// deletePrincipal removes a principal's tokens, bindings and memberships.
func deletePrincipal(ctx context.Context, tx *ent.Tx, name string) error {
	if _, err := tx.APIToken.Delete().Where(apitoken.Principal(name)).Exec(ctx); err != nil {
		return err
	}
	if _, err := tx.Binding.Delete().Where(binding.Principal(name)).Exec(ctx); err != nil {
		return err
	}
	_, err := tx.TeamMember.Delete().Where(teammember.Member(name)).Exec(ctx)
	return err
}

// ListAPITokens implements AccessStore.
func (s *EntStore) ListAPITokens(ctx context.Context, principal string) ([]APIToken, error) {
	rows, err := s.client.APIToken.Query().Where(apitoken.Principal(principal)).Order(ent.Asc(apitoken.FieldCreateTime)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]APIToken, len(rows))
	for i, r := range rows {
		out[i] = toToken(r)
	}
	return out, nil
}

// DeleteAPIToken implements AccessStore.
func (s *EntStore) DeleteAPIToken(ctx context.Context, principal, id string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		n, err := tx.APIToken.Delete().Where(apitoken.ID(id), apitoken.Principal(principal)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("token", names.Token{Parent: principal, Token: id}.String())
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// CreateBinding implements AccessStore.
func (s *EntStore) CreateBinding(ctx context.Context, b Binding, ev *auditv1.Event) (Binding, error) {
	var out Binding
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		created, err := tx.Binding.Create().SetID(b.Name).SetResource(b.Resource).SetOrganization(b.Organization).
			SetRole(b.Role).SetPrincipal(b.Principal).SetCreator(b.Creator).SetCreateTime(s.now()).Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("%s is already bound to %s on %q: %w", b.Role, b.Principal, b.Resource, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = toBinding(created)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// ListBindings implements AccessStore.
func (s *EntStore) ListBindings(ctx context.Context, resource string) ([]Binding, error) {
	rows, err := s.client.Binding.Query().Where(binding.Resource(resource)).Order(ent.Asc(binding.FieldCreateTime), ent.Asc(binding.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = toBinding(r)
	}
	return out, nil
}

// DeleteBinding implements AccessStore.
func (s *EntStore) DeleteBinding(ctx context.Context, name string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		b, err := tx.Binding.Get(ctx, name)
		if ent.IsNotFound(err) {
			return notFound("binding", name)
		}
		if err != nil {
			return err
		}
		if b.Role == OwnerRole && b.Resource == (names.Org{Org: b.Organization}).String() {
			// Lock the owner rows (PostgreSQL; SQLite's immediate
			// transactions serialize writers), so two owners removed at once
			// cannot both see the other still there.
			q := tx.Binding.Query().Where(binding.Resource(b.Resource), binding.Role(OwnerRole))
			if s.dialect == dialect.Postgres {
				q.ForUpdate()
			}
			owners, err := q.IDs(ctx)
			if err != nil {
				return err
			}
			if len(owners) <= 1 {
				return fmt.Errorf("%s is the last owner of %s; grant owner to someone else first: %w", b.Principal, b.Resource, errs.ErrFailedPrecondition)
			}
		}
		if err := tx.Binding.DeleteOneID(name).Exec(ctx); err != nil {
			return err
		}
		if ev != nil {
			ev.Metadata = map[string]string{"role": b.Role, "principal": b.Principal}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// PurgeBindings implements AccessStore.
func (s *EntStore) PurgeBindings(ctx context.Context, resource string, ev *auditv1.Event) (int, error) {
	var n int
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		var err error
		n, err = tx.Binding.Delete().Where(binding.Or(binding.Resource(resource), binding.ResourceHasPrefix(resource+"/"))).Exec(ctx)
		if err != nil || n == 0 {
			return err
		}
		if ev != nil {
			ev.Metadata = map[string]string{"deleted": fmt.Sprint(n)}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return n, err
}

// BindingsFor implements AccessStore.
func (s *EntStore) BindingsFor(ctx context.Context, principals, resources []string) ([]Binding, error) {
	rows, err := s.client.Binding.Query().Where(binding.PrincipalIn(principals...), binding.ResourceIn(resources...)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = toBinding(r)
	}
	return out, nil
}

// HasBindingIn implements AccessStore.
func (s *EntStore) HasBindingIn(ctx context.Context, principals []string, org string) (bool, error) {
	return s.client.Binding.Query().Where(binding.PrincipalIn(principals...), binding.Organization(org)).Exist(ctx)
}

// TeamsOf implements AccessStore.
func (s *EntStore) TeamsOf(ctx context.Context, principal string) ([]string, error) {
	rows, err := s.client.TeamMember.Query().Where(teammember.Member(principal)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Team
	}
	return out, nil
}

func (s *EntStore) teamWithMembers(ctx context.Context, c *ent.Client, t *ent.Team) (Team, error) {
	ms, err := c.TeamMember.Query().Where(teammember.Team(t.ID)).Order(ent.Asc(teammember.FieldMember)).All(ctx)
	if err != nil {
		return Team{}, err
	}
	out := Team{Name: t.ID, Organization: t.Organization, DisplayName: t.DisplayName, CreateTime: t.CreateTime.UTC(), Members: []string{}}
	for _, m := range ms {
		out.Members = append(out.Members, m.Member)
	}
	return out, nil
}

// CreateTeam implements AccessStore.
func (s *EntStore) CreateTeam(ctx context.Context, t Team, ev *auditv1.Event) (Team, error) {
	var out Team
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.Organization.Get(ctx, t.Organization); ent.IsNotFound(err) {
			return notFound("organization", names.Org{Org: t.Organization}.String())
		}
		created, err := tx.Team.Create().SetID(t.Name).SetOrganization(t.Organization).SetDisplayName(t.DisplayName).SetCreateTime(s.now()).Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("team %q: %w", t.Name, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = Team{Name: created.ID, Organization: created.Organization, DisplayName: created.DisplayName, CreateTime: created.CreateTime.UTC(), Members: []string{}}
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// GetTeam implements AccessStore.
func (s *EntStore) GetTeam(ctx context.Context, name string) (Team, error) {
	t, err := s.client.Team.Get(ctx, name)
	if ent.IsNotFound(err) {
		return Team{}, notFound("team", name)
	}
	if err != nil {
		return Team{}, err
	}
	return s.teamWithMembers(ctx, s.client, t)
}

// ListTeams implements AccessStore.
func (s *EntStore) ListTeams(ctx context.Context, org string) ([]Team, error) {
	rows, err := s.client.Team.Query().Where(team.Organization(org)).Order(ent.Asc(team.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Team, 0, len(rows))
	for _, r := range rows {
		t, err := s.teamWithMembers(ctx, s.client, r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// DeleteTeam implements AccessStore.
func (s *EntStore) DeleteTeam(ctx context.Context, name string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		n, err := tx.Team.Delete().Where(team.ID(name)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("team", name)
		}
		if _, err := tx.TeamMember.Delete().Where(teammember.Team(name)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.Binding.Delete().Where(binding.Principal(name)).Exec(ctx); err != nil {
			return err
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// AddTeamMember implements AccessStore.
func (s *EntStore) AddTeamMember(ctx context.Context, teamName, member string, ev *auditv1.Event) (Team, error) {
	var out Team
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		t, err := tx.Team.Get(ctx, teamName)
		if ent.IsNotFound(err) {
			return notFound("team", teamName)
		}
		if err != nil {
			return err
		}
		exists, err := tx.TeamMember.Query().Where(teammember.Team(teamName), teammember.Member(member)).Exist(ctx)
		if err != nil {
			return err
		}
		if !exists {
			if err := tx.TeamMember.Create().SetTeam(teamName).SetMember(member).Exec(ctx); err != nil {
				return err
			}
			if err := s.writeOutbox(ctx, tx, ev); err != nil {
				return err
			}
		}
		out, err = s.teamWithMembers(ctx, tx.Client(), t)
		return err
	})
	return out, err
}

// RemoveTeamMember implements AccessStore.
func (s *EntStore) RemoveTeamMember(ctx context.Context, teamName, member string, ev *auditv1.Event) (Team, error) {
	var out Team
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		t, err := tx.Team.Get(ctx, teamName)
		if ent.IsNotFound(err) {
			return notFound("team", teamName)
		}
		if err != nil {
			return err
		}
		n, err := tx.TeamMember.Delete().Where(teammember.Team(teamName), teammember.Member(member)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s is not a member of %s: %w", member, teamName, errs.ErrNotFound)
		}
		if err := s.writeOutbox(ctx, tx, ev); err != nil {
			return err
		}
		out, err = s.teamWithMembers(ctx, tx.Client(), t)
		return err
	})
	return out, err
}

func toRole(r *ent.CustomRole) CustomRole {
	return CustomRole{Name: r.ID, Organization: r.Organization, Title: r.Title, Description: r.Description, Permissions: r.Permissions, CreateTime: r.CreateTime.UTC()}
}

// CreateRole implements AccessStore.
func (s *EntStore) CreateRole(ctx context.Context, r CustomRole, ev *auditv1.Event) (CustomRole, error) {
	var out CustomRole
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.Organization.Get(ctx, r.Organization); ent.IsNotFound(err) {
			return notFound("organization", names.Org{Org: r.Organization}.String())
		}
		created, err := tx.CustomRole.Create().SetID(r.Name).SetOrganization(r.Organization).SetTitle(r.Title).
			SetDescription(r.Description).SetPermissions(r.Permissions).SetCreateTime(s.now()).Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("role %q: %w", r.Name, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = toRole(created)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// GetRole implements AccessStore.
func (s *EntStore) GetRole(ctx context.Context, name string) (CustomRole, error) {
	r, err := s.client.CustomRole.Get(ctx, name)
	return one(r, err, "role", name, toRole)
}

// ListRoles implements AccessStore.
func (s *EntStore) ListRoles(ctx context.Context, org string) ([]CustomRole, error) {
	rows, err := s.client.CustomRole.Query().Where(customrole.Organization(org)).Order(ent.Asc(customrole.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]CustomRole, len(rows))
	for i, r := range rows {
		out[i] = toRole(r)
	}
	return out, nil
}

// DeleteRole implements AccessStore.
func (s *EntStore) DeleteRole(ctx context.Context, name string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		used, err := tx.Binding.Query().Where(binding.Role(name)).Exist(ctx)
		if err != nil {
			return err
		}
		if used {
			return fmt.Errorf("role %q is still bound; delete its bindings first: %w", name, errs.ErrFailedPrecondition)
		}
		n, err := tx.CustomRole.Delete().Where(customrole.ID(name)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("role", name)
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// Invitation is a stored invitation.
type Invitation struct {
	Name, Organization, Email, Role, State, Inviter, AcceptedBy string
	Hash                                                        []byte
	ExpireTime, CreateTime                                      time.Time
}

// Invitation states.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationRevoked  = "revoked"
)

func toInvitation(i *ent.Invitation) Invitation {
	return Invitation{Name: i.ID, Organization: i.Organization, Email: i.Email, Role: i.Role, State: i.State,
		Inviter: i.Inviter, AcceptedBy: i.AcceptedBy, Hash: i.TokenHash, ExpireTime: i.ExpireTime.UTC(), CreateTime: i.CreateTime.UTC()}
}

// CreateInvitation stores a pending invitation.
func (s *EntStore) CreateInvitation(ctx context.Context, inv Invitation, ev *auditv1.Event) (Invitation, error) {
	var out Invitation
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.Organization.Get(ctx, inv.Organization); ent.IsNotFound(err) {
			return notFound("organization", names.Org{Org: inv.Organization}.String())
		}
		created, err := tx.Invitation.Create().SetID(inv.Name).SetOrganization(inv.Organization).SetEmail(inv.Email).
			SetRole(inv.Role).SetTokenHash(inv.Hash).SetExpireTime(inv.ExpireTime).SetInviter(inv.Inviter).
			SetCreateTime(s.now()).Save(ctx)
		if err != nil {
			return err
		}
		out = toInvitation(created)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// ListInvitations returns org's invitations, newest first.
func (s *EntStore) ListInvitations(ctx context.Context, org string) ([]Invitation, error) {
	rows, err := s.client.Invitation.Query().Where(invitation.Organization(org)).Order(ent.Desc(invitation.FieldCreateTime)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Invitation, len(rows))
	for i, r := range rows {
		out[i] = toInvitation(r)
	}
	return out, nil
}

// RevokeInvitation revokes a pending invitation; ErrNotFound if none,
// ErrFailedPrecondition if it is no longer pending.
func (s *EntStore) RevokeInvitation(ctx context.Context, name string, ev *auditv1.Event) (Invitation, error) {
	var out Invitation
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		n, err := tx.Invitation.Update().Where(invitation.ID(name), invitation.State(InvitationPending)).SetState(InvitationRevoked).Save(ctx)
		if err != nil {
			return err
		}
		inv, err := tx.Invitation.Get(ctx, name)
		if ent.IsNotFound(err) {
			return notFound("invitation", name)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("invitation %q is %s: %w", name, inv.State, errs.ErrFailedPrecondition)
		}
		out = toInvitation(inv)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// AcceptInvitation consumes the pending, unexpired invitation whose token
// hashes to hash: it binds its role on the organization to principal (""
// means the invited user, users/{email}),
// records the user, and marks the invitation accepted, all at once; a token
// works once. It returns ErrUnauthenticated for an unknown, used, revoked or
// expired token (one answer for all: the token is a credential).
func (s *EntStore) AcceptInvitation(ctx context.Context, hash []byte, principal, displayName string, now time.Time, tok *APIToken, ev *auditv1.Event) (Invitation, error) {
	var out Invitation
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		bad := fmt.Errorf("the invitation token is not valid (unknown, used, revoked or expired): %w", errs.ErrUnauthenticated)
		inv, err := tx.Invitation.Query().Where(invitation.TokenHash(hash)).Only(ctx)
		if ent.IsNotFound(err) {
			return bad
		}
		if err != nil {
			return err
		}
		if inv.State != InvitationPending || !now.Before(inv.ExpireTime) {
			return bad
		}
		if principal == "" {
			// An unauthenticated acceptance: the invited user joins.
			principal = names.User{User: inv.Email}.String()
			if ev != nil {
				ev.Actor = &auditv1.Actor{Principal: principal, Kind: "user"}
			}
		}
		n, err := tx.Invitation.Update().Where(invitation.ID(inv.ID), invitation.State(InvitationPending)).
			SetState(InvitationAccepted).SetAcceptedBy(principal).Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return bad // accepted concurrently
		}
		if strings.HasPrefix(principal, "users/") {
			id := strings.TrimPrefix(principal, "users/")
			exists, err := tx.User.Query().Where(user.ID(id)).Exist(ctx)
			if err != nil {
				return err
			}
			if !exists {
				if err := tx.User.Create().SetID(id).SetEmail(inv.Email).SetDisplayName(displayName).SetCreateTime(now).Exec(ctx); err != nil && !ent.IsConstraintError(err) {
					return err
				}
			}
		}
		resource := names.Org{Org: inv.Organization}.String()
		err = tx.Binding.Create().SetID(names.Binding{Resource: resource, Binding: uuid.NewString()[:8]}.String()).SetResource(resource).
			SetOrganization(inv.Organization).SetRole(inv.Role).SetPrincipal(principal).SetCreator(inv.Inviter).
			SetCreateTime(s.now()).Exec(ctx)
		if err != nil && !ent.IsConstraintError(err) { // already holds the role: fine
			return err
		}
		if tok != nil {
			if err := tx.APIToken.Create().SetID(tok.ID).SetTokenHash(tok.Hash).SetPrincipal(principal).
				SetDisplayName(tok.DisplayName).SetCreateTime(tok.CreateTime).Exec(ctx); err != nil {
				return err
			}
		}
		out = toInvitation(inv)
		out.State, out.AcceptedBy = InvitationAccepted, principal
		if ev != nil {
			ev.Organization, ev.Resource = inv.Organization, inv.ID
			ev.Metadata = map[string]string{"role": inv.Role, "principal": principal}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// MemberBindings returns every binding in org.
func (s *EntStore) MemberBindings(ctx context.Context, org string) ([]Binding, error) {
	rows, err := s.client.Binding.Query().Where(binding.Organization(org)).Order(ent.Asc(binding.FieldPrincipal), ent.Asc(binding.FieldResource)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Binding, len(rows))
	for i, r := range rows {
		out[i] = toBinding(r)
	}
	return out, nil
}

// DeleteMember removes every binding of principal in org; ErrNotFound if
// it holds none, ErrFailedPrecondition if it is the last owner.
func (s *EntStore) DeleteMember(ctx context.Context, org, principal string, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		q := tx.Binding.Query().Where(binding.Resource(names.Org{Org: org}.String()), binding.Role(OwnerRole))
		if s.dialect == dialect.Postgres {
			q.ForUpdate()
		}
		owners, err := q.All(ctx)
		if err != nil {
			return err
		}
		others := 0
		for _, o := range owners {
			if o.Principal != principal {
				others++
			}
		}
		if len(owners) > 0 && others == 0 {
			return fmt.Errorf("%s is the last owner of orgs/%s: %w", principal, org, errs.ErrFailedPrecondition)
		}
		n, err := tx.Binding.Delete().Where(binding.Organization(org), binding.Principal(principal)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s is not a member of orgs/%s: %w", principal, org, errs.ErrNotFound)
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// User is a stored user.
type User struct {
	ID, Email, DisplayName string
	CreateTime             time.Time
}

// EnsureUser records user id on its first sign-in; later calls change
// nothing. It returns whether the user was created.
func (s *EntStore) EnsureUser(ctx context.Context, u User, ev *auditv1.Event) (bool, error) {
	created := false
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		exists, err := tx.User.Query().Where(user.ID(u.ID)).Exist(ctx)
		if err != nil || exists {
			return err
		}
		c := tx.User.Create().SetID(u.ID).SetDisplayName(u.DisplayName).SetCreateTime(s.now())
		if u.Email != "" {
			c.SetEmail(u.Email)
		}
		if err := c.Exec(ctx); err != nil {
			if ent.IsConstraintError(err) {
				return nil // created concurrently, or the email belongs to another id
			}
			return err
		}
		created = true
		return s.writeOutbox(ctx, tx, ev)
	})
	return created, err
}

// GetUser returns user id, or ErrNotFound.
func (s *EntStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := s.client.User.Get(ctx, id)
	if ent.IsNotFound(err) {
		return User{}, notFound("user", names.User{User: id}.String())
	}
	if err != nil {
		return User{}, err
	}
	out := User{ID: u.ID, DisplayName: u.DisplayName, CreateTime: u.CreateTime.UTC()}
	if u.Email != nil {
		out.Email = *u.Email
	}
	return out, nil
}
