// Package store is the persistence of the orgs service: the Store interface
// with its contracts, and its ent implementation for SQLite and PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"time"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// Organization is the stored form of an organization.
type Organization struct {
	ID          string
	DisplayName string
	Description string
	Overview    string
	CreateTime  time.Time
	UpdateTime  time.Time
	// Revision starts at 1 and grows by one with every update.
	Revision int64
	// Owner, on create only, is bound to roles/owner on the new
	// organization in the same transaction.
	Owner string
	// OIDC is the organization's identity provider: keys issuer, audience,
	// jwks_uri, groups_claim; empty for none.
	OIDC map[string]string
}

// Updatable fields of an organization, by their proto names.
const (
	FieldDisplayName = "display_name"
	FieldDescription = "description"
	FieldOverview    = "overview"
	FieldOIDC        = "oidc"
)

// OrganizationQuery selects a page of organizations.
type OrganizationQuery struct {
	// After is the id of the last organization of the previous page; empty
	// for the first page.
	After string
	// Limit is the most organizations returned; it must be positive.
	Limit int
	// DisplayNameEquals, when not nil, keeps exact matches only.
	DisplayNameEquals *string
	// DisplayNameContains, when not empty, keeps display names containing
	// it, ignoring case.
	DisplayNameContains string
}

// APIToken is a stored API token.
type APIToken struct {
	ID          string
	Hash        []byte
	Principal   string
	DisplayName string
	CreateTime  time.Time
	ExpireTime  *time.Time
	LastUseTime *time.Time
}

// Store persists organizations and API tokens. Errors wrap the sentinels of
// kit/errs so callers can tell cases apart with errors.Is.
type Store interface {
	// CreateOrganization stores org with revision 1 and both times set to
	// now, and returns it as stored. It must return ErrAlreadyExists if
	// org.ID is taken. When requestID is not empty and was used before, it
	// must return the organization created then if org.ID is the same, and
	// ErrRequestIDReused otherwise, creating nothing.
	//
	// Every change method takes the audit event of the change (nil: none);
	// the store adds the changed fields with their old and new values and
	// writes it to the outbox in the change's transaction. A retry that
	// changes nothing records nothing.
	CreateOrganization(ctx context.Context, org Organization, requestID string, ev *auditv1.Event) (Organization, error)
	// GetOrganization must return ErrNotFound if there is no organization id.
	GetOrganization(ctx context.Context, id string) (Organization, error)
	// ListOrganizations returns the organizations matching q, ordered by id,
	// all with ids greater than q.After, at most q.Limit of them.
	ListOrganizations(ctx context.Context, q OrganizationQuery) ([]Organization, error)
	// UpdateOrganization copies the named fields of org onto the stored
	// organization org.ID, adds one to its revision and sets its update time.
	// It must return ErrNotFound if there is none, and ErrEtagMismatch if
	// expectRevision is not zero and not the stored revision, changing
	// nothing; the check and the change are atomic.
	UpdateOrganization(ctx context.Context, org Organization, fields []string, expectRevision int64, ev *auditv1.Event) (Organization, error)
	// DeleteOrganization deletes organization id. It must return ErrNotFound
	// if there is none and ErrEtagMismatch if expectRevision is not zero and
	// not the stored revision.
	DeleteOrganization(ctx context.Context, id string, expectRevision int64, ev *auditv1.Event) error
	// RecordEvent writes an event that goes with no change (a refused
	// request) to the outbox.
	RecordEvent(ctx context.Context, ev *auditv1.Event) error
	// OutboxDB is the database holding the outbox, for the relay.
	OutboxDB() (*sql.DB, string)
	// AfterCommit registers fn to run after every committed change, each
	// of which wrote its audit event: the relay is woken by the commit.
	AfterCommit(fn func())

	// CreateAPIToken stores t. It must return ErrAlreadyExists if its id or
	// hash is taken.
	CreateAPIToken(ctx context.Context, t APIToken, ev *auditv1.Event) error
	// OrganizationsByIssuer returns the organizations whose identity
	// provider has issuer iss.
	OrganizationsByIssuer(ctx context.Context, iss string) ([]Organization, error)
	// APITokenByHash must return ErrNotFound if no token has that hash.
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	// CountAPITokens counts the stored tokens.
	CountAPITokens(ctx context.Context) (int, error)
	// TouchAPIToken records that token id was used at t.
	TouchAPIToken(ctx context.Context, id string, t time.Time) error

	AccessStore

	// Close releases the database.
	Close() error
}
