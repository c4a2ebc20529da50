package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/google/uuid"
	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/orgs/internal/ent"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/apitoken"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/binding"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/customrole"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/invitation"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/migrate/migrations"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/organization"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/serviceaccount"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/team"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/teammember"
)

// Schema is the PostgreSQL schema of the orgs service when it shares a
// database with other services.
const Schema = "orgs"

// EntStore is the Store on ent.
type EntStore struct {
	client    *ent.Client
	db        *db.DB
	dialect   string
	now       func() time.Time
	committed db.Committed
}

// Migrations are the orgs database's versioned migrations.
var Migrations = db.Migrations{Schema: Schema, FS: migrations.FS}

// Open opens the database at url (see kit/db.Open) and returns the store.
// It does not migrate: Migrate does, and SchemaStatus tells whether the
// database is behind.
func Open(ctx context.Context, url string) (*EntStore, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	return &EntStore{client: client, db: d, dialect: d.Dialect, now: now}, nil
}

// Migrate applies the pending migrations to the database at url (see
// kit/db.Migrations.Apply).
func Migrate(ctx context.Context, url string) error {
	_, err := Migrations.Apply(ctx, url)
	return err
}

// SchemaStatus tells how the database at url stands against the migrations.
func SchemaStatus(ctx context.Context, url string) (db.Status, error) {
	return Migrations.Status(ctx, url)
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Close closes the database.
func (s *EntStore) Close() error { return s.client.Close() }

func toOrganization(o *ent.Organization) Organization {
	return Organization{
		ID: o.ID, DisplayName: o.DisplayName, Description: o.Description, Overview: o.Overview,
		CreateTime: o.CreateTime.UTC(), UpdateTime: o.UpdateTime.UTC(), Revision: o.Revision, OIDC: o.Oidc,
	}
}

func (s *EntStore) withTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	if err := db.RunTx(ctx, s.client.Tx, fn); err != nil {
		return err
	}
	s.committed.Run()
	return nil
}

// AfterCommit implements Store.
func (s *EntStore) AfterCommit(fn func()) { s.committed.Add(fn) }

