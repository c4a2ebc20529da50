package store

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs/internal/ent"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/apitoken"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/organization"
)

// Schema is the PostgreSQL schema of the orgs service when it shares a
// database with other services.
const Schema = "orgs"

// EntStore is the Store on ent.
type EntStore struct {
	client  *ent.Client
	dialect string
	now     func() time.Time
}

// Open opens the database at url (see kit/db.Open), migrates its schema,
// and returns the store.
func Open(ctx context.Context, url string) (*EntStore, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	if err := client.Schema.Create(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("migrate orgs database: %w", err)
	}
	return &EntStore{client: client, dialect: d.Dialect, now: now}, nil
}

// Migrate brings the database at url to the current schema; tests use it to
// prepare template databases.
func Migrate(ctx context.Context, url string) error {
	s, err := Open(ctx, url)
	if err != nil {
		return err
	}
	return s.Close()
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Close closes the database.
func (s *EntStore) Close() error { return s.client.Close() }

func toOrganization(o *ent.Organization) Organization {
	return Organization{
		ID: o.ID, DisplayName: o.DisplayName, Description: o.Description, Overview: o.Overview,
		CreateTime: o.CreateTime.UTC(), UpdateTime: o.UpdateTime.UTC(), Revision: o.Revision,
	}
}

func (s *EntStore) withTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// CreateOrganization implements Store.
func (s *EntStore) CreateOrganization(ctx context.Context, org Organization, requestID string) (Organization, error) {
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
			SetCreateTime(t).SetUpdateTime(t).SetRevision(1)
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
		return nil
	})
	return out, err
}

// GetOrganization implements Store.
func (s *EntStore) GetOrganization(ctx context.Context, id string) (Organization, error) {
	o, err := s.client.Organization.Get(ctx, id)
	if ent.IsNotFound(err) {
		return Organization{}, fmt.Errorf("organization %q: %w", id, errs.ErrNotFound)
	}
	if err != nil {
		return Organization{}, err
	}
	return toOrganization(o), nil
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
func (s *EntStore) UpdateOrganization(ctx context.Context, org Organization, fields []string, expectRevision int64) (Organization, error) {
	var out Organization
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		cur, err := s.lockedRevision(ctx, tx, org.ID, expectRevision)
		if err != nil {
			return err
		}
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
		return nil
	})
	return out, err
}

// lockedRevision reads the current revision of org id (locking the row on
// PostgreSQL; SQLite's immediate transactions already serialize writers) and
// checks it against expect.
func (s *EntStore) lockedRevision(ctx context.Context, tx *ent.Tx, id string, expect int64) (int64, error) {
	q := tx.Organization.Query().Where(organization.ID(id)).Select(organization.FieldRevision)
	if s.dialect == dialect.Postgres {
		q.ForUpdate()
	}
	cur, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return 0, fmt.Errorf("organization %q: %w", id, errs.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	if expect != 0 && cur.Revision != expect {
		return 0, fmt.Errorf("organization %q changed meanwhile: %w", id, errs.ErrEtagMismatch)
	}
	return cur.Revision, nil
}

// DeleteOrganization implements Store.
func (s *EntStore) DeleteOrganization(ctx context.Context, id string, expectRevision int64) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		cur, err := s.lockedRevision(ctx, tx, id, expectRevision)
		if err != nil {
			return err
		}
		n, err := tx.Organization.Delete().Where(organization.ID(id), organization.Revision(cur)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("organization %q: %w", id, errs.ErrEtagMismatch)
		}
		return nil
	})
}

// CreateAPIToken implements Store.
func (s *EntStore) CreateAPIToken(ctx context.Context, t APIToken) error {
	_, err := s.client.APIToken.Create().SetID(t.ID).SetTokenHash(t.Hash).SetPrincipal(t.Principal).
		SetDisplayName(t.DisplayName).SetCreateTime(t.CreateTime).SetNillableExpireTime(t.ExpireTime).Save(ctx)
	if ent.IsConstraintError(err) {
		return fmt.Errorf("api token %q: %w", t.ID, errs.ErrAlreadyExists)
	}
	return err
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
