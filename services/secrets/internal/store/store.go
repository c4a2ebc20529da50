// Package store is the persistence of the secrets service on ent (SQLite
// or PostgreSQL): the keyring's sealed values, the change log that
// WatchValues streams, and the audit outbox.
//
// One pattern for every write, as in every Pylee service: a handler opens
// a unit of work with Store.Tx, changes what it changes (a backend's Put,
// Tx.AddChange), records its audit event with Tx.Audit, and returns; the
// store commits it all together, then runs the AfterCommit hooks.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/secrets/internal/ent"
	"github.com/pyleeai/pylee/services/secrets/internal/ent/migrate/migrations"
	entchange "github.com/pyleeai/pylee/services/secrets/internal/ent/valuechange"
)

// Schema is the PostgreSQL schema of the secrets service.
const Schema = "secrets"

// Migrations are the secrets database's versioned migrations.
var Migrations = db.Migrations{Schema: Schema, FS: migrations.FS}

// Store keeps the secrets service's data.
type Store struct {
	client    *ent.Client
	db        *db.DB
	dialect   string
	now       func() time.Time
	committed db.Committed
}

// Open opens the secrets database at url (migrated by Migrate).
func Open(ctx context.Context, url string) (*Store, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	return &Store{client: client, db: d, dialect: d.Dialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}, nil
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

// Dialect is "sqlite3" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// AfterCommit registers fn to run after every committed unit of work.
func (s *Store) AfterCommit(fn func()) { s.committed.Add(fn) }

// Tx is a unit of work (or, from Read, reads outside one).
type Tx struct {
	s      *Store
	c      *ent.Client
	tx     *ent.Tx
	events []*auditv1.Event
}

// Read returns a Tx reading outside any transaction.
func (s *Store) Read() *Tx { return &Tx{s: s, c: s.client} }

// Tx runs fn in a transaction, committing when fn returns nil; the events
// given to Tx.Audit are written to the outbox in it.
func (s *Store) Tx(ctx context.Context, fn func(*Tx) error) error {
	err := db.RunTx(ctx, s.client.Tx, func(tx *ent.Tx) error {
		t := &Tx{s: s, c: tx.Client(), tx: tx}
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

// Client is the transaction's ent client, for the keyring backend.
func (t *Tx) Client() *ent.Client { return t.c }

// Locking reports whether reads in t may lock rows (PostgreSQL, in a
// transaction).
func (t *Tx) Locking() bool { return t.tx != nil && t.s.dialect == "postgres" }

// Now is the store's clock.
func (t *Tx) Now() time.Time { return t.s.now() }

// Audit records ev with the transaction.
func (t *Tx) Audit(ev *auditv1.Event) { t.events = append(t.events, ev) }

// Change is one change of an organization's values.
type Change struct {
	Organization string
	Revision     int64
	Key          string
	Version      int64 // 0: deleted
	Type         string
	Time         time.Time
}

// AddChange records a change at the organization's next revision and
// returns it. Contract: revisions of an organization are 1, 2, 3, ... with
// no gap and no repeat, even under concurrent writers (a writer that loses
// the race for a revision fails with a constraint error and its unit of
// work rolls back; the caller retries it).
func (t *Tx) AddChange(ctx context.Context, c Change) (int64, error) {
	last, err := t.c.ValueChange.Query().Where(entchange.Organization(c.Organization)).
		Order(ent.Desc(entchange.FieldRevision)).First(ctx)
	switch {
	case ent.IsNotFound(err):
		c.Revision = 1
	case err != nil:
		return 0, err
	default:
		c.Revision = last.Revision + 1
	}
	err = t.c.ValueChange.Create().SetOrganization(c.Organization).SetRevision(c.Revision).SetKey(c.Key).
		SetVersion(c.Version).SetType(c.Type).SetTime(c.Time).Exec(ctx)
	if ent.IsConstraintError(err) {
		return 0, fmt.Errorf("revision %d of %s taken meanwhile: %w", c.Revision, c.Organization, ErrRetry)
	}
	return c.Revision, err
}

// ErrRetry marks a unit of work that lost a race and may be run again.
var ErrRetry = fmt.Errorf("lost a race: retry")

// Changes returns the organization's changes after revision, oldest first,
// at most limit.
func (t *Tx) Changes(ctx context.Context, org string, after int64, limit int) ([]Change, error) {
	rows, err := t.c.ValueChange.Query().Where(entchange.Organization(org), entchange.RevisionGT(after)).
		Order(ent.Asc(entchange.FieldRevision)).Limit(limit).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Change, len(rows))
	for i, r := range rows {
		out[i] = Change{Organization: r.Organization, Revision: r.Revision, Key: r.Key, Version: r.Version, Type: r.Type, Time: r.Time.UTC()}
	}
	return out, nil
}

// Revision is the organization's latest revision (0: no change yet).
func (t *Tx) Revision(ctx context.Context, org string) (int64, error) {
	last, err := t.c.ValueChange.Query().Where(entchange.Organization(org)).Order(ent.Desc(entchange.FieldRevision)).First(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return last.Revision, nil
}

// LockOrganization serializes the units of work that change org's values:
// on PostgreSQL a transaction advisory lock, held until commit; SQLite
// serializes every write transaction already.
func (t *Tx) LockOrganization(ctx context.Context, org string) error {
	if !t.Locking() {
		return nil
	}
	_, err := t.tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "pylee.secrets:"+org)
	return err
}

// DeleteChanges deletes the organization's change log (the organization is
// being deleted).
func (t *Tx) DeleteChanges(ctx context.Context, org string) error {
	_, err := t.c.ValueChange.Delete().Where(entchange.Organization(org)).Exec(ctx)
	return err
}
