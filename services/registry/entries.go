package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/semvers"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

var entryName = aip.MustPattern("orgs/{org}/registries/{registry}/entries/{server}")

// Entry change types as stored.
const (
	changePinned   = "pinned"
	changeUnpinned = "unpinned"
)

// registryOfEntry returns the registry of an entry or approval name.
func registryOfEntry(name string) string {
	parts := strings.SplitN(name, "/", 5)
	if len(parts) < 4 {
		return name
	}
	return strings.Join(parts[:4], "/")
}

// serverOfEntry returns the server an entry name pins.
func serverOfEntry(name string) string {
	i := strings.LastIndex(name, "/entries/")
	return "orgs/" + orgOf(name) + "/servers/" + name[i+len("/entries/"):]
}

func entryToProto(e store.Entry, v *store.Version, full bool) (*registryv1.Entry, error) {
	out := &registryv1.Entry{Name: e.Name, Server: e.Server, ServerName: e.ServerName, Version: e.Version, VersionRange: e.VersionRange,
		Revision: e.Revision, PinnedBy: e.PinnedBy, CreateTime: timestamppb.New(e.CreateTime), UpdateTime: timestamppb.New(e.UpdateTime)}
	if v != nil {
		out.VersionStatus = statusToProto[v.Status]
		out.VersionCreateTime = timestamppb.New(v.CreateTime)
		if full {
			d, err := versionToProto(*v, false)
			if err != nil {
				return nil, err
			}
			out.VersionDetail = d
		}
	}
	return out, nil
}

