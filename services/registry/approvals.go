package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

var approvalName = aip.MustPattern("orgs/{org}/registries/{registry}/approvals/{approval}")

// Approval states as stored.
var stateNames = map[registryv1.Approval_State]string{
	registryv1.Approval_STATE_PENDING:   "pending",
	registryv1.Approval_STATE_APPLIED:   "applied",
	registryv1.Approval_STATE_REJECTED:  "rejected",
	registryv1.Approval_STATE_CANCELLED: "cancelled",
	registryv1.Approval_STATE_FAILED:    "failed",
}

func approvalFromRow(row store.Approval) (*registryv1.Approval, error) {
	a := &registryv1.Approval{}
	if err := protojson.Unmarshal(row.Body, a); err != nil {
		return nil, fmt.Errorf("stored approval %q: %w", row.Name, err)
	}
	return a, nil
}

func (s *Service) saveApproval(ctx context.Context, tx *store.Tx, a *registryv1.Approval) error {
	body, err := protojson.Marshal(a)
	if err != nil {
		return err
	}
	return tx.SaveApproval(ctx, store.Approval{Name: a.GetName(), Organization: orgOf(a.GetName()), Registry: registryOfEntry(a.GetName()),
		State: stateNames[a.GetState()], Body: body, CreateTime: a.GetCreateTime().AsTime(), UpdateTime: a.GetUpdateTime().AsTime()})
}

// request records a change as a pending approval request in registry reg.
func (s *Service) request(ctx context.Context, tx *store.Tx, reg store.Registry, eff *registryv1.RegistrySettings, a *registryv1.Approval) (*registryv1.Approval, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(tx.Now())
	a.Name = reg.Name + "/approvals/" + id.String()
	a.State = registryv1.Approval_STATE_PENDING
	a.Requester = principalOf(ctx)
	a.MinApprovals = max(eff.GetMinApprovals(), 1)
	a.CreateTime, a.UpdateTime = now, now
	if a.GetKind() == registryv1.Approval_KIND_PIN || a.GetKind() == registryv1.Approval_KIND_UNPIN {
		cur, had, err := tx.Entry(ctx, a.GetEntry())
		if err != nil {
			return nil, err
		}
		var base, target []*registryv1.Tool
		if had {
			a.CurrentVersion = cur.Version
			if v, err := tx.Version(ctx, cur.Server+"/versions/"+cur.Version); err == nil {
				base, _ = decodeTools(v.Tools)
			}
		}
		if a.GetKind() == registryv1.Approval_KIND_PIN {
			v, err := tx.Version(ctx, serverOfEntry(a.GetEntry())+"/versions/"+a.GetVersion())
			if err != nil {
				return nil, err
			}
			if target, err = decodeTools(v.Tools); err != nil {
				return nil, err
			}
		}
		a.ToolDiff = diffTools(base, target)
	}
	if err := s.saveApproval(ctx, tx, a); err != nil {
		return nil, err
	}
	ev := outbox.NewEvent(ctx, reg.Organization, "registry.approval.create", a.GetName())
	ev.Metadata = map[string]string{"kind": a.GetKind().String(), "entry": a.GetEntry(), "version": a.GetVersion(),
		"version_range": a.GetVersionRange(), "min_approvals": fmt.Sprint(a.GetMinApprovals())}
	tx.Audit(ev)
	return a, nil
}

