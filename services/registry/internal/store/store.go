// Package store is the persistence of the registry service on ent
// (SQLite or PostgreSQL), with the audit outbox.
//
// One pattern for every write: a handler opens a unit of work with
// Store.Tx, reads and changes rows through the Tx (each method's comment is
// its contract: which errs sentinel it returns and when), records its audit
// event with Tx.Audit, and returns; the store commits the rows and the
// events together, then runs the AfterCommit hooks (the audit relay, the
// entry watchers). Reads outside a unit of work use Store.Read. The
// conformance tests in store_test.go hold every contract on SQLite and on
// PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/registry/internal/ent"
	entapproval "github.com/pyleeai/pylee/services/registry/internal/ent/approval"
	ententry "github.com/pyleeai/pylee/services/registry/internal/ent/entry"
	ententrychange "github.com/pyleeai/pylee/services/registry/internal/ent/entrychange"
	"github.com/pyleeai/pylee/services/registry/internal/ent/migrate/migrations"
	"github.com/pyleeai/pylee/services/registry/internal/ent/predicate"
	entregistry "github.com/pyleeai/pylee/services/registry/internal/ent/registry"
	entserver "github.com/pyleeai/pylee/services/registry/internal/ent/server"
	entversion "github.com/pyleeai/pylee/services/registry/internal/ent/version"
)

// Schema is the PostgreSQL schema of the registry service.
const Schema = "registry"

// Server is a stored server.
type Server struct {
	Name, Organization, ServerName, Title, Description, WebsiteURL string
	Repository                                                     map[string]string
	Icons                                                          []map[string]any
	CreateTime, UpdateTime                                         time.Time
	Revision                                                       int64
}

// Updatable fields of a server, by their proto names.
var Updatable = []string{"title", "description", "repository", "website_url", "icons"}

// ServerQuery selects a page of an organization's servers.
type ServerQuery struct {
	Organization string
	After        string // the last name of the previous page
	Limit        int
	Search       string // case-insensitive, in server name, title, description
}

// Store keeps the registry's data. Every change runs in a unit of work
// (Store.Tx), and the audit events it records (Tx.Audit) are written to
// the outbox in the same transaction; reads outside one use Store.Read.
type Store struct {
	client    *ent.Client
	db        *db.DB
	dialect   string
	now       func() time.Time
	committed db.Committed
}

// AfterCommit registers fn to run after every committed change (the audit
// relay's wake-up: each change writes its event in its transaction).
func (s *Store) AfterCommit(fn func()) { s.committed.Add(fn) }

// Migrations are the registry database's versioned migrations.
var Migrations = db.Migrations{Schema: Schema, FS: migrations.FS}

// Open opens the registry database at url. It does not migrate: Migrate
// does, and SchemaStatus tells whether the database is behind.
func Open(ctx context.Context, url string) (*Store, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	return &Store{client: client, db: d, dialect: d.Dialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}, nil
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

// Close closes the database.
func (s *Store) Close() error { return s.client.Close() }

// OutboxDB is the database holding the outbox, for the relay.
func (s *Store) OutboxDB() (*sql.DB, string) { return s.db.DB, s.dialect }

func (s *Store) withTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	if err := db.RunTx(ctx, s.client.Tx, fn); err != nil {
		return err
	}
	s.committed.Run()
	return nil
}

func (s *Store) writeOutbox(ctx context.Context, tx *ent.Tx, ev *auditv1.Event) error {
	return outbox.Insert(ctx, tx, s.dialect, ev)
}

func toServer(e *ent.Server) Server {
	return Server{Name: e.ID, Organization: e.Organization, ServerName: e.ServerName, Title: e.Title, Description: e.Description,
		WebsiteURL: e.WebsiteURL, Repository: e.Repository, Icons: e.Icons, CreateTime: e.CreateTime.UTC(), UpdateTime: e.UpdateTime.UTC(),
		Revision: e.Revision}
}