// entriesToProto converts rows, reading their versions in one query.
func entriesToProto(ctx context.Context, tx *store.Tx, rows []store.Entry, full bool) ([]*registryv1.Entry, error) {
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Server + "/versions/" + r.Version
	}
	vs, err := tx.VersionsByName(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]*registryv1.Entry, len(rows))
	for i, r := range rows {
		var v *store.Version
		if x, ok := vs[names[i]]; ok {
			v = &x
		}
		if out[i], err = entryToProto(r, v, full); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pinTarget is what a pin resolves to.
type pinTarget struct {
	server  store.Server
	version store.Version
	rng     string
	vs      versionSet
}

// resolvePin checks a pin of entry to version or range in a registry with
// settings eff, and finds the version it pins.
func resolvePin(ctx context.Context, tx *store.Tx, eff *registryv1.RegistrySettings, entry, version, rng string) (pinTarget, error) {
	srv, err := tx.Server(ctx, serverOfEntry(entry))
	if err != nil {
		return pinTarget{}, err
	}
	if !namespaceAllowed(srv.ServerName, eff.GetNamespaces()) {
		return pinTarget{}, fmt.Errorf("server name %q is outside the registry's namespaces %s: %w", srv.ServerName,
			strings.Join(eff.GetNamespaces(), ", "), errs.ErrFailedPrecondition)
	}
	vs, err := loadVersions(ctx, tx, srv.Name)
	if err != nil {
		return pinTarget{}, err
	}
	t := pinTarget{server: srv, rng: rng, vs: vs}
	if rng != "" {
		if !eff.GetAutoUpgrade() {
			return pinTarget{}, fmt.Errorf("registry %q does not auto-upgrade: pin an exact version: %w", registryOfEntry(entry), errs.ErrFailedPrecondition)
		}
		r, err := semvers.ParseRange(rng)
		if err != nil {
			return pinTarget{}, errs.Field("version_range", "%v", err)
		}
		v, ok := vs.highestActive(r, eff)
		if !ok {
			what := "active version"
			if eff.GetRequireRecordedTools() {
				what = "active version with published tools (the registry requires recorded tools)"
			}
			return pinTarget{}, fmt.Errorf("no %s of %q matches %q: %w", what, srv.Name, rng, errs.ErrFailedPrecondition)
		}
		t.version = v
		return t, nil
	}
	v, ok := vs.byVersion(version)
	if !ok {
		return pinTarget{}, fmt.Errorf("version %q: %w", srv.Name+"/versions/"+version, errs.ErrNotFound)
	}
	if v.Status == statusYanked {
		return pinTarget{}, fmt.Errorf("version %s of %q is yanked (%s) and cannot be pinned: %w", version, srv.Name, v.StatusMessage, errs.ErrFailedPrecondition)
	}
	if err := checkRecordedTools(eff, entry, v); err != nil {
		return pinTarget{}, err
	}
	t.version = v
	return t, nil
}

// checkRecordedTools refuses pinning a version published without tools in
// a registry that requires them.
func checkRecordedTools(eff *registryv1.RegistrySettings, entry string, v store.Version) error {
	if eff.GetRequireRecordedTools() && !hasTools(v) {
		return fmt.Errorf("version %s of %q was published without tools, and registry %q requires recorded tools: publish a version with its tools: %w",
			v.Version, v.Server, registryOfEntry(entry), errs.ErrFailedPrecondition)
	}
	return nil
}

// saveEntry writes e, pinning version v, at the registry's next revision
// with its change record and audit event; the registry must be locked.
func (s *Service) saveEntry(ctx context.Context, tx *store.Tx, e store.Entry, v store.Version, prev store.Entry, hadPrev bool, action, reason string) (*registryv1.Entry, error) {
	rev, err := tx.NextRevision(ctx, e.Registry)
	if err != nil {
		return nil, err
	}
	e.Revision, e.UpdateTime = rev, tx.Now()
	if hadPrev {
		e.CreateTime = prev.CreateTime
	} else {
		e.CreateTime = e.UpdateTime
	}
	if err := tx.SaveEntry(ctx, e); err != nil {
		return nil, err
	}
	out, err := entryToProto(e, &v, false)
	if err != nil {
		return nil, err
	}
	body, err := protojson.Marshal(out)
	if err != nil {
		return nil, err
	}
	if err := tx.AddChange(ctx, store.Change{Registry: e.Registry, Revision: rev, Type: changePinned, Entry: body, Time: e.UpdateTime}); err != nil {
		return nil, err
	}
	ev := outbox.NewEvent(ctx, e.Organization, action, e.Name)
	ev.Changes = append(ev.Changes, outbox.Change("version", prev.Version, e.Version))
	if prev.VersionRange != e.VersionRange {
		ev.Changes = append(ev.Changes, outbox.Change("version_range", prev.VersionRange, e.VersionRange))
	}
	ev.Metadata = map[string]string{"revision": fmt.Sprint(rev), "pinned_by": e.PinnedBy}
	if reason != "" {
		ev.Metadata["reason"] = reason
	}
	tx.Audit(ev)
	return out, nil
}

// applyPin pins entry in its (locked) registry.
func (s *Service) applyPin(ctx context.Context, tx *store.Tx, eff *registryv1.RegistrySettings, entry, version, rng, actor, reason string) (*registryv1.Entry, error) {
	t, err := resolvePin(ctx, tx, eff, entry, version, rng)
	if err != nil {
		return nil, err
	}
	prev, had, err := tx.Entry(ctx, entry)
	if err != nil {
		return nil, err
	}
	e := store.Entry{Name: entry, Organization: orgOf(entry), Registry: registryOfEntry(entry), Server: t.server.Name,
		ServerName: t.server.ServerName, Version: t.version.Version, VersionRange: rng, PinnedBy: actor}
	return s.saveEntry(ctx, tx, e, t.version, prev, had, server.ActionFor(registryv1.RegistryService_PinEntry_FullMethodName), reason)
}

// applyUnpin removes entry from its (locked) registry.
func (s *Service) applyUnpin(ctx context.Context, tx *store.Tx, entry string) error {
	prev, had, err := tx.Entry(ctx, entry)
	if err != nil {
		return err
	}
	if !had {
		return fmt.Errorf("entry %q: %w", entry, errs.ErrNotFound)
	}
	rev, err := tx.NextRevision(ctx, prev.Registry)
	if err != nil {
		return err
	}
	if err := tx.DeleteEntry(ctx, entry); err != nil {
		return err
	}
	prev.Revision = rev
	out, err := entryToProto(prev, nil, false)
	if err != nil {
		return err
	}
	body, err := protojson.Marshal(out)
	if err != nil {
		return err
	}
	if err := tx.AddChange(ctx, store.Change{Registry: prev.Registry, Revision: rev, Type: changeUnpinned, Entry: body, Time: tx.Now()}); err != nil {
		return err
	}
	ev := outbox.NewEvent(ctx, prev.Organization, server.ActionFor(registryv1.RegistryService_UnpinEntry_FullMethodName), entry)
	ev.Changes = append(ev.Changes, outbox.Change("version", prev.Version, ""))
	ev.Metadata = map[string]string{"revision": fmt.Sprint(rev)}
	tx.Audit(ev)
	return nil
}

// followRanges moves every range entry of server, in registries that
// auto-upgrade, to the highest active version in its range.
func (s *Service) followRanges(ctx context.Context, tx *store.Tx, server string, vs versionSet) error {
	entries, err := tx.EntriesOfServer(ctx, server)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.VersionRange == "" {
			continue
		}
		reg, err := tx.Registry(ctx, e.Registry, true)
		if err != nil {
			return err
		}
		eff, err := effective(ctx, tx, reg)
		if err != nil {
			return err
		}
		r, err := semvers.ParseRange(e.VersionRange)
		if err != nil || !eff.GetAutoUpgrade() {
			continue
		}
		best, ok := vs.highestActive(r, eff)
		if !ok || best.Version == e.Version {
			continue
		}
		next := e
		next.Version = best.Version
		if _, err := s.saveEntry(ctx, tx, next, best, e, true, "registry.entry.upgrade", ""); err != nil {
			return err
		}
	}
	return nil
}

