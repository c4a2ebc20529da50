// Package store is the persistence of the registry service on ent
// (SQLite or PostgreSQL), with the audit outbox.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"entgo.io/ent/dialect"
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

// Store keeps the registry's data. Changes take their audit event (nil:
// none), written to the outbox in the same transaction.
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

// CreateServer stores srv with revision 1. It returns ErrAlreadyExists if
// the name or, in the organization, the server name is taken. A repeated
// requestID returns the server it created if the name matches, else
// ErrRequestIDReused.
func (s *Store) CreateServer(ctx context.Context, srv Server, requestID string, ev *auditv1.Event) (Server, error) {
	var out Server
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		if requestID != "" {
			prev, err := tx.Server.Query().Where(entserver.CreateRequestID(requestID)).Only(ctx)
			switch {
			case err == nil && prev.ID == srv.Name:
				out = toServer(prev)
				return nil
			case err == nil:
				return fmt.Errorf("request_id %q created %q: %w", requestID, prev.ID, errs.ErrRequestIDReused)
			case !ent.IsNotFound(err):
				return err
			}
		}
		t := s.now()
		c := tx.Server.Create().SetID(srv.Name).SetOrganization(srv.Organization).SetServerName(srv.ServerName).
			SetTitle(srv.Title).SetDescription(srv.Description).SetRepository(srv.Repository).SetWebsiteURL(srv.WebsiteURL).
			SetIcons(srv.Icons).SetCreateTime(t).SetUpdateTime(t)
		if requestID != "" {
			c.SetCreateRequestID(requestID)
		}
		created, err := c.Save(ctx)
		if ent.IsConstraintError(err) {
			return fmt.Errorf("server %q or server name %q: %w", srv.Name, srv.ServerName, errs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		out = toServer(created)
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
}

// GetServer returns server name, or ErrNotFound.
func (s *Store) GetServer(ctx context.Context, name string) (Server, error) {
	return s.Read().Server(ctx, name)
}

// ListServers returns the servers matching q, ordered by name.
func (s *Store) ListServers(ctx context.Context, q ServerQuery) ([]Server, error) {
	preds := []predicate.Server{entserver.Organization(q.Organization)}
	if q.After != "" {
		preds = append(preds, entserver.IDGT(q.After))
	}
	if q.Search != "" {
		preds = append(preds, entserver.Or(entserver.ServerNameContainsFold(q.Search), entserver.TitleContainsFold(q.Search),
			entserver.DescriptionContainsFold(q.Search)))
	}
	rows, err := s.client.Server.Query().Where(preds...).Order(ent.Asc(entserver.FieldID)).Limit(q.Limit).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Server, len(rows))
	for i, r := range rows {
		out[i] = toServer(r)
	}
	return out, nil
}

// locked reads server name, row-locked on PostgreSQL, checking its
// revision against expect (0: any).
func (s *Store) locked(ctx context.Context, tx *ent.Tx, name string, expect int64) (*ent.Server, error) {
	q := tx.Server.Query().Where(entserver.ID(name))
	if s.dialect == dialect.Postgres {
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

// UpdateServer sets the named fields of srv on the stored server; the
// revision check and the change are atomic.
func (s *Store) UpdateServer(ctx context.Context, srv Server, fields []string, expect int64, ev *auditv1.Event) (Server, error) {
	var out Server
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		cur, err := s.locked(ctx, tx, srv.Name, expect)
		if err != nil {
			return err
		}
		before := toServer(cur)
		u := tx.Server.UpdateOneID(srv.Name).Where(entserver.Revision(cur.Revision)).SetRevision(cur.Revision + 1).SetUpdateTime(s.now())
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
				return fmt.Errorf("field %q is not updatable: %w", f, errs.ErrInvalidArgument)
			}
		}
		updated, err := u.Save(ctx)
		if err != nil {
			return err
		}
		out = toServer(updated)
		if ev != nil {
			for _, f := range fields {
				if o, n := fieldString(before, f), fieldString(out, f); o != n {
					ev.Changes = append(ev.Changes, outbox.Change(f, o, n))
				}
			}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return out, err
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

// DeleteServer deletes server name (revision checked when expect is set).
func (s *Store) DeleteServer(ctx context.Context, name string, expect int64, ev *auditv1.Event) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		cur, err := s.locked(ctx, tx, name, expect)
		if err != nil {
			return err
		}
		pins, err := tx.Entry.Query().Where(ententry.Server(name)).IDs(ctx)
		if err != nil {
			return err
		}
		if len(pins) > 0 {
			return fmt.Errorf("server %q is pinned by %s: unpin it first: %w", name, strings.Join(pins, ", "), errs.ErrFailedPrecondition)
		}
		if _, err := tx.Version.Delete().Where(entversion.Server(name)).Exec(ctx); err != nil {
			return err
		}
		if err := tx.Server.DeleteOneID(cur.ID).Exec(ctx); err != nil {
			return err
		}
		return s.writeOutbox(ctx, tx, ev)
	})
}

// PurgeOrganization deletes everything the registry service holds of
// organization org (servers, versions, registries, entries, their change
// log, approvals) in one transaction with ev. It is idempotent: the orgs
// service calls it when the organization is deleted, and again after, to
// catch a write that raced the deletion.
func (s *Store) PurgeOrganization(ctx context.Context, org string, ev *auditv1.Event) (int, error) {
	total := 0
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		total = 0
		prefix := "orgs/" + org + "/"
		steps := []func() (int, error){
			func() (int, error) { return tx.Approval.Delete().Where(entapproval.Organization(org)).Exec(ctx) },
			func() (int, error) { return tx.Entry.Delete().Where(ententry.Organization(org)).Exec(ctx) },
			func() (int, error) {
				return tx.EntryChange.Delete().Where(ententrychange.RegistryHasPrefix(prefix)).Exec(ctx)
			},
			func() (int, error) { return tx.Registry.Delete().Where(entregistry.Organization(org)).Exec(ctx) },
			func() (int, error) { return tx.Version.Delete().Where(entversion.Organization(org)).Exec(ctx) },
			func() (int, error) { return tx.Server.Delete().Where(entserver.Organization(org)).Exec(ctx) },
		}
		for _, step := range steps {
			n, err := step()
			if err != nil {
				return err
			}
			total += n
		}
		if total == 0 {
			return nil // nothing held: no event for a no-op
		}
		if ev != nil {
			ev.Metadata = map[string]string{"deleted_rows": fmt.Sprint(total)}
		}
		return s.writeOutbox(ctx, tx, ev)
	})
	return total, err
}