// CreateOrganization implements Store.
func (s *EntStore) CreateOrganization(ctx context.Context, org Organization, requestID string, ev *auditv1.Event) (Organization, error) {
	var out Organization
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if requestID != "" {
			prev, err := tx.Organization.Query().Where(organization.CreateRequestID(requestID)).Only(ctx)
			switch {
			case err == nil && prev.ID == org.ID:
				out = toOrganization(prev)
				return nil
			case err == nil:
				return fmt.Errorf("request_id %q created organization %q: %w", requestID, prev.ID, errs.ErrRequestIDReused)
			case !ent.IsNotFound(err):
				return err
			}
		}
		t := s.now()
		c := tx.Organization.Create().SetID(org.ID).SetDisplayName(org.DisplayName).
			SetDescription(org.Description).SetOverview(org.Overview).
			SetCreateTime(t).SetUpdateTime(t).SetRevision(1).SetOidc(org.OIDC).SetOidcIssuer(org.OIDC["issuer"])
		if requestID != "" {
			c.SetCreateRequestID(requestID)
		}
		created, err := c.Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("organization %q: %w", org.ID, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = toOrganization(created)
		if org.Owner != "" {
			name := names.Org{Org: org.ID}.String()
			if err := tx.Binding.Create().SetID(names.Binding{Resource: name, Binding: uuid.NewString()[:8]}.String()).SetResource(name).
				SetOrganization(org.ID).SetRole(OwnerRole).SetPrincipal(org.Owner).SetCreator(org.Owner).
				SetCreateTime(s.now()).Exec(ctx); err != nil {
				return err
			}
		}
		if ev != nil {
			ev.Changes = append(ev.Changes, changes(Organization{}, out, updatableFields)...)
			if org.Owner != "" {
				ev.Metadata = map[string]string{"owner": org.Owner}
			}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// GetOrganization implements Store.
func (s *EntStore) GetOrganization(ctx context.Context, id string) (Organization, error) {
	o, err := s.client.Organization.Get(ctx, id)
	return one(o, err, "organization", id, toOrganization)
}

// ListOrganizations implements Store.
func (s *EntStore) ListOrganizations(ctx context.Context, q OrganizationQuery) ([]Organization, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("limit must be positive: %w", errs.ErrInvalidArgument)
	}
	query := s.client.Organization.Query().Order(ent.Asc(organization.FieldID)).Limit(q.Limit)
	if q.After != "" {
		query.Where(organization.IDGT(q.After))
	}
	if q.DisplayNameEquals != nil {
		query.Where(organization.DisplayName(*q.DisplayNameEquals))
	}
	if q.DisplayNameContains != "" {
		query.Where(organization.DisplayNameContainsFold(q.DisplayNameContains))
	}
	rows, err := query.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Organization, len(rows))
	for i, r := range rows {
		out[i] = toOrganization(r)
	}
	return out, nil
}

// UpdateOrganization implements Store.
func (s *EntStore) UpdateOrganization(ctx context.Context, org Organization, fields []string, expectRevision int64, ev *auditv1.Event) (Organization, error) {
	var out Organization
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		before, err := s.locked(ctx, tx, org.ID, expectRevision)
		if err != nil {
			return err
		}
		cur := before.Revision
		u := tx.Organization.UpdateOneID(org.ID).Where(organization.Revision(cur)).
			SetRevision(cur + 1).SetUpdateTime(s.now())
		for _, f := range fields {
			switch f {
			case FieldDisplayName:
				u.SetDisplayName(org.DisplayName)
			case FieldDescription:
				u.SetDescription(org.Description)
			case FieldOverview:
				u.SetOverview(org.Overview)
			case FieldOIDC:
				u.SetOidc(org.OIDC).SetOidcIssuer(org.OIDC["issuer"])
			default:
				return fmt.Errorf("field %q is not updatable: %w", f, errs.ErrInvalidArgument)
			}
		}
		updated, err := u.Save(ctx)
		if ent.IsNotFound(err) {
			// The revision moved between the read and the write.
			return fmt.Errorf("organization %q: %w", org.ID, errs.ErrEtagMismatch)
		}
		if err != nil {
			return err
		}
		out = toOrganization(updated)
		if ev != nil {
			ev.Changes = append(ev.Changes, changes(before, out, fields)...)
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// locked reads organization id (locking the row on PostgreSQL; SQLite's
// immediate transactions already serialize writers) and checks its revision
// against expect.
func (s *EntStore) locked(ctx context.Context, tx *ent.Tx, id string, expect int64) (Organization, error) {
	q := tx.Organization.Query().Where(organization.ID(id))
	if s.dialect == dialect.Postgres {
		q.ForUpdate()
	}
	cur, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return Organization{}, fmt.Errorf("organization %q: %w", id, errs.ErrNotFound)
	}
	if err != nil {
		return Organization{}, err
	}
	if expect != 0 && cur.Revision != expect {
		return Organization{}, fmt.Errorf("organization %q changed meanwhile: %w", id, errs.ErrEtagMismatch)
	}
	return toOrganization(cur), nil
}

var updatableFields = []string{FieldDisplayName, FieldDescription, FieldOverview, FieldOIDC}

// changes lists the named fields whose value differs between a and b.
func changes(a, b Organization, fields []string) []*auditv1.FieldChange {
	var out []*auditv1.FieldChange
	for _, f := range fields {
		var av, bv string
		switch f {
		case FieldDisplayName:
			av, bv = a.DisplayName, b.DisplayName
		case FieldDescription:
			av, bv = a.Description, b.Description
		case FieldOverview:
			av, bv = a.Overview, b.Overview
		case FieldOIDC:
			av, bv = oidcString(a.OIDC), oidcString(b.OIDC)
		}
		if av != bv {
			out = append(out, outbox.Change(f, av, bv))
		}
	}
	return out
}

func oidcString(m map[string]string) string {
	if len(m) == 0 || m["issuer"] == "" {
		return ""
	}
	return fmt.Sprintf("issuer=%s audience=%s jwks_uri=%s groups_claim=%s", m["issuer"], m["audience"], m["jwks_uri"], m["groups_claim"])
}

// OrganizationsByIssuer implements Store.
func (s *EntStore) OrganizationsByIssuer(ctx context.Context, iss string) ([]Organization, error) {
	rows, err := s.client.Organization.Query().Where(organization.OidcIssuer(iss)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Organization, len(rows))
	for i, r := range rows {
		out[i] = toOrganization(r)
	}
	return out, nil
}

// writeOutbox adds ev (if any) to the outbox inside tx.
func (s *EntStore) writeOutbox(ctx context.Context, tx *ent.Tx, ev *auditv1.Event) error {
	return outbox.Insert(ctx, tx, s.dialect, ev)
}

// RecordEvent implements Store.
func (s *EntStore) RecordEvent(ctx context.Context, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error { return s.writeOutbox(ctx, tx, ev) })
}

// OutboxDB implements Store.
func (s *EntStore) OutboxDB() (*sql.DB, string) { return s.db.DB, s.dialect }

// DeleteOrganization implements Store.
func (s *EntStore) DeleteOrganization(ctx context.Context, id string, expectRevision int64, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		before, err := s.locked(ctx, tx, id, expectRevision)
		if err != nil {
			return err
		}
		n, err := tx.Organization.Delete().Where(organization.ID(id), organization.Revision(before.Revision)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("organization %q: %w", id, errs.ErrEtagMismatch)
		}
		// Everything of the organization's access goes with it.
		if _, err := tx.Binding.Delete().Where(binding.Organization(id)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.ServiceAccount.Delete().Where(serviceaccount.Organization(id)).Exec(ctx); err != nil {
			return err
		}
		// Names under the organization: its service accounts' tokens, its
		// teams' members.
		under := names.Org{Org: id}.String() + "/"
		if _, err := tx.APIToken.Delete().Where(apitoken.PrincipalHasPrefix(under)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.TeamMember.Delete().Where(teammember.TeamHasPrefix(under)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.Team.Delete().Where(team.Organization(id)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.CustomRole.Delete().Where(customrole.Organization(id)).Exec(ctx); err != nil {
			return err
		}
		// An invitation must not outlive its organization: accepted later,
		// it would join the user to the next organization of that id.
		if _, err := tx.Invitation.Delete().Where(invitation.Organization(id)).Exec(ctx); err != nil {
			return err
		}
		if ev != nil {
			ev.Changes = append(ev.Changes, changes(before, Organization{}, updatableFields)...)
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// CreateAPIToken implements Store.
func (s *EntStore) CreateAPIToken(ctx context.Context, t APIToken, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		_, err := tx.APIToken.Create().SetID(t.ID).SetTokenHash(t.Hash).SetPrincipal(t.Principal).
			SetDisplayName(t.DisplayName).SetCreateTime(t.CreateTime).SetNillableExpireTime(t.ExpireTime).Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("api token %q: %w", t.ID, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// APITokenByHash implements Store.
func (s *EntStore) APITokenByHash(ctx context.Context, hash []byte) (APIToken, error) {
	t, err := s.client.APIToken.Query().Where(apitoken.TokenHash(hash)).Only(ctx)
	if ent.IsNotFound(err) {
		return APIToken{}, fmt.Errorf("api token: %w", errs.ErrNotFound)
	}
	if err != nil {
		return APIToken{}, err
	}
	return APIToken{ID: t.ID, Hash: t.TokenHash, Principal: t.Principal, DisplayName: t.DisplayName,
		CreateTime: t.CreateTime.UTC(), ExpireTime: t.ExpireTime, LastUseTime: t.LastUseTime}, nil
}

// CountAPITokens implements Store.
func (s *EntStore) CountAPITokens(ctx context.Context) (int, error) {
	return s.client.APIToken.Query().Count(ctx)
}

// TouchAPIToken implements Store.
func (s *EntStore) TouchAPIToken(ctx context.Context, id string, t time.Time) error {
	err := s.client.APIToken.UpdateOneID(id).SetLastUseTime(t).Exec(ctx)
	if ent.IsNotFound(err) {
		return fmt.Errorf("api token %q: %w", id, errs.ErrNotFound)
	}
	return err
}

var _ Store = (*EntStore)(nil)
