package store

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/registry/internal/ent"
	entapproval "github.com/pyleeai/pylee/services/registry/internal/ent/approval"
	ententry "github.com/pyleeai/pylee/services/registry/internal/ent/entry"
	entchange "github.com/pyleeai/pylee/services/registry/internal/ent/entrychange"
	entregistry "github.com/pyleeai/pylee/services/registry/internal/ent/registry"
	entserver "github.com/pyleeai/pylee/services/registry/internal/ent/server"
	entversion "github.com/pyleeai/pylee/services/registry/internal/ent/version"
)

// Version is a stored server version. Everything but Status,
// StatusMessage and UpdateTime is immutable, but for ObservedTools, which
// a version without Tools records once (ToolsObserved set).
type Version struct {
	Name, Organization, Server, Version, Precedence string
	Prerelease                                      bool
	ServerJSON                                      []byte
	ReleaseNotes                                    string
	Tools                                           []byte
	Digest, Creator, Status, StatusMessage          string
	CreateTime, UpdateTime                          time.Time
	ObservedTools                                   []byte
	ToolsObserved                                   *time.Time
}

// Registry is a stored registry; Settings is the protojson of its own
// (not inherited) settings.
type Registry struct {
	Name, Organization, Description, Parent string
	Settings                                []byte
	EntryRevision                           int64
	CreateTime, UpdateTime                  time.Time
	Revision                                int64
}

// Entry is a stored pin.
type Entry struct {
	Name, Organization, Registry, Server, ServerName, Version, VersionRange string
	Revision                                                                int64
	PinnedBy                                                                string
	CreateTime, UpdateTime                                                  time.Time
}

// Change is one change of a registry's entries; Entry is the protojson of
// the entry.
type Change struct {
	Registry string
	Revision int64
	Type     string
	Entry    []byte
	Time     time.Time
}

// Approval is a stored approval request; Body is its protojson.
type Approval struct {
	Name, Organization, Registry, State string
	Body                                []byte
	CreateTime, UpdateTime              time.Time
}

// Tx reads and writes the registry database, inside a transaction when
// made by Store.Tx.
type Tx struct {
	s      *Store
	c      *ent.Client
	tx     *ent.Tx
	events []*auditv1.Event
}

// Read returns a Tx reading outside any transaction.
func (s *Store) Read() *Tx { return &Tx{s: s, c: s.client} }

