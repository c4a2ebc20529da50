package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/audit/internal/store"
)

// Checkpoint cadence: at least every CheckpointEvery events or
// CheckpointInterval, whichever comes first.
const (
	CheckpointEvery    = 1000
	CheckpointInterval = 10 * time.Second
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// maxClockSkew bounds how far in the future an appended event may be.
const maxClockSkew = 5 * time.Minute

// paging is ListEvents' page size: 50 by default, at most 1,000.
var paging = aip.Paging{Default: defaultPageSize, Max: maxPageSize}

// Service implements pylee.audit.v1.AuditService.
type Service struct {
	auditv1.UnimplementedAuditServiceServer
	store  *store.Store
	key    ed25519.PrivateKey
	tokens *aip.PageTokens
	log    *zap.Logger
	now    func() time.Time
	// authz decides show_deleted (audit.read on the installation); nil
	// refuses it.
	authz auth.Authorizer

	cpMu sync.Mutex // one checkpoint at a time per process
}

// Store is the audit store.
type Store = store.Store

// OpenStore opens the audit database at url, which MigrateStore has
// migrated.
func OpenStore(ctx context.Context, url string) (*Store, error) { return store.Open(ctx, url) }

// MigrateStore applies the pending migrations to the audit database at url
// (tests prepare template databases with it).
func MigrateStore(ctx context.Context, url string) error { return store.Migrate(ctx, url) }

// SchemaStatus tells whether the audit database at url is behind its
// migrations.
func SchemaStatus(ctx context.Context, url string) (db.Status, error) {
	return store.SchemaStatus(ctx, url)
}

// New returns the service; key signs checkpoints.
func New(st *Store, key ed25519.PrivateKey, pageTokens *aip.PageTokens, log *zap.Logger) *Service {
	return &Service{store: st, key: key, tokens: pageTokens, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// UseAuthorizer sets the authorizer that decides who may see the events of
// deleted organizations (show_deleted): audit.read on the installation.
func (s *Service) UseAuthorizer(z auth.Authorizer) *Service {
	s.authz = z
	return s
}

// visible is the part of org's chain the caller sees: the current
// incarnation of the organization, or with showDeleted (installation
// administrators only) all of it (nil).
func (s *Service) visible(ctx context.Context, method, org string, showDeleted bool) (*store.Epoch, error) {
	if showDeleted {
		p, _ := auth.FromContext(ctx)
		if s.authz == nil || s.authz.Authorize(ctx, p, "audit.read", "") != nil {
			// A refusal decided here is audited like the interceptor's.
			ev := outbox.NewEvent(ctx, org, server.ActionFor(method), names.Org{Org: org}.String())
			ev.Outcome = auditlog.OutcomeDenied
			ev.Metadata = map[string]string{"reason": "show_deleted needs audit.read on the installation"}
			if err := s.RecordEvent(ctx, ev); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("show_deleted: only installation administrators may read the events of deleted organizations: %w", errs.ErrPermissionDenied)
		}
		return nil, nil
	}
	e, err := s.store.Epoch(ctx, org)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Register registers the service and its validators on srv.
func (s *Service) Register(srv *server.Server) {
	srv.RegisterService(&auditv1.AuditService_ServiceDesc, s, Validators())
}

// AppendEvents implements AuditService.
func (s *Service) AppendEvents(ctx context.Context, req *auditv1.AppendEventsRequest) (*auditv1.AppendEventsResponse, error) {
	p, _ := auth.FromContext(ctx)
	latest := s.now().Add(maxClockSkew)
	for i, ev := range req.GetEvents() {
		// An organization's creation starts a new incarnation of its chain
		// (what earlier events its members see): only the orgs service,
		// which creates organizations, may record one.
		if ev.GetAction() == auditlog.ActionOrganizationCreate && !slices.Contains(auth.ServiceTargets(p), "orgs") {
			return nil, fmt.Errorf("events[%d]: only the orgs service records %s: %w", i, auditlog.ActionOrganizationCreate, errs.ErrPermissionDenied)
		}
		// An event from the future would hide the ones after it from an
		// incarnation that starts at it.
		if ev.GetEventTime().AsTime().After(latest) {
			return nil, errs.Field(fmt.Sprintf("events[%d].event_time", i), "is more than %s in the future", maxClockSkew)
		}
	}
	appended, dups, err := s.store.Append(ctx, req.GetEvents())
	if err != nil {
		return nil, err
	}
	if appended > 0 {
		s.checkpointIfDue(ctx, req.GetEvents())
	}
	return &auditv1.AppendEventsResponse{Appended: int32(appended), Duplicates: int32(dups)}, nil
}

// checkpointIfDue signs a checkpoint for every organization of events whose
// head is CheckpointEvery or more past its last checkpoint.
func (s *Service) checkpointIfDue(ctx context.Context, events []*auditv1.Event) {
	orgs := map[string]bool{}
	for _, ev := range events {
		orgs[ev.GetOrganization()] = true
	}
	for org := range orgs {
		seq, _, cpSeq, err := s.store.Head(ctx, org)
		if err == nil && seq-cpSeq >= CheckpointEvery {
			if _, err := s.Checkpoint(ctx, org); err != nil {
				s.log.Error("checkpoint", zap.String("organization", org), zap.Error(err))
			}
		}
	}
}

// Checkpoint signs and stores a checkpoint at org's current head, unless
// the latest checkpoint is already there, and returns it.
func (s *Service) Checkpoint(ctx context.Context, org string) (*auditv1.Checkpoint, error) {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	seq, hash, cpSeq, err := s.store.Head(ctx, org)
	if err != nil {
		return nil, err
	}
	if seq == 0 {
		return nil, fmt.Errorf("organization %q has no events: %w", org, errs.ErrNotFound)
	}
	if cpSeq == seq {
		return s.store.LatestCheckpoint(ctx, org)
	}
	cp := &auditv1.Checkpoint{Organization: org, Sequence: seq, Hash: hash,
		CreateTime: timestamppb.New(s.now().Truncate(time.Microsecond))}
	auditlog.Sign(s.key, cp)
	if err := s.store.PutCheckpoint(ctx, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// RunCheckpointer signs a checkpoint for every organization with events
// past its last checkpoint every interval, until ctx ends.
func (s *Service) RunCheckpointer(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			orgs, err := s.store.OrganizationsBehindCheckpoint(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("checkpointer", zap.Error(err))
				}
				continue
			}
			for _, org := range orgs {
				if _, err := s.Checkpoint(ctx, org); err != nil && ctx.Err() == nil {
					s.log.Error("checkpoint", zap.String("organization", org), zap.Error(err))
				}
			}
		}
	}
}

// ListEvents implements AuditService.
func (s *Service) ListEvents(ctx context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	org, err := parentOrg(req.GetParent())
	if err != nil {
		return nil, errs.Field("parent", "%v", err)
	}
	f, err := parseEventFilter(req.GetFilter())
	if err != nil {
		return nil, errs.Field("filter", "%v", err)
	}
	epoch, err := s.visible(ctx, auditv1.AuditService_ListEvents_FullMethodName, org, req.GetShowDeleted())
	if err != nil {
		return nil, err
	}
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.audit.v1.ListEvents", req.GetParent(), req.GetFilter(), strconv.FormatBool(req.GetShowDeleted())))
	if err != nil {
		return nil, err
	}
	q := f.query
	q.Organization, q.Limit, q.Epoch = org, page.Limit(), epoch
	if page.After != "" {
		// Newest first: the page resumes below its cursor's sequence.
		if q.Before, err = strconv.ParseInt(page.After, 10, 64); err != nil {
			return nil, errs.Field("page_token", "is malformed")
		}
	}
	rows, err := s.store.ListEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &auditv1.ListEventsResponse{}
	resp.Events, resp.NextPageToken = aip.Finish(ctx, page, rows, func(ev *auditv1.Event) string { return strconv.FormatInt(ev.GetSequence(), 10) })
	return resp, nil
}

// GetEvent implements AuditService.
func (s *Service) GetEvent(ctx context.Context, req *auditv1.GetEventRequest) (*auditv1.Event, error) {
	org, id, err := eventIDs(req.GetName())
	if err != nil {
		return nil, errs.Field("name", "%v", err)
	}
	ev, err := s.store.GetEvent(ctx, org, id)
	if err != nil {
		return nil, err
	}
	// An event of an earlier, deleted organization of this id is not this
	// organization's.
	if epoch, err := s.visible(ctx, auditv1.AuditService_GetEvent_FullMethodName, org, false); err != nil {
		return nil, err
	} else if !epoch.Holds(ev) {
		return nil, fmt.Errorf("event %q: %w", req.GetName(), errs.ErrNotFound)
	}
	return ev, nil
}

// ExportEvents implements AuditService: the whole chain, oldest first, each
// stored checkpoint after the event it covers, ending with a checkpoint
// signed at the head.
func (s *Service) ExportEvents(req *auditv1.ExportEventsRequest, stream grpc.ServerStreamingServer[auditv1.ExportRecord]) error {
	ctx := stream.Context()
	org, err := parentOrg(req.GetParent())
	if err != nil {
		return errs.Field("parent", "%v", err)
	}
	epoch, err := s.visible(ctx, auditv1.AuditService_ExportEvents_FullMethodName, org, req.GetShowDeleted())
	if err != nil {
		return err
	}
	head, err := s.Checkpoint(ctx, org)
	if err != nil {
		return err
	}
	start := int64(1)
	if epoch != nil && epoch.Sequence > 0 {
		// The organization's own part of the chain, anchored by a
		// checkpoint of the event before it, signed now: the export
		// verifies offline without showing what came before.
		start = epoch.Sequence + 1
		anchor, err := s.checkpointAt(ctx, org, epoch.Sequence)
		if err != nil {
			return err
		}
		if err := stream.Send(&auditv1.ExportRecord{Record: &auditv1.ExportRecord_Checkpoint{Checkpoint: anchor}}); err != nil {
			return err
		}
	}
	cps, err := s.store.Checkpoints(ctx, org, start, head.GetSequence())
	if err != nil {
		return err
	}
	i := 0
	return s.store.ScanChain(ctx, org, start, head.GetSequence(), func(ev *auditv1.Event) error {
		if err := stream.Send(&auditv1.ExportRecord{Record: &auditv1.ExportRecord_Event{Event: ev}}); err != nil {
			return err
		}
		for i < len(cps) && cps[i].GetSequence() <= ev.GetSequence() {
			if cps[i].GetSequence() == ev.GetSequence() {
				if err := stream.Send(&auditv1.ExportRecord{Record: &auditv1.ExportRecord_Checkpoint{Checkpoint: cps[i]}}); err != nil {
					return err
				}
			}
			i++
		}
		return nil
	})
}

// checkpointAt signs (without storing) a checkpoint of org's chain at seq.
func (s *Service) checkpointAt(ctx context.Context, org string, seq int64) (*auditv1.Checkpoint, error) {
	var at *auditv1.Event
	if err := s.store.ScanChain(ctx, org, seq, seq, func(ev *auditv1.Event) error { at = ev; return nil }); err != nil {
		return nil, err
	}
	if at == nil {
		return nil, fmt.Errorf("the chain of %q has no event %d", org, seq)
	}
	cp := &auditv1.Checkpoint{Organization: org, Sequence: seq, Hash: at.GetHash(),
		CreateTime: timestamppb.New(s.now().Truncate(time.Microsecond))}
	auditlog.Sign(s.key, cp)
	return cp, nil
}

// VerifyLog implements AuditService.
func (s *Service) VerifyLog(ctx context.Context, req *auditv1.VerifyLogRequest) (*auditv1.VerifyLogResponse, error) {
	org, err := parentOrg(req.GetParent())
	if err != nil {
		return nil, errs.Field("parent", "%v", err)
	}
	epoch, err := s.visible(ctx, auditv1.AuditService_VerifyLog_FullMethodName, org, false)
	if err != nil {
		return nil, err
	}
	// The organization verifies its own incarnation of the chain.
	start := max(req.GetStartSequence(), epoch.Sequence+1)
	prev := auditlog.ZeroHash
	if start > 1 {
		// The range starts after an event taken on trust: the one before it.
		var before *auditv1.Event
		err := s.store.ScanChain(ctx, org, start-1, start-1, func(ev *auditv1.Event) error { before = ev; return nil })
		if err != nil {
			return nil, err
		}
		if before == nil {
			return nil, errs.Field("start_sequence", "is past the end of the chain")
		}
		prev = before.GetHash()
	}
	cps, err := s.store.Checkpoints(ctx, org, start, req.GetEndSequence())
	if err != nil {
		return nil, err
	}
	pub := s.key.Public().(ed25519.PublicKey)
	resp := &auditv1.VerifyLogResponse{Ok: true, VerifyTime: timestamppb.New(s.now())}
	chain := auditlog.NewChain(org, start, prev)
	ci := 0
	fail := func(seq int64, id, reason string) {
		resp.Ok, resp.FirstBadSequence, resp.Reason = false, seq, reason
		if id != "" {
			resp.FirstBadEvent = names.Event{Org: org, Event: id}.String()
		}
	}
	errStop := fmt.Errorf("stop")
	err = s.store.ScanChain(ctx, org, start, req.GetEndSequence(), func(ev *auditv1.Event) error {
		if err := chain.Next(ev); err != nil {
			var bad *auditlog.BadEventError
			if !errors.As(err, &bad) {
				return err
			}
			fail(bad.Sequence, ev.GetId(), bad.Reason)
			return errStop
		}
		resp.Checked++
		for ci < len(cps) && cps[ci].GetSequence() <= ev.GetSequence() {
			cp := cps[ci]
			ci++
			if cp.GetSequence() != ev.GetSequence() {
				continue
			}
			if err := auditlog.VerifyCheckpoint(pub, cp); err != nil {
				fail(ev.GetSequence(), ev.GetId(), err.Error())
				return errStop
			}
			if cp.GetHash() != ev.GetHash() {
				fail(ev.GetSequence(), ev.GetId(), "does not match the signed checkpoint at its sequence")
				return errStop
			}
			resp.Checkpoint = cp
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if resp.Ok {
		// A checkpoint past the last stored event means events were removed.
		if seq, _ := chain.Head(); ci < len(cps) && cps[len(cps)-1].GetSequence() > seq {
			fail(seq+1, "", fmt.Sprintf("the chain ends at %d but a checkpoint covers %d: events were removed", seq, cps[len(cps)-1].GetSequence()))
		}
		if headSeq, _, _, err := s.store.Head(ctx, org); err == nil && req.GetEndSequence() == 0 && headSeq != resp.Checked+start-1 && resp.Ok {
			seq, _ := chain.Head()
			fail(seq+1, "", fmt.Sprintf("the chain head says %d events but %d are stored", headSeq, seq))
		}
	}
	return resp, nil
}

// GetCheckpoint implements AuditService.
func (s *Service) GetCheckpoint(ctx context.Context, req *auditv1.GetCheckpointRequest) (*auditv1.Checkpoint, error) {
	org, err := parentOrg(req.GetParent())
	if err != nil {
		return nil, errs.Field("parent", "%v", err)
	}
	return s.store.LatestCheckpoint(ctx, org)
}

// GetPublicKey implements AuditService.
func (s *Service) GetPublicKey(context.Context, *auditv1.GetPublicKeyRequest) (*auditv1.GetPublicKeyResponse, error) {
	return &auditv1.GetPublicKeyResponse{
		PublicKey: auditlog.EncodePublicKey(s.key.Public().(ed25519.PublicKey)), Algorithm: "ed25519",
	}, nil
}

// RecordEvent appends one event directly (aggregated refusals of a process
// without the orgs outbox).
func (s *Service) RecordEvent(ctx context.Context, ev *auditv1.Event) error {
	_, _, err := s.store.Append(ctx, []*auditv1.Event{outbox.Bound(ev)})
	return err
}

// DeniedRecorder appends calls refused by this process straight to the log,
// for a process that runs the audit service without the orgs service (whose
// outbox otherwise records them); agg takes the unauthenticated ones.
func (s *Service) DeniedRecorder(agg *outbox.DeniedAggregator) server.DeniedRecorder {
	return func(ctx context.Context, d server.Denied) {
		if agg.Add(ctx, d) {
			return
		}
		ev := outbox.DeniedEvent(ctx, d)
		if _, _, err := s.store.Append(ctx, []*auditv1.Event{outbox.Bound(ev)}); err != nil {
			s.log.Error("record denied event", zap.String("request_id", ev.GetRequestId()), zap.Error(err))
		}
	}
}
