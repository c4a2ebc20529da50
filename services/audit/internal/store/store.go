// Package store is the persistence of the audit service: sealed events in
// per-organization hash chains, chain heads and signed checkpoints, on ent
// (SQLite or PostgreSQL).
package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/services/audit/internal/ent"
	"github.com/pyleeai/pylee/services/audit/internal/ent/chainhead"
	"github.com/pyleeai/pylee/services/audit/internal/ent/checkpoint"
	"github.com/pyleeai/pylee/services/audit/internal/ent/event"
	"github.com/pyleeai/pylee/services/audit/internal/ent/migrate/migrations"
	"github.com/pyleeai/pylee/services/audit/internal/ent/predicate"
	"github.com/pyleeai/pylee/services/audit/internal/ent/schema"
)

// Schema is the PostgreSQL schema of the audit service.
const Schema = "audit"

// Store keeps the audit log.
type Store struct {
	client  *ent.Client
	dialect string
	sqlDB   *db.DB
	now     func() time.Time
}

// Migrations are the audit database's versioned migrations. The
// append-only triggers of audit_events are one of them (written by hand:
// atlas does not manage triggers), so a migrated database refuses any
// UPDATE or DELETE of an event (and TRUNCATE on PostgreSQL).
var Migrations = db.Migrations{Schema: Schema, FS: migrations.FS}

// Open opens the audit database at url. It does not migrate: Migrate does,
// and SchemaStatus tells whether the database is behind.
func Open(ctx context.Context, url string) (*Store, error) {
	d, err := db.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(d.Dialect, d.DB)))
	return &Store{client: client, dialect: d.Dialect, sqlDB: d, now: func() time.Time { return time.Now().UTC() }}, nil
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

// DB is the underlying database, for tests that tamper with it.
func (s *Store) DB() *db.DB { return s.sqlDB }