// Tx runs fn in a transaction, committing when fn returns nil. The audit
// events given to Tx.Audit are written to the outbox in the transaction.
func (s *Store) Tx(ctx context.Context, fn func(*Tx) error) error {
	return s.withTx(ctx, func(tx *ent.Tx) error {
		t := &Tx{s: s, c: tx.Client(), tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		for _, ev := range t.events {
			if err := s.writeOutbox(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// Now is the store's clock.
func (t *Tx) Now() time.Time { return t.s.now() }

// Audit records ev with the transaction.
func (t *Tx) Audit(ev *auditv1.Event) { t.events = append(t.events, ev) }

func (t *Tx) lock() bool { return t.tx != nil && t.s.dialect == dialect.Postgres }

// Server returns server name.
func (t *Tx) Server(ctx context.Context, name string) (Server, error) {
	e, err := t.c.Server.Get(ctx, name)
	if ent.IsNotFound(err) {
		return Server{}, fmt.Errorf("server %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Server{}, err
	}
	return toServer(e), nil
}

// ServerByName returns the organization's server with the official name.
func (t *Tx) ServerByName(ctx context.Context, org, serverName string) (Server, error) {
	e, err := t.c.Server.Query().Where(entserver.Organization(org), entserver.ServerName(serverName)).Only(ctx)
	if ent.IsNotFound(err) {
		return Server{}, fmt.Errorf("server %q: %w", serverName, errs.ErrNotFound)
	}
	if err != nil {
		return Server{}, err
	}
	return toServer(e), nil
}

func toVersion(e *ent.Version) Version {
	v := Version{Name: e.ID, Organization: e.Organization, Server: e.Server, Version: e.Version, Precedence: e.Precedence,
		Prerelease: e.Prerelease, ServerJSON: []byte(e.ServerJSON), ReleaseNotes: e.ReleaseNotes, Tools: []byte(e.Tools),
		Digest: e.Digest, Creator: e.Creator, Status: e.Status, StatusMessage: e.StatusMessage,
		CreateTime: e.CreateTime.UTC(), UpdateTime: e.UpdateTime.UTC(), ObservedTools: []byte(e.ObservedTools)}
	if e.ToolsObservedTime != nil {
		t := e.ToolsObservedTime.UTC()
		v.ToolsObserved = &t
	}
	return v
}

// Versions returns every version of server, in no particular order.
func (t *Tx) Versions(ctx context.Context, server string) ([]Version, error) {
	rows, err := t.c.Version.Query().Where(entversion.Server(server)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Version, len(rows))
	for i, r := range rows {
		out[i] = toVersion(r)
	}
	return out, nil
}

// Version returns version name.
func (t *Tx) Version(ctx context.Context, name string) (Version, error) {
	e, err := t.c.Version.Get(ctx, name)
	if ent.IsNotFound(err) {
		return Version{}, fmt.Errorf("version %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Version{}, err
	}
	return toVersion(e), nil
}

// VersionsByName returns the named versions that exist, by name.
func (t *Tx) VersionsByName(ctx context.Context, names []string) (map[string]Version, error) {
	out := map[string]Version{}
	for len(names) > 0 {
		n := min(len(names), 500)
		rows, err := t.c.Version.Query().Where(entversion.IDIn(names[:n]...)).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.ID] = toVersion(r)
		}
		names = names[n:]
	}
	return out, nil
}

// InsertVersion stores v; ErrAlreadyExists when a version of equal
// precedence exists.
func (t *Tx) InsertVersion(ctx context.Context, v Version) error {
	err := t.c.Version.Create().SetID(v.Name).SetOrganization(v.Organization).SetServer(v.Server).SetVersion(v.Version).
		SetPrecedence(v.Precedence).SetPrerelease(v.Prerelease).SetServerJSON(string(v.ServerJSON)).SetReleaseNotes(v.ReleaseNotes).
		SetTools(string(v.Tools)).SetDigest(v.Digest).SetCreator(v.Creator).SetStatus(v.Status).SetStatusMessage(v.StatusMessage).
		SetCreateTime(v.CreateTime).SetUpdateTime(v.UpdateTime).Exec(ctx)
	if ent.IsConstraintError(err) {
		return fmt.Errorf("version %s of %q (or one of equal precedence): %w", v.Version, v.Server, errs.ErrAlreadyExists)
	}
	return err
}

// SetVersionStatus sets the status of version name: the only change a
// version ever takes.
func (t *Tx) SetVersionStatus(ctx context.Context, name, status, message string) (Version, error) {
	e, err := t.c.Version.UpdateOneID(name).SetStatus(status).SetStatusMessage(message).SetUpdateTime(t.Now()).Save(ctx)
	if ent.IsNotFound(err) {
		return Version{}, fmt.Errorf("version %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Version{}, err
	}
	return toVersion(e), nil
}

// RecordObservedTools records tools (their stored form) as what version
// name's server first listed, and bumps its update time (so the registry
// snapshots that show it are rendered again). ErrFailedPrecondition when
// the version has published tools or recorded observed ones already.
func (t *Tx) RecordObservedTools(ctx context.Context, name string, tools []byte) (Version, error) {
	n, err := t.c.Version.Update().Where(entversion.ID(name), entversion.Tools("[]"), entversion.ToolsObservedTimeIsNil()).
		SetObservedTools(string(tools)).SetToolsObservedTime(t.Now()).SetUpdateTime(t.Now()).Save(ctx)
	if err != nil {
		return Version{}, err
	}
	if n == 0 {
		v, err := t.Version(ctx, name)
		if err != nil {
			return Version{}, err
		}
		what := "published tools"
		if v.ToolsObserved != nil {
			what = "tools observed at " + v.ToolsObserved.Format(time.RFC3339)
		}
		return Version{}, fmt.Errorf("version %q has %s already: %w", name, what, errs.ErrFailedPrecondition)
	}
	return t.Version(ctx, name)
}

func toRegistry(e *ent.Registry) Registry {
	return Registry{Name: e.ID, Organization: e.Organization, Description: e.Description, Parent: e.Parent, Settings: []byte(e.Settings),
		EntryRevision: e.EntryRevision, CreateTime: e.CreateTime.UTC(), UpdateTime: e.UpdateTime.UTC(), Revision: e.Revision}
}

// Registry returns registry name, row-locked in a PostgreSQL transaction
// when lock is set.
func (t *Tx) Registry(ctx context.Context, name string, lock bool) (Registry, error) {
	q := t.c.Registry.Query().Where(entregistry.ID(name))
	if lock && t.lock() {
		q.ForUpdate()
	}
	e, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return Registry{}, fmt.Errorf("registry %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Registry{}, err
	}
	return toRegistry(e), nil
}

// RegistryByRequestID returns the registry created with requestID.
func (t *Tx) RegistryByRequestID(ctx context.Context, requestID string) (Registry, bool, error) {
	e, err := t.c.Registry.Query().Where(entregistry.CreateRequestID(requestID)).Only(ctx)
	if ent.IsNotFound(err) {
		return Registry{}, false, nil
	}
	if err != nil {
		return Registry{}, false, err
	}
	return toRegistry(e), true, nil
}

// Registries returns the organization's registries after the name after,
// ordered by name, at most limit (0: all).
func (t *Tx) Registries(ctx context.Context, org, after string, limit int) ([]Registry, error) {
	q := t.c.Registry.Query().Where(entregistry.Organization(org), entregistry.IDGT(after)).Order(ent.Asc(entregistry.FieldID))
	if limit > 0 {
		q.Limit(limit)
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Registry, len(rows))
	for i, r := range rows {
		out[i] = toRegistry(r)
	}
	return out, nil
}

// InsertRegistry stores r with revision 1.
func (t *Tx) InsertRegistry(ctx context.Context, r Registry, requestID string) error {
	c := t.c.Registry.Create().SetID(r.Name).SetOrganization(r.Organization).SetDescription(r.Description).SetParent(r.Parent).
		SetSettings(string(r.Settings)).SetCreateTime(r.CreateTime).SetUpdateTime(r.UpdateTime)
	if requestID != "" {
		c.SetCreateRequestID(requestID)
	}
	err := c.Exec(ctx)
	if ent.IsConstraintError(err) {
		return fmt.Errorf("registry %q: %w", r.Name, errs.ErrAlreadyExists)
	}
	return err
}

// UpdateRegistry writes description, parent and settings of r if its
// stored revision is still r.Revision, and returns the stored result.
func (t *Tx) UpdateRegistry(ctx context.Context, r Registry) (Registry, error) {
	e, err := t.c.Registry.UpdateOneID(r.Name).Where(entregistry.Revision(r.Revision)).SetDescription(r.Description).
		SetParent(r.Parent).SetSettings(string(r.Settings)).SetRevision(r.Revision + 1).SetUpdateTime(t.Now()).Save(ctx)
	if ent.IsNotFound(err) {
		return Registry{}, fmt.Errorf("registry %q changed meanwhile: %w", r.Name, errs.ErrEtagMismatch)
	}
	if err != nil {
		return Registry{}, err
	}
	return toRegistry(e), nil
}

// DeleteRegistry deletes registry name with its entry history and
// approvals; the caller checks it has no entries and no children.
func (t *Tx) DeleteRegistry(ctx context.Context, name string) error {
	if _, err := t.c.EntryChange.Delete().Where(entchange.Registry(name)).Exec(ctx); err != nil {
		return err
	}
	if _, err := t.c.Approval.Delete().Where(entapproval.Registry(name)).Exec(ctx); err != nil {
		return err
	}
	return t.c.Registry.DeleteOneID(name).Exec(ctx)
}

// Children counts the registries whose parent is name.
func (t *Tx) Children(ctx context.Context, name string) (int, error) {
	return t.c.Registry.Query().Where(entregistry.Parent(name)).Count(ctx)
}

// NextRevision increments and returns the entry revision of registry
// name; call it with the registry locked.
func (t *Tx) NextRevision(ctx context.Context, name string) (int64, error) {
	if err := t.c.Registry.UpdateOneID(name).AddEntryRevision(1).Exec(ctx); err != nil {
		return 0, err
	}
	r, err := t.c.Registry.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	return r.EntryRevision, nil
}

func toEntry(e *ent.Entry) Entry {
	return Entry{Name: e.ID, Organization: e.Organization, Registry: e.Registry, Server: e.Server, ServerName: e.ServerName,
		Version: e.Version, VersionRange: e.VersionRange, Revision: e.Revision, PinnedBy: e.PinnedBy,
		CreateTime: e.CreateTime.UTC(), UpdateTime: e.UpdateTime.UTC()}
}

// Entry returns entry name; ok is false when there is none.
func (t *Tx) Entry(ctx context.Context, name string) (Entry, bool, error) {
	e, err := t.c.Entry.Get(ctx, name)
	if ent.IsNotFound(err) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	return toEntry(e), true, nil
}

// EntryQuery selects entries of a registry.
type EntryQuery struct {
	Registry     string
	After        string // the last entry name of the previous page
	Limit        int    // 0: all
	Search       string // in the server's official name, case-insensitive
	ServerName   string // exactly this official name
	Version      string // exactly this version in force
	UpdatedSince time.Time
}

// Entries returns the entries matching q, ordered by name.
func (t *Tx) Entries(ctx context.Context, q EntryQuery) ([]Entry, error) {
	qq := t.c.Entry.Query().Where(ententry.Registry(q.Registry)).Order(ent.Asc(ententry.FieldID))
	if q.After != "" {
		qq.Where(ententry.IDGT(q.After))
	}
	if q.Search != "" {
		qq.Where(ententry.ServerNameContainsFold(q.Search))
	}
	if q.ServerName != "" {
		qq.Where(ententry.ServerName(q.ServerName))
	}
	if q.Version != "" {
		qq.Where(ententry.Version(q.Version))
	}
	if !q.UpdatedSince.IsZero() {
		qq.Where(ententry.UpdateTimeGTE(q.UpdatedSince))
	}
	if q.Limit > 0 {
		qq.Limit(q.Limit)
	}
	rows, err := qq.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = toEntry(r)
	}
	return out, nil
}

// EntriesOfServer returns every entry pinning server, in any registry.
func (t *Tx) EntriesOfServer(ctx context.Context, server string) ([]Entry, error) {
	rows, err := t.c.Entry.Query().Where(ententry.Server(server)).Order(ent.Asc(ententry.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = toEntry(r)
	}
	return out, nil
}

// CountEntries counts the entries of registry.
func (t *Tx) CountEntries(ctx context.Context, registry string) (int, error) {
	return t.c.Entry.Query().Where(ententry.Registry(registry)).Count(ctx)
}

// SaveEntry creates or replaces e.
func (t *Tx) SaveEntry(ctx context.Context, e Entry) error {
	n, err := t.c.Entry.Update().Where(ententry.ID(e.Name)).SetVersion(e.Version).SetVersionRange(e.VersionRange).
		SetRevision(e.Revision).SetPinnedBy(e.PinnedBy).SetUpdateTime(e.UpdateTime).Save(ctx)
	if err != nil || n > 0 {
		return err
	}
	return t.c.Entry.Create().SetID(e.Name).SetOrganization(e.Organization).SetRegistry(e.Registry).SetServer(e.Server).
		SetServerName(e.ServerName).SetVersion(e.Version).SetVersionRange(e.VersionRange).SetRevision(e.Revision).
		SetPinnedBy(e.PinnedBy).SetCreateTime(e.CreateTime).SetUpdateTime(e.UpdateTime).Exec(ctx)
}

// DeleteEntry deletes entry name.
func (t *Tx) DeleteEntry(ctx context.Context, name string) error {
	return t.c.Entry.DeleteOneID(name).Exec(ctx)
}

// AddChange records a change of a registry's entries.
func (t *Tx) AddChange(ctx context.Context, c Change) error {
	return t.c.EntryChange.Create().SetRegistry(c.Registry).SetRevision(c.Revision).SetType(c.Type).SetEntry(string(c.Entry)).
		SetTime(c.Time).Exec(ctx)
}

// Changes returns the changes of registry after revision, oldest first.
func (t *Tx) Changes(ctx context.Context, registry string, after int64, limit int) ([]Change, error) {
	rows, err := t.c.EntryChange.Query().Where(entchange.Registry(registry), entchange.RevisionGT(after)).
		Order(ent.Asc(entchange.FieldRevision)).Limit(limit).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Change, len(rows))
	for i, r := range rows {
		out[i] = Change{Registry: r.Registry, Revision: r.Revision, Type: r.Type, Entry: []byte(r.Entry), Time: r.Time.UTC()}
	}
	return out, nil
}

func toApproval(e *ent.Approval) Approval {
	return Approval{Name: e.ID, Organization: e.Organization, Registry: e.Registry, State: e.State, Body: []byte(e.Body),
		CreateTime: e.CreateTime.UTC(), UpdateTime: e.UpdateTime.UTC()}
}

// Approval returns approval name, row-locked in a PostgreSQL transaction
// when lock is set.
func (t *Tx) Approval(ctx context.Context, name string, lock bool) (Approval, error) {
	q := t.c.Approval.Query().Where(entapproval.ID(name))
	if lock && t.lock() {
		q.ForUpdate()
	}
	e, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return Approval{}, fmt.Errorf("approval %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Approval{}, err
	}
	return toApproval(e), nil
}

// ApprovalQuery selects a page of a registry's approvals, newest first.
type ApprovalQuery struct {
	Registry string
	State    string // empty: any
	Before   string // the last name of the previous page
	Limit    int
}

// Approvals returns the approvals matching q; ids are UUIDv7, so name
// order is creation order.
func (t *Tx) Approvals(ctx context.Context, q ApprovalQuery) ([]Approval, error) {
	qq := t.c.Approval.Query().Where(entapproval.Registry(q.Registry)).Order(ent.Desc(entapproval.FieldID)).Limit(q.Limit)
	if q.State != "" {
		qq.Where(entapproval.State(q.State))
	}
	if q.Before != "" {
		qq.Where(entapproval.IDLT(q.Before))
	}
	rows, err := qq.All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Approval, len(rows))
	for i, r := range rows {
		out[i] = toApproval(r)
	}
	return out, nil
}

// SaveApproval creates or replaces a.
func (t *Tx) SaveApproval(ctx context.Context, a Approval) error {
	n, err := t.c.Approval.Update().Where(entapproval.ID(a.Name)).SetState(a.State).SetBody(string(a.Body)).SetUpdateTime(a.UpdateTime).Save(ctx)
	if err != nil || n > 0 {
		return err
	}
	return t.c.Approval.Create().SetID(a.Name).SetOrganization(a.Organization).SetRegistry(a.Registry).SetState(a.State).
		SetBody(string(a.Body)).SetCreateTime(a.CreateTime).SetUpdateTime(a.UpdateTime).Exec(ctx)
}

// Stamp tells whether what a registry's entries show may have changed:
// two equal stamps of a registry mean the same entries pinning versions in
// the same state, so what was rendered from the first still holds.
type Stamp struct {
	// Created tells a registry from an earlier one of the same name.
	Created time.Time
	// EntryRevision counts the changes of its entries.
	EntryRevision int64
	// Versions and VersionsChanged are the number of the organization's
	// versions and the latest time one of them changed (a status change
	// moves it).
	Versions        int
	VersionsChanged time.Time
}

// RegistryStamp returns the stamp of registry name, or ErrNotFound.
func (t *Tx) RegistryStamp(ctx context.Context, name string) (Stamp, error) {
	r, err := t.c.Registry.Get(ctx, name)
	if ent.IsNotFound(err) {
		return Stamp{}, fmt.Errorf("registry %q: %w", name, errs.ErrNotFound)
	}
	if err != nil {
		return Stamp{}, err
	}
	st := Stamp{Created: r.CreateTime.UTC(), EntryRevision: r.EntryRevision}
	q := t.c.Version.Query().Where(entversion.Organization(r.Organization))
	if st.Versions, err = q.Clone().Count(ctx); err != nil {
		return Stamp{}, err
	}
	if st.Versions > 0 {
		last, err := q.Order(ent.Desc(entversion.FieldUpdateTime)).Select(entversion.FieldUpdateTime).First(ctx)
		if err != nil {
			return Stamp{}, err
		}
		st.VersionsChanged = last.UpdateTime.UTC()
	}
	return st, nil
}