// refusal is a decision's refusal of its caller (the requester approving
// its own request, a second approval by the same principal, a cancel by
// someone who may not): audited as `denied`, like the interceptor's.
type refusal struct {
	err error
	// permission is the one the caller lacked, if that was the reason.
	permission string
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(err error) error { return &refusal{err: err} }

// deniedEvent is the audit event of a refusal: the action a success would
// record, outcome `denied`, the reason, in the organization's log.
func deniedEvent(ctx context.Context, name, action string, r *refusal) *auditv1.Event {
	ev := outbox.NewEvent(ctx, orgOf(name), action, name)
	ev.Outcome = auditlog.OutcomeDenied
	ev.Metadata = map[string]string{"reason": r.Error()}
	if m, ok := grpc.Method(ctx); ok {
		ev.Metadata["method"] = m
	}
	if r.permission != "" {
		ev.Metadata["permission"] = r.permission
	}
	return ev
}

// decide loads approval name locked, checks it is pending, asks check
// whether the caller may decide, and lets change change it; the result is
// saved with its audit event. A refusal from check changes nothing: its
// transaction commits only the `denied` event, and the call fails with
// the refusal. check must not write.
func (s *Service) decide(ctx context.Context, name, action string, check, change func(tx *store.Tx, a *registryv1.Approval) error) (*registryv1.Approval, error) {
	var out *registryv1.Approval
	var refused *refusal
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		refused = nil
		// Lock the registry first: applying takes it, and one lock order
		// keeps concurrent approvals from deadlocking.
		if _, err := tx.Registry(ctx, registryOfEntry(name), true); err != nil {
			return err
		}
		row, err := tx.Approval(ctx, name, true)
		if err != nil {
			return err
		}
		a, err := approvalFromRow(row)
		if err != nil {
			return err
		}
		if a.GetState() != registryv1.Approval_STATE_PENDING {
			return fmt.Errorf("approval %q is %s, no longer pending: %w", name, stateNames[a.GetState()], errs.ErrFailedPrecondition)
		}
		if err := check(tx, a); err != nil {
			if errors.As(err, &refused) {
				tx.Audit(deniedEvent(ctx, name, action, refused))
				return nil
			}
			return err
		}
		if err := change(tx, a); err != nil {
			return err
		}
		a.UpdateTime = timestamppb.New(tx.Now())
		if err := s.saveApproval(ctx, tx, a); err != nil {
			return err
		}
		ev := outbox.NewEvent(ctx, orgOf(name), action, name)
		ev.Metadata = map[string]string{"state": stateNames[a.GetState()], "approvals": fmt.Sprint(len(a.GetApprovals())),
			"min_approvals": fmt.Sprint(a.GetMinApprovals())}
		if a.GetFailure() != "" {
			ev.Metadata["failure"] = a.GetFailure()
		}
		tx.Audit(ev)
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return out, nil
}

// Approve implements RegistryService.
func (s *Service) Approve(ctx context.Context, req *registryv1.ApproveRequest) (*registryv1.Approval, error) {
	me := principalOf(ctx)
	check := func(_ *store.Tx, a *registryv1.Approval) error {
		if a.GetRequester() == me {
			return refuse(fmt.Errorf("%s requested this change and cannot approve it: %w", me, errs.ErrPermissionDenied))
		}
		for _, d := range a.GetApprovals() {
			if d.GetPrincipal() == me {
				return refuse(fmt.Errorf("%s approved this request already: %w", me, errs.ErrFailedPrecondition))
			}
		}
		return nil
	}
	return s.decide(ctx, req.GetName(), server.ActionFor(registryv1.RegistryService_Approve_FullMethodName), check, func(tx *store.Tx, a *registryv1.Approval) error {
		a.Approvals = append(a.Approvals, &registryv1.Decision{Principal: me, Comment: req.GetComment(), Time: timestamppb.New(tx.Now())})
		if int32(len(a.GetApprovals())) < a.GetMinApprovals() {
			return nil
		}
		err := s.apply(ctx, tx, a)
		var known bool
		for _, e := range []error{errs.ErrFailedPrecondition, errs.ErrNotFound, errs.ErrInvalidArgument} {
			known = known || errors.Is(err, e)
		}
		switch {
		case err == nil:
			a.State = registryv1.Approval_STATE_APPLIED
		case known:
			// The change can no longer apply (a yanked version, a deleted
			// server): the request fails, nothing applies.
			a.State = registryv1.Approval_STATE_FAILED
			a.Failure = err.Error()
		default:
			return err
		}
		return nil
	})
}

// apply carries out an approved change as its requester.
func (s *Service) apply(ctx context.Context, tx *store.Tx, a *registryv1.Approval) error {
	reg, err := tx.Registry(ctx, registryOfEntry(a.GetName()), true)
	if err != nil {
		return err
	}
	eff, err := effective(ctx, tx, reg)
	if err != nil {
		return err
	}
	switch a.GetKind() {
	case registryv1.Approval_KIND_PIN:
		_, err = s.applyPin(ctx, tx, eff, a.GetEntry(), a.GetVersion(), a.GetVersionRange(), a.GetRequester(), a.GetReason())
	case registryv1.Approval_KIND_UNPIN:
		err = s.applyUnpin(ctx, tx, a.GetEntry())
	case registryv1.Approval_KIND_UPDATE_REGISTRY:
		_, err = s.applyRegistryUpdate(ctx, tx, reg, a.GetRegistry(), a.GetUpdateMask().GetPaths())
	default:
		err = fmt.Errorf("approval kind %v: %w", a.GetKind(), errs.ErrFailedPrecondition)
	}
	return err
}

// Reject implements RegistryService.
func (s *Service) Reject(ctx context.Context, req *registryv1.RejectRequest) (*registryv1.Approval, error) {
	me := principalOf(ctx)
	return s.decide(ctx, req.GetName(), server.ActionFor(registryv1.RegistryService_Reject_FullMethodName), mayDecide, func(tx *store.Tx, a *registryv1.Approval) error {
		a.State = registryv1.Approval_STATE_REJECTED
		a.Decision = &registryv1.Decision{Principal: me, Comment: req.GetComment(), Time: timestamppb.New(tx.Now())}
		return nil
	})
}

// CancelApproval implements RegistryService: the requester, or a holder
// of approvals.approve, withdraws a request.
func (s *Service) CancelApproval(ctx context.Context, req *registryv1.CancelApprovalRequest) (*registryv1.Approval, error) {
	me := principalOf(ctx)
	check := func(_ *store.Tx, a *registryv1.Approval) error {
		if a.GetRequester() != me {
			if ok, _ := s.allowed(ctx, "approvals.approve", req.GetName()); !ok {
				return &refusal{err: fmt.Errorf("only the requester or an approver may cancel: %w", errs.ErrPermissionDenied), permission: "approvals.approve"}
			}
		}
		return nil
	}
	return s.decide(ctx, req.GetName(), server.ActionFor(registryv1.RegistryService_CancelApproval_FullMethodName), check, func(tx *store.Tx, a *registryv1.Approval) error {
		a.State = registryv1.Approval_STATE_CANCELLED
		a.Decision = &registryv1.Decision{Principal: me, Comment: req.GetComment(), Time: timestamppb.New(tx.Now())}
		return nil
	})
}

// mayDecide lets anyone the interceptor let through decide.
func mayDecide(*store.Tx, *registryv1.Approval) error { return nil }

// GetApproval implements RegistryService.
func (s *Service) GetApproval(ctx context.Context, req *registryv1.GetApprovalRequest) (*registryv1.Approval, error) {
	row, err := s.store.Read().Approval(ctx, req.GetName(), false)
	if err != nil {
		return nil, err
	}
	return approvalFromRow(row)
}

// ListApprovals implements RegistryService.
func (s *Service) ListApprovals(ctx context.Context, req *registryv1.ListApprovalsRequest) (*registryv1.ListApprovalsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.registry.v1.ListApprovals", req.GetParent(), req.GetState().String()))
	if err != nil {
		return nil, err
	}
	tx := s.store.Read()
	if _, err := tx.Registry(ctx, req.GetParent(), false); err != nil {
		return nil, err
	}
	// Newest first: the page resumes before its cursor.
	rows, err := tx.Approvals(ctx, store.ApprovalQuery{Registry: req.GetParent(), State: stateNames[req.GetState()], Before: page.After, Limit: page.Limit()})
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListApprovalsResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(r store.Approval) string { return r.Name })
	for _, r := range rows {
		a, err := approvalFromRow(r)
		if err != nil {
			return nil, err
		}
		resp.Approvals = append(resp.Approvals, a)
	}
	return resp, nil
}