// PinEntry implements RegistryService.
func (s *Service) PinEntry(ctx context.Context, req *registryv1.PinEntryRequest) (*registryv1.PinEntryResponse, error) {
	return s.pin(ctx, req.GetName(), req.GetVersion(), req.GetVersionRange(), req.GetReason())
}

func (s *Service) pin(ctx context.Context, entry, version, rng, reason string) (*registryv1.PinEntryResponse, error) {
	resp := &registryv1.PinEntryResponse{}
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		reg, err := tx.Registry(ctx, registryOfEntry(entry), true)
		if err != nil {
			return err
		}
		eff, err := effective(ctx, tx, reg)
		if err != nil {
			return err
		}
		// The deploy service re-pins the version a failed rollout replaced:
		// a rollback to what was approved before, which cannot wait for
		// approvals.
		if eff.GetApprovalRequired() && !deployRollback(ctx) {
			t, err := resolvePin(ctx, tx, eff, entry, version, rng)
			if err != nil {
				return err
			}
			a := &registryv1.Approval{Kind: registryv1.Approval_KIND_PIN, Entry: entry, Version: t.version.Version, VersionRange: rng, Reason: reason}
			a, err = s.request(ctx, tx, reg, eff, a)
			if err != nil {
				return err
			}
			resp.Result = &registryv1.PinEntryResponse_Approval{Approval: a}
			return nil
		}
		e, err := s.applyPin(ctx, tx, eff, entry, version, rng, principalOf(ctx), reason)
		if err != nil {
			return err
		}
		resp.Result = &registryv1.PinEntryResponse_Entry{Entry: e}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// UnpinEntry implements RegistryService.
func (s *Service) UnpinEntry(ctx context.Context, req *registryv1.UnpinEntryRequest) (*registryv1.UnpinEntryResponse, error) {
	resp := &registryv1.UnpinEntryResponse{}
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		reg, err := tx.Registry(ctx, registryOfEntry(req.GetName()), true)
		if err != nil {
			return err
		}
		eff, err := effective(ctx, tx, reg)
		if err != nil {
			return err
		}
		if !eff.GetApprovalRequired() {
			return s.applyUnpin(ctx, tx, req.GetName())
		}
		if _, had, err := tx.Entry(ctx, req.GetName()); err != nil {
			return err
		} else if !had {
			return fmt.Errorf("entry %q: %w", req.GetName(), errs.ErrNotFound)
		}
		resp.Approval, err = s.request(ctx, tx, reg, eff, &registryv1.Approval{Kind: registryv1.Approval_KIND_UNPIN, Entry: req.GetName(), Reason: req.GetReason()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// PromoteEntry implements RegistryService.
func (s *Service) PromoteEntry(ctx context.Context, req *registryv1.PromoteEntryRequest) (*registryv1.PinEntryResponse, error) {
	if ok, err := s.allowed(ctx, "entries.get", req.GetName()); !ok {
		return nil, err
	}
	src, had, err := s.store.Read().Entry(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	if !had {
		return nil, fmt.Errorf("entry %q: %w", req.GetName(), errs.ErrNotFound)
	}
	target := req.GetTargetRegistry() + "/entries/" + strings.TrimPrefix(src.Server, "orgs/"+orgOf(src.Server)+"/servers/")
	reason := req.GetReason()
	if reason == "" {
		reason = "promoted from " + src.Registry
	}
	return s.pin(ctx, target, src.Version, "", reason)
}

// GetEntry implements RegistryService.
func (s *Service) GetEntry(ctx context.Context, req *registryv1.GetEntryRequest) (*registryv1.Entry, error) {
	tx := s.store.Read()
	e, had, err := tx.Entry(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	if !had {
		return nil, fmt.Errorf("entry %q: %w", req.GetName(), errs.ErrNotFound)
	}
	out, err := entriesToProto(ctx, tx, []store.Entry{e}, req.GetView() == registryv1.EntryView_ENTRY_VIEW_FULL)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ListEntries implements RegistryService: the entries the caller may see
// (entries.get on the registry or above, or on the entry or its server).
func (s *Service) ListEntries(ctx context.Context, req *registryv1.ListEntriesRequest) (*registryv1.ListEntriesResponse, error) {
	var since time.Time
	if ts := req.GetUpdatedSince(); ts != nil {
		since = ts.AsTime()
	}
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.registry.v1.ListEntries", req.GetParent(), req.GetSearch(),
		req.GetServerName(), since.Format(time.RFC3339Nano), req.GetView().String(), req.GetVersion()))
	if err != nil {
		return nil, err
	}
	// Served from the registry's snapshot (see official.go): what the
	// database holds, read once per change.
	v, parentErr, err := s.viewOf(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	filtered := page.After != "" || req.GetSearch() != "" || req.GetServerName() != "" || !since.IsZero() || req.GetVersion() != ""
	if !v.all && v.len() == 0 && !filtered {
		return nil, parentErr
	}
	search := strings.ToLower(req.GetSearch())
	full := req.GetView() == registryv1.EntryView_ENTRY_VIEW_FULL
	rows := make([]*officialItem, 0, min(page.Limit(), v.len()))
	for i, n := v.start(page.After), v.len(); i < n && len(rows) < page.Limit(); i++ {
		it := v.at(i)
		switch {
		case search != "" && !strings.Contains(it.nameFold, search),
			req.GetServerName() != "" && it.entry.ServerName != req.GetServerName(),
			req.GetVersion() != "" && it.entry.Version != req.GetVersion(),
			!since.IsZero() && it.entry.UpdateTime.Before(since):
			continue
		}
		rows = append(rows, it)
	}
	resp := &registryv1.ListEntriesResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(it *officialItem) string { return it.entry.Name })
	resp.Entries = make([]*registryv1.Entry, len(rows))
	for i, it := range rows {
		if resp.Entries[i], err = it.proto(full); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// watchLifetime bounds one WatchEntries stream; the client resumes from
// its last revision, with its credential verified again.
const watchLifetime = time.Minute

// WatchEntries implements RegistryService.
func (s *Service) WatchEntries(req *registryv1.WatchEntriesRequest, stream grpc.ServerStreamingServer[registryv1.EntryEvent]) error {
	ctx := stream.Context()
	tx := s.store.Read()
	reg, err := tx.Registry(ctx, req.GetParent(), false)
	if err != nil {
		return err
	}
	p, _ := auth.FromContext(ctx)
	started, checked := time.Now(), time.Now()
	rev := req.GetSinceRevision()
	for {
		// A watch holds what was allowed when it began only as long as a
		// decision may be cached: re-checked every watchPoll, ended when
		// the caller loses access or the registry is deleted (or is another
		// registry of the same name now), and ended after watchLifetime so
		// the credential itself is verified again on reconnect (clients
		// resume with since_revision).
		if time.Since(checked) >= s.watchPoll {
			if err := s.authz.Authorize(ctx, p, "entries.get", req.GetParent()); err != nil {
				return err
			}
			now, err := tx.Registry(ctx, req.GetParent(), false)
			if err != nil {
				return err
			}
			if !now.CreateTime.Equal(reg.CreateTime) {
				return fmt.Errorf("registry %q was deleted: %w", req.GetParent(), errs.ErrNotFound)
			}
			checked = time.Now()
		}
		if time.Since(started) >= watchLifetime {
			return nil
		}
		wake := s.changes.Wait()
		changes, err := tx.Changes(ctx, req.GetParent(), rev, 500)
		if err != nil {
			return err
		}
		for _, c := range changes {
			e := &registryv1.Entry{}
			if err := protojson.Unmarshal(c.Entry, e); err != nil {
				return fmt.Errorf("stored change %d of %q: %w", c.Revision, c.Registry, err)
			}
			t := registryv1.EntryEvent_TYPE_PINNED
			if c.Type == changeUnpinned {
				t = registryv1.EntryEvent_TYPE_UNPINNED
			}
			if err := stream.Send(&registryv1.EntryEvent{Type: t, Entry: e, Revision: c.Revision, Time: timestamppb.New(c.Time)}); err != nil {
				return err
			}
			rev = c.Revision
		}
		if len(changes) == 500 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(s.watchPoll):
		}
	}
}

// deployRollback reports whether the caller is the deploy service's
// identity, which pins only to roll a failed rollout back.
func deployRollback(ctx context.Context) bool {
	p, _ := auth.FromContext(ctx)
	return p.Kind == auth.KindService && auth.MayCall(p, []string{"deploy"})
}