// ServerByRequestID returns the server created with requestID.
func (t *Tx) ServerByRequestID(ctx context.Context, requestID string) (Server, bool, error) {
	e, err := t.c.Server.Query().Where(entserver.CreateRequestID(requestID)).Only(ctx)
	if ent.IsNotFound(err) {
		return Server{}, false, nil
	}
	if err != nil {
		return Server{}, false, err
	}
	return toServer(e), true, nil
}

// InsertServer stores srv with revision 1 and returns it as stored.
// Contract: ErrAlreadyExists if the name or, in the organization, the
// server name is taken; a request id is stored once (ServerByRequestID
// finds it).
func (t *Tx) InsertServer(ctx context.Context, srv Server, requestID string) (Server, error) {
	now := t.Now()
	c := t.c.Server.Create().SetID(srv.Name).SetOrganization(srv.Organization).SetServerName(srv.ServerName).
		SetTitle(srv.Title).SetDescription(srv.Description).SetRepository(srv.Repository).SetWebsiteURL(srv.WebsiteURL).
		SetIcons(srv.Icons).SetCreateTime(now).SetUpdateTime(now)
	if requestID != "" {
		c.SetCreateRequestID(requestID)
	}
	created, err := c.Save(ctx)
	if ent.IsConstraintError(err) {
		return Server{}, fmt.Errorf("server %q or server name %q: %w", srv.Name, srv.ServerName, errs.ErrAlreadyExists)
	}
	if err != nil {
		return Server{}, err
	}
	return toServer(created), nil
}

// Servers returns the servers matching q, ordered by name.
func (t *Tx) Servers(ctx context.Context, q ServerQuery) ([]Server, error) {
	preds := []predicate.Server{entserver.Organization(q.Organization)}
	if q.After != "" {
		preds = append(preds, entserver.IDGT(q.After))
	}
	if q.Search != "" {
		preds = append(preds, entserver.Or(entserver.ServerNameContainsFold(q.Search), entserver.TitleContainsFold(q.Search),
			entserver.DescriptionContainsFold(q.Search)))
	}
	rows, err := t.c.Server.Query().Where(preds...).Order(ent.Asc(entserver.FieldID)).Limit(q.Limit).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Server, len(rows))
	for i, r := range rows {
		out[i] = toServer(r)
	}
	return out, nil
}

// lockedServer reads server name, row-locked on PostgreSQL, checking its
// revision against expect (0: any).
func (t *Tx) lockedServer(ctx context.Context, name string, expect int64) (*ent.Server, error) {
	q := t.c.Server.Query().Where(entserver.ID(name))
	if t.lock() {
		q.ForUpdate()
	}
	cur, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("server %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if expect != 0 && cur.Revision != expect {
		return nil, fmt.Errorf("server %q changed meanwhile: %w", name, errs.ErrEtagMismatch)
	}
	return cur, nil
}

// UpdateServer sets the named fields of srv on the stored server and bumps
// its revision. Contract: ErrNotFound if it does not exist;
// ErrEtagMismatch if expect is set and the stored revision differs (the
// check and the change are atomic: of two updates expecting the same
// revision, one wins); ErrInvalidArgument for a field not in Updatable. It
// returns the server before and after, for the audit event's changes.
func (t *Tx) UpdateServer(ctx context.Context, srv Server, fields []string, expect int64) (before, after Server, err error) {
	cur, err := t.lockedServer(ctx, srv.Name, expect)
	if err != nil {
		return Server{}, Server{}, err
	}
	u := t.c.Server.UpdateOneID(srv.Name).Where(entserver.Revision(cur.Revision)).SetRevision(cur.Revision + 1).SetUpdateTime(t.Now())
	sort.Strings(fields)
	for _, f := range fields {
		switch f {
		case "title":
			u.SetTitle(srv.Title)
		case "description":
			u.SetDescription(srv.Description)
		case "repository":
			u.SetRepository(srv.Repository)
		case "website_url":
			u.SetWebsiteURL(srv.WebsiteURL)
		case "icons":
			u.SetIcons(srv.Icons)
		default:
			return Server{}, Server{}, fmt.Errorf("field %q is not updatable: %w", f, errs.ErrInvalidArgument)
		}
	}
	updated, err := u.Save(ctx)
	if ent.IsNotFound(err) {
		return Server{}, Server{}, fmt.Errorf("server %q changed meanwhile: %w", srv.Name, errs.ErrEtagMismatch)
	}
	if err != nil {
		return Server{}, Server{}, err
	}
	return toServer(cur), toServer(updated), nil
}