// Append seals events into their organizations' chains, in the order
// given, and stores them durably before returning. An event whose id is in
// the log already is skipped and counted as a duplicate. All of a call's
// events are stored in one transaction: all or none.
func (s *Store) Append(ctx context.Context, events []*auditv1.Event) (appended, duplicates int, err error) {
	err = db.RunTx(ctx, s.client.Tx, func(tx *ent.Tx) error {
		appended, duplicates = 0, 0
		ids := make([]string, len(events))
		for i, ev := range events {
			ids[i] = ev.GetId()
		}
		existing, err := tx.Event.Query().Where(event.IDIn(ids...)).IDs(ctx)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(events))
		for _, id := range existing {
			seen[id] = true
		}
		// Group by organization, keeping order within each.
		var orgs []string
		byOrg := map[string][]*auditv1.Event{}
		for _, ev := range events {
			if seen[ev.GetId()] {
				duplicates++
				continue
			}
			seen[ev.GetId()] = true
			org := ev.GetOrganization()
			if _, ok := byOrg[org]; !ok {
				orgs = append(orgs, org)
			}
			byOrg[org] = append(byOrg[org], ev)
		}
		sort.Strings(orgs) // a fixed lock order across concurrent appends
		received := s.now()
		for _, org := range orgs {
			n, err := s.appendOrg(ctx, tx, org, byOrg[org], received)
			if err != nil {
				return err
			}
			appended += n
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return appended, duplicates, nil
}

func (s *Store) appendOrg(ctx context.Context, tx *ent.Tx, org string, evs []*auditv1.Event, received time.Time) (int, error) {
	q := tx.ChainHead.Query().Where(chainhead.ID(org))
	if s.dialect == dialect.Postgres {
		q.ForUpdate()
	}
	head, err := q.Only(ctx)
	seq, prev := int64(0), auditlog.ZeroHash
	var epoch *ent.ChainHead // set when an organization of this id is created (again)
	switch {
	case err == nil:
		seq, prev = head.Sequence, head.Hash
	case ent.IsNotFound(err):
		// First event of this organization. Two first appends racing both
		// try to insert the head; the loser's unique violation aborts it and
		// the relay retries.
		if _, err := tx.ChainHead.Create().SetID(org).SetSequence(0).SetHash(auditlog.ZeroHash).Save(ctx); err != nil {
			return 0, fmt.Errorf("create chain head: %w", err)
		}
	default:
		return 0, err
	}
	builders := make([]*ent.EventCreate, 0, len(evs))
	for _, ev := range evs {
		ev.EventTime = timestamppb.New(ev.GetEventTime().AsTime().UTC().Truncate(time.Microsecond))
		seq++
		auditlog.Seal(ev, seq, prev)
		prev = ev.GetHash()
		if ev.GetAction() == auditlog.ActionOrganizationCreate && ev.GetOutcome() == auditlog.OutcomeOK {
			t := ev.GetEventTime().AsTime()
			epoch = &ent.ChainHead{EpochSequence: seq - 1, EpochTime: &t}
		}
		builders = append(builders, tx.Event.Create().
			SetID(ev.GetId()).SetOrganization(org).SetSequence(seq).
			SetEventTime(ev.GetEventTime().AsTime()).
			SetActorPrincipal(ev.GetActor().GetPrincipal()).SetActorKind(ev.GetActor().GetKind()).
			SetActorDisplayName(ev.GetActor().GetDisplayName()).
			SetAction(ev.GetAction()).SetResource(ev.GetResource()).SetOutcome(ev.GetOutcome()).
			SetRequestID(ev.GetRequestId()).SetClientAddress(ev.GetClientAddress()).SetUserAgent(ev.GetUserAgent()).
			SetChanges(toChanges(ev.GetChanges())).SetMetadata(ev.GetMetadata()).
			SetPreviousHash(ev.GetPreviousHash()).SetHash(ev.GetHash()).SetReceiveTime(received))
	}
	for start := 0; start < len(builders); start += 500 {
		end := min(start+500, len(builders))
		if _, err := tx.Event.CreateBulk(builders[start:end]...).Save(ctx); err != nil {
			return 0, fmt.Errorf("insert events: %w", err)
		}
	}
	up := tx.ChainHead.UpdateOneID(org).SetSequence(seq).SetHash(prev)
	if epoch != nil {
		up.SetEpochSequence(epoch.EpochSequence).SetEpochTime(*epoch.EpochTime)
	}
	if err := up.Exec(ctx); err != nil {
		return 0, fmt.Errorf("update chain head: %w", err)
	}
	return len(evs), nil
}

func toChanges(in []*auditv1.FieldChange) []schema.Change {
	if len(in) == 0 {
		return nil
	}
	out := make([]schema.Change, len(in))
	for i, c := range in {
		out[i] = schema.Change{Field: c.GetField(), OldValue: c.GetOldValue(), NewValue: c.GetNewValue()}
	}
	return out
}

// ToProto rebuilds the event a row stores.
func ToProto(e *ent.Event) *auditv1.Event {
	ev := &auditv1.Event{
		Name: names.Event{Org: e.Organization, Event: e.ID}.String(), Id: e.ID, Organization: e.Organization,
		EventTime: timestamppb.New(e.EventTime.UTC()),
		Actor:     &auditv1.Actor{Principal: e.ActorPrincipal, Kind: e.ActorKind, DisplayName: e.ActorDisplayName},
		Action:    e.Action, Resource: e.Resource, Outcome: e.Outcome, RequestId: e.RequestID,
		ClientAddress: e.ClientAddress, UserAgent: e.UserAgent, Sequence: e.Sequence,
		PreviousHash: e.PreviousHash, Hash: e.Hash,
	}
	for _, c := range e.Changes {
		ev.Changes = append(ev.Changes, &auditv1.FieldChange{Field: c.Field, OldValue: c.OldValue, NewValue: c.NewValue})
	}
	if len(e.Metadata) > 0 {
		ev.Metadata = e.Metadata
	}
	return ev
}

// EventQuery selects a page of an organization's events, newest first.
type EventQuery struct {
	Organization string
	// Before, when positive, keeps sequences below it (the cursor).
	Before int64
	Limit  int
	// Filters; empty means any.
	Actor, ActionPrefix, ResourcePrefix, Outcome string
	After, Until                                 time.Time // event_time >= After, < Until
	// Epoch, when set, keeps the events of the organization's current
	// incarnation only.
	Epoch *Epoch
}

// Epoch is where the current incarnation of an organization's chain
// starts: after the event at Sequence, with events from Time on (an event
// of an earlier, deleted organization delivered late sits after Sequence
// but before Time). The zero Epoch is a chain of one organization.
type Epoch struct {
	Sequence int64
	Time     time.Time
}

// Holds reports whether ev belongs to the incarnation that starts at e.
func (e Epoch) Holds(ev *auditv1.Event) bool {
	return ev.GetSequence() > e.Sequence && !ev.GetEventTime().AsTime().Before(e.Time)
}

// Epoch returns where the current incarnation of org's chain starts.
func (s *Store) Epoch(ctx context.Context, org string) (Epoch, error) {
	h, err := s.client.ChainHead.Get(ctx, org)
	if ent.IsNotFound(err) {
		return Epoch{}, nil
	}
	if err != nil {
		return Epoch{}, err
	}
	e := Epoch{Sequence: h.EpochSequence}
	if h.EpochTime != nil {
		e.Time = h.EpochTime.UTC()
	}
	return e, nil
}

// ListEvents returns events matching q, newest (highest sequence) first.
func (s *Store) ListEvents(ctx context.Context, q EventQuery) ([]*auditv1.Event, error) {
	preds := []predicate.Event{event.Organization(q.Organization)}
	if q.Before > 0 {
		preds = append(preds, event.SequenceLT(q.Before))
	}
	if q.Actor != "" {
		preds = append(preds, event.ActorPrincipal(q.Actor))
	}
	if q.ActionPrefix != "" {
		preds = append(preds, event.ActionHasPrefix(q.ActionPrefix))
	}
	if q.ResourcePrefix != "" {
		preds = append(preds, event.ResourceHasPrefix(q.ResourcePrefix))
	}
	if q.Outcome != "" {
		preds = append(preds, event.Outcome(q.Outcome))
	}
	if !q.After.IsZero() {
		preds = append(preds, event.EventTimeGTE(q.After))
	}
	if !q.Until.IsZero() {
		preds = append(preds, event.EventTimeLT(q.Until))
	}
	if q.Epoch != nil {
		preds = append(preds, event.SequenceGT(q.Epoch.Sequence))
		if !q.Epoch.Time.IsZero() {
			preds = append(preds, event.EventTimeGTE(q.Epoch.Time))
		}
	}
	rows, err := s.client.Event.Query().Where(preds...).Order(ent.Desc(event.FieldSequence)).Limit(q.Limit).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*auditv1.Event, len(rows))
	for i, r := range rows {
		out[i] = ToProto(r)
	}
	return out, nil
}

// GetEvent returns event id of org, or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, org, id string) (*auditv1.Event, error) {
	e, err := s.client.Event.Query().Where(event.ID(id), event.Organization(org)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("event %q: %w", names.Event{Org: org, Event: id}.String(), errs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return ToProto(e), nil
}

// ScanChain calls fn for org's events with from <= sequence <= to (to 0:
// the head), oldest first, reading in pages.
func (s *Store) ScanChain(ctx context.Context, org string, from, to int64, fn func(*auditv1.Event) error) error {
	next := from
	for {
		q := s.client.Event.Query().Where(event.Organization(org), event.SequenceGTE(next)).
			Order(ent.Asc(event.FieldSequence)).Limit(500)
		if to > 0 {
			q.Where(event.SequenceLTE(to))
		}
		rows, err := q.All(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(ToProto(r)); err != nil {
				return err
			}
			next = r.Sequence + 1
		}
		if len(rows) < 500 {
			return nil
		}
	}
}

// Head returns the last sequence and hash of org's chain and the sequence of
// its last checkpoint; zeros for an organization with no events.
func (s *Store) Head(ctx context.Context, org string) (seq int64, hash string, checkpointSeq int64, err error) {
	h, err := s.client.ChainHead.Get(ctx, org)
	if ent.IsNotFound(err) {
		return 0, auditlog.ZeroHash, 0, nil
	}
	if err != nil {
		return 0, "", 0, err
	}
	return h.Sequence, h.Hash, h.CheckpointSequence, nil
}

// OrganizationsBehindCheckpoint lists organizations whose head is past
// their last checkpoint.
func (s *Store) OrganizationsBehindCheckpoint(ctx context.Context) ([]string, error) {
	heads, err := s.client.ChainHead.Query().All(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range heads {
		if h.Sequence > h.CheckpointSequence {
			out = append(out, h.ID)
		}
	}
	return out, nil
}

// PutCheckpoint stores a signed checkpoint and moves the head's checkpoint
// mark. Storing the same checkpoint twice is a no-op.
func (s *Store) PutCheckpoint(ctx context.Context, cp *auditv1.Checkpoint) error {
	err := db.RunTx(ctx, s.client.Tx, func(tx *ent.Tx) error {
		err := tx.Checkpoint.Create().SetOrganization(cp.GetOrganization()).SetSequence(cp.GetSequence()).
			SetHash(cp.GetHash()).SetCreateTime(cp.GetCreateTime().AsTime()).SetSignature(cp.GetSignature()).
			SetPublicKey(cp.GetPublicKey()).Exec(ctx)
		if err != nil {
			return err
		}
		return tx.ChainHead.Update().Where(chainhead.ID(cp.GetOrganization()), chainhead.CheckpointSequenceLT(cp.GetSequence())).
			SetCheckpointSequence(cp.GetSequence()).Exec(ctx)
	})
	if ent.IsConstraintError(err) {
		return nil // stored already
	}
	return err
}

func toCheckpoint(c *ent.Checkpoint) *auditv1.Checkpoint {
	return &auditv1.Checkpoint{Organization: c.Organization, Sequence: c.Sequence, Hash: c.Hash,
		CreateTime: timestamppb.New(c.CreateTime.UTC()), Signature: c.Signature, PublicKey: c.PublicKey}
}

// LatestCheckpoint returns org's newest checkpoint, or ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context, org string) (*auditv1.Checkpoint, error) {
	c, err := s.client.Checkpoint.Query().Where(checkpoint.Organization(org)).Order(ent.Desc(checkpoint.FieldSequence)).First(ctx)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("organization %q has no checkpoint yet: %w", org, errs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return toCheckpoint(c), nil
}

// Checkpoints returns org's checkpoints with from <= sequence <= to (to 0:
// all), oldest first.
func (s *Store) Checkpoints(ctx context.Context, org string, from, to int64) ([]*auditv1.Checkpoint, error) {
	q := s.client.Checkpoint.Query().Where(checkpoint.Organization(org), checkpoint.SequenceGTE(from)).Order(ent.Asc(checkpoint.FieldSequence))
	if to > 0 {
		q.Where(checkpoint.SequenceLTE(to))
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*auditv1.Checkpoint, len(rows))
	for i, r := range rows {
		out[i] = toCheckpoint(r)
	}
	return out, nil
}

// CountEvents counts org's events (all organizations when org is empty).
func (s *Store) CountEvents(ctx context.Context, org string) (int, error) {
	q := s.client.Event.Query()
	if org != "" {
		q.Where(event.Organization(org))
	}
	return q.Count(ctx)
}
