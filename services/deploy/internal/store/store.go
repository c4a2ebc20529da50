// Package store is the persistence of the deploy service on ent (SQLite or
// PostgreSQL): each deployment's record (the entry it follows and its
// rollout), each registry's watch cursor, and the audit outbox.
//
// One pattern for every write, as in every Pylee service: open a unit of
// work with Store.Tx, change what changes, record the audit event with
// Tx.Audit; the store commits it all together, then runs the AfterCommit
// hooks (the relay).
package store

import (
	"context"
	"database/sql"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/deploy/internal/ent"
	entdeployment "github.com/pyleeai/pylee/services/deploy/internal/ent/deployment"
	"github.com/pyleeai/pylee/services/deploy/internal/ent/migrate/migrations"
	entcursor "github.com/pyleeai/pylee/services/deploy/internal/ent/registrycursor"
)

// Schema is the PostgreSQL schema of the deploy service.
const Schema = "deploy"

// Migrations are the deploy database's versioned migrations.
var Migrations = db.Migrations{Schema: Schema, FS: migrations.FS}

// Store keeps the deploy service's data.
type Store struct {
	client    *ent.Client
	db        *db.DB
	dialect   string
	committed db.Committed
}

// Open opens the deploy database at url (migrated by Migrate).
func Open(ctx context.Context, url string) (*Store, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	return &Store{client: client, db: d, dialect: d.Dialect}, nil
}

// Migrate applies the pending migrations to the database at url.
func Migrate(ctx context.Context, url string) error {
	_, err := Migrations.Apply(ctx, url)
	return err
}

// Close closes the database.
func (s *Store) Close() error { return s.client.Close() }

// OutboxDB is the database holding the outbox, for the relay.
func (s *Store) OutboxDB() (*sql.DB, string) { return s.db.DB, s.dialect }

// AfterCommit registers fn to run after every committed unit of work.
func (s *Store) AfterCommit(fn func()) { s.committed.Add(fn) }

// Record is a stored deployment record.
type Record struct {
	Name, Organization, Registry string
	// Data is the service's JSON of the record.
	Data []byte
}

// Deployments returns every stored record.
func (s *Store) Deployments(ctx context.Context) ([]Record, error) {
	rows, err := s.client.Deployment.Query().Order(ent.Asc(entdeployment.FieldName)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(rows))
	for _, r := range rows {
		out = append(out, Record{Name: r.Name, Organization: r.Organization, Registry: r.Registry, Data: r.Record})
	}
	return out, nil
}

// Cursor returns the last applied revision of registry (0 when none).
func (s *Store) Cursor(ctx context.Context, registry string) (int64, error) {
	c, err := s.client.RegistryCursor.Query().Where(entcursor.Registry(registry)).Only(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.Revision, nil
}

// Tx is a unit of work.
type Tx struct {
	c      *ent.Client
	events []*auditv1.Event
}

// Tx runs fn in a transaction, committing when fn returns nil; the events
// given to Tx.Audit are written to the outbox in it.
func (s *Store) Tx(ctx context.Context, fn func(*Tx) error) error {
	err := db.RunTx(ctx, s.client.Tx, func(tx *ent.Tx) error {
		t := &Tx{c: tx.Client()}
		if err := fn(t); err != nil {
			return err
		}
		for _, ev := range t.events {
			if err := outbox.Insert(ctx, tx, s.dialect, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.committed.Run()
	return nil
}

// Audit records ev with the transaction.
func (t *Tx) Audit(ev *auditv1.Event) { t.events = append(t.events, ev) }

// SaveDeployment creates or replaces r.
func (t *Tx) SaveDeployment(ctx context.Context, r Record) error {
	return t.c.Deployment.Create().SetName(r.Name).SetOrganization(r.Organization).SetRegistry(r.Registry).
		SetRecord(r.Data).SetUpdateTime(time.Now().UTC()).
		OnConflictColumns(entdeployment.FieldName).UpdateRecord().UpdateUpdateTime().Exec(ctx)
}

// DeleteDeployment removes the record of name, if any.
func (t *Tx) DeleteDeployment(ctx context.Context, name string) error {
	_, err := t.c.Deployment.Delete().Where(entdeployment.Name(name)).Exec(ctx)
	return err
}

// SetCursor records the last applied revision of registry.
func (t *Tx) SetCursor(ctx context.Context, org, registry string, revision int64) error {
	return t.c.RegistryCursor.Create().SetRegistry(registry).SetOrganization(org).SetRevision(revision).
		OnConflictColumns(entcursor.FieldRegistry).UpdateRevision().Exec(ctx)
}

// PurgeRegistry removes the records and cursor of registry (deleted, or
// deployments turned off).
func (t *Tx) PurgeRegistry(ctx context.Context, registry string) error {
	if _, err := t.c.Deployment.Delete().Where(entdeployment.Registry(registry)).Exec(ctx); err != nil {
		return err
	}
	_, err := t.c.RegistryCursor.Delete().Where(entcursor.Registry(registry)).Exec(ctx)
	return err
}