// ServerChanges lists the fields that differ between before and after, as
// audit field changes.
func ServerChanges(before, after Server, fields []string) []*auditv1.FieldChange {
	var out []*auditv1.FieldChange
	for _, f := range fields {
		if o, n := fieldString(before, f), fieldString(after, f); o != n {
			out = append(out, outbox.Change(f, o, n))
		}
	}
	return out
}

func fieldString(s Server, f string) string {
	switch f {
	case "title":
		return s.Title
	case "description":
		return s.Description
	case "repository":
		if len(s.Repository) == 0 {
			return ""
		}
		return fmt.Sprintf("%s %s %s", s.Repository["url"], s.Repository["source"], s.Repository["subfolder"])
	case "website_url":
		return s.WebsiteURL
	case "icons":
		var srcs []string
		for _, i := range s.Icons {
			srcs = append(srcs, fmt.Sprint(i["src"]))
		}
		return strings.Join(srcs, " ")
	}
	return ""
}

// DeleteServer deletes server name and its versions. Contract:
// ErrNotFound if it does not exist; ErrEtagMismatch as UpdateServer;
// ErrFailedPrecondition, naming the entries, while a registry pins it.
func (t *Tx) DeleteServer(ctx context.Context, name string, expect int64) error {
	cur, err := t.lockedServer(ctx, name, expect)
	if err != nil {
		return err
	}
	pins, err := t.c.Entry.Query().Where(ententry.Server(name)).IDs(ctx)
	if err != nil {
		return err
	}
	if len(pins) > 0 {
		return fmt.Errorf("server %q is pinned by %s: unpin it first: %w", name, strings.Join(pins, ", "), errs.ErrFailedPrecondition)
	}
	if _, err := t.c.Version.Delete().Where(entversion.Server(name)).Exec(ctx); err != nil {
		return err
	}
	return t.c.Server.DeleteOneID(cur.ID).Exec(ctx)
}

// PurgeOrganization deletes everything the registry service holds of
// organization org (servers, versions, registries, entries, their change
// log, approvals) and returns the number of rows deleted. Contract: it is
// idempotent (the orgs service calls it when the organization is deleted,
// and again after, to catch a write that raced the deletion); nothing of
// another organization is touched, even one whose id has org as a prefix.
func (t *Tx) PurgeOrganization(ctx context.Context, org string) (int, error) {
	total := 0
	prefix := "orgs/" + org + "/"
	steps := []func() (int, error){
		func() (int, error) { return t.c.Approval.Delete().Where(entapproval.Organization(org)).Exec(ctx) },
		func() (int, error) { return t.c.Entry.Delete().Where(ententry.Organization(org)).Exec(ctx) },
		func() (int, error) {
			return t.c.EntryChange.Delete().Where(ententrychange.RegistryHasPrefix(prefix)).Exec(ctx)
		},
		func() (int, error) { return t.c.Registry.Delete().Where(entregistry.Organization(org)).Exec(ctx) },
		func() (int, error) { return t.c.Version.Delete().Where(entversion.Organization(org)).Exec(ctx) },
		func() (int, error) { return t.c.Server.Delete().Where(entserver.Organization(org)).Exec(ctx) },
	}
	for _, step := range steps {
		n, err := step()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
