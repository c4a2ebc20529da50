package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

var (
	namespacePattern = regexp.MustCompile(`^[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*$`)
	registryName     = aip.MustPattern("orgs/{org}/registries/{registry}")
	teamName         = aip.MustPattern("orgs/{org}/teams/{team}")
)

// registryFields are the updatable fields of a registry.
var registryFields = []string{"description", "parent", "auto_upgrade", "approval_required", "min_approvals", "owner_teams",
	"namespaces", "tool_policy", "rollout_policy", "deployments_enabled", "require_recorded_tools", "mcp_limits"}

// maxDepth bounds a chain of parent registries.
const maxDepth = 8

// ownSettings is the stored form of a registry's own settings: a Registry
// holding only them.
func ownSettings(r *registryv1.Registry) []byte {
	own := &registryv1.Registry{AutoUpgrade: r.AutoUpgrade, ApprovalRequired: r.ApprovalRequired, MinApprovals: r.MinApprovals,
		OwnerTeams: r.GetOwnerTeams(), Namespaces: r.GetNamespaces(), ToolPolicy: r.GetToolPolicy(), RolloutPolicy: r.GetRolloutPolicy(),
		DeploymentsEnabled: r.DeploymentsEnabled, RequireRecordedTools: r.RequireRecordedTools, McpLimits: r.GetMcpLimits()}
	b, _ := protojson.Marshal(own)
	return b
}

func registryToProto(row store.Registry, eff *registryv1.RegistrySettings) (*registryv1.Registry, error) {
	r := &registryv1.Registry{}
	if err := protojson.Unmarshal(row.Settings, r); err != nil {
		return nil, fmt.Errorf("stored settings of %q: %w", row.Name, err)
	}
	r.Name, r.Description, r.Parent = row.Name, row.Description, row.Parent
	r.Effective = eff
	r.CreateTime, r.UpdateTime = timestamppb.New(row.CreateTime), timestamppb.New(row.UpdateTime)
	r.Etag = aip.ETag(row.Name, row.Revision)
	return r, nil
}

// effective resolves the settings of registry row through its parents.
func effective(ctx context.Context, tx *store.Tx, row store.Registry) (*registryv1.RegistrySettings, error) {
	limits := &registryv1.McpLimits{}
	eff := &registryv1.RegistrySettings{McpLimits: limits}
	var haveAuto, haveApproval, haveMin, haveDeploy, haveRequire bool
	cur := row
	for depth := 0; ; depth++ {
		r := &registryv1.Registry{}
		if err := protojson.Unmarshal(cur.Settings, r); err != nil {
			return nil, fmt.Errorf("stored settings of %q: %w", cur.Name, err)
		}
		if !haveAuto && r.AutoUpgrade != nil {
			eff.AutoUpgrade, haveAuto = r.GetAutoUpgrade(), true
		}
		if !haveApproval && r.ApprovalRequired != nil {
			eff.ApprovalRequired, haveApproval = r.GetApprovalRequired(), true
		}
		if !haveDeploy && r.DeploymentsEnabled != nil {
			eff.DeploymentsEnabled, haveDeploy = r.GetDeploymentsEnabled(), true
		}
		if !haveRequire && r.RequireRecordedTools != nil {
			eff.RequireRecordedTools, haveRequire = r.GetRequireRecordedTools(), true
		}
		if !haveMin && r.MinApprovals != nil {
			eff.MinApprovals, haveMin = r.GetMinApprovals(), true
		}
		if len(eff.OwnerTeams) == 0 {
			eff.OwnerTeams = r.GetOwnerTeams()
		}
		if len(eff.Namespaces) == 0 {
			eff.Namespaces = r.GetNamespaces()
		}
		if eff.ToolPolicy == registryv1.ToolPolicy_TOOL_POLICY_UNSPECIFIED {
			eff.ToolPolicy = r.GetToolPolicy()
		}
		if eff.RolloutPolicy.GetStrategy() == registryv1.RolloutPolicy_STRATEGY_UNSPECIFIED {
			eff.RolloutPolicy = r.GetRolloutPolicy()
		}
		inheritLimits(limits, r.GetMcpLimits())
		if cur.Parent == "" || depth >= maxDepth {
			break
		}
		next, err := tx.Registry(ctx, cur.Parent, false)
		if err != nil {
			return nil, fmt.Errorf("parent of %q: %w", cur.Name, err)
		}
		cur = next
	}
	if eff.MinApprovals == 0 {
		eff.MinApprovals = 1
	}
	if !haveDeploy {
		eff.DeploymentsEnabled = true
	}
	if eff.ToolPolicy == registryv1.ToolPolicy_TOOL_POLICY_UNSPECIFIED {
		eff.ToolPolicy = registryv1.ToolPolicy_TOOL_POLICY_ALL
	}
	if eff.RolloutPolicy.GetStrategy() == registryv1.RolloutPolicy_STRATEGY_UNSPECIFIED {
		eff.RolloutPolicy = &registryv1.RolloutPolicy{Strategy: registryv1.RolloutPolicy_STRATEGY_DIRECT}
	}
	if limits.MaxRequestBytes == 0 {
		limits.MaxRequestBytes = MaxRequestBytes
	}
	return eff, nil
}

// MaxRequestBytes is the default and largest McpLimits.max_request_bytes;
// the other limits are off unless set.
const MaxRequestBytes = 4 << 20

// inheritLimits fills each field of eff still 0 from own.
func inheritLimits(eff, own *registryv1.McpLimits) {
	if eff.RequestsPerMinutePerCaller == 0 {
		eff.RequestsPerMinutePerCaller = own.GetRequestsPerMinutePerCaller()
	}
	if eff.RequestsPerMinutePerServer == 0 {
		eff.RequestsPerMinutePerServer = own.GetRequestsPerMinutePerServer()
	}
	if eff.SessionsPerCaller == 0 {
		eff.SessionsPerCaller = own.GetSessionsPerCaller()
	}
	if eff.MaxRequestBytes == 0 {
		eff.MaxRequestBytes = own.GetMaxRequestBytes()
	}
}

// checkParent refuses a parent outside the organization, missing, the
// registry itself or one of its descendants, or too deep a chain.
func checkParent(ctx context.Context, tx *store.Tx, name, parent string) error {
	if parent == "" {
		return nil
	}
	if orgOf(parent) != orgOf(name) {
		return errs.Field("registry.parent", "must be a registry of the same organization")
	}
	cur := parent
	for depth := 0; cur != ""; depth++ {
		if cur == name {
			return errs.Field("registry.parent", "%q would make a cycle", parent)
		}
		if depth >= maxDepth {
			return errs.Field("registry.parent", "makes a chain deeper than %d registries", maxDepth)
		}
		r, err := tx.Registry(ctx, cur, false)
		if err != nil {
			if depth == 0 {
				return errs.Field("registry.parent", "%q does not exist", parent)
			}
			return err
		}
		cur = r.Parent
	}
	return nil
}

func (s *Service) registryProto(ctx context.Context, tx *store.Tx, row store.Registry) (*registryv1.Registry, error) {
	eff, err := effective(ctx, tx, row)
	if err != nil {
		return nil, err
	}
	return registryToProto(row, eff)
}

// expandNames turns a bare parent registry id and bare owner team ids
// into resource names in org.
func expandNames(org string, r *registryv1.Registry) {
	if p := r.GetParent(); p != "" && !strings.Contains(p, "/") {
		r.Parent = "orgs/" + org + "/registries/" + p
	}
	for i, t := range r.GetOwnerTeams() {
		if !strings.Contains(t, "/") {
			r.OwnerTeams[i] = "orgs/" + org + "/teams/" + t
		}
	}
}

// CreateRegistry implements RegistryService.
func (s *Service) CreateRegistry(ctx context.Context, req *registryv1.CreateRegistryRequest) (*registryv1.Registry, error) {
	in := req.GetRegistry()
	expandNames(orgOf(req.GetParent()), in)
	name := req.GetParent() + "/registries/" + req.GetRegistryId()
	if err := s.checkOwnerTeams(ctx, orgOf(name), in.GetOwnerTeams()); err != nil {
		return nil, err
	}
	if _, err := s.store.Read().Registry(ctx, name, false); errors.Is(err, errs.ErrNotFound) {
		// A new id: grants left on an earlier registry of this id go first.
		if err := s.purgeBindings(ctx, name); err != nil {
			return nil, err
		}
		if err := s.purgeValues(ctx, name); err != nil {
			return nil, err
		}
	}
	var out *registryv1.Registry
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		if id := req.GetRequestId(); id != "" {
			prev, ok, err := tx.RegistryByRequestID(ctx, id)
			if err != nil {
				return err
			}
			if ok && prev.Name != name {
				return fmt.Errorf("request_id %q created %q: %w", id, prev.Name, errs.ErrRequestIDReused)
			}
			if ok {
				out, err = s.registryProto(ctx, tx, prev)
				return err
			}
		}
		if err := checkParent(ctx, tx, name, in.GetParent()); err != nil {
			return err
		}
		row := store.Registry{Name: name, Organization: orgOf(name), Description: in.GetDescription(), Parent: in.GetParent(),
			Settings: ownSettings(in), CreateTime: tx.Now(), UpdateTime: tx.Now(), Revision: 1}
		if err := tx.InsertRegistry(ctx, row, req.GetRequestId()); err != nil {
			return err
		}
		ev := outbox.NewEvent(ctx, row.Organization, server.ActionFor(registryv1.RegistryService_CreateRegistry_FullMethodName), name)
		ev.Metadata = map[string]string{"settings": string(row.Settings), "parent": row.Parent}
		tx.Audit(ev)
		var err error
		out, err = s.registryProto(ctx, tx, row)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRegistry implements RegistryService.
func (s *Service) GetRegistry(ctx context.Context, req *registryv1.GetRegistryRequest) (*registryv1.Registry, error) {
	tx := s.store.Read()
	row, err := tx.Registry(ctx, req.GetName(), false)
	if err != nil {
		return nil, err
	}
	return s.registryProto(ctx, tx, row)
}

// ListRegistries implements RegistryService: the registries the caller may
// see (registries.get on the organization, or on the registry).
func (s *Service) ListRegistries(ctx context.Context, req *registryv1.ListRegistriesRequest) (*registryv1.ListRegistriesResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.registry.v1.ListRegistries", req.GetParent()))
	if err != nil {
		return nil, err
	}
	tx := s.store.Read()
	all, parentErr := s.allowed(ctx, "registries.get", req.GetParent())
	if !all && (!errs.Known(parentErr) || errors.Is(parentErr, errs.ErrNotFound)) {
		return nil, parentErr // not a member: see ListEntries
	}
	limit := page.Limit()
	if !all {
		limit = 0 // filtered item by item: read them all
	}
	rows, err := tx.Registries(ctx, orgOf(req.GetParent()), page.After, limit)
	if err != nil {
		return nil, err
	}
	if !all {
		rows, err = filterVisible(ctx, s, "registries.get", rows, func(r store.Registry) string { return r.Name })
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 && page.After == "" {
			return nil, parentErr
		}
	}
	resp := &registryv1.ListRegistriesResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(r store.Registry) string { return r.Name })
	for _, r := range rows {
		p, err := s.registryProto(ctx, tx, r)
		if err != nil {
			return nil, err
		}
		resp.Registries = append(resp.Registries, p)
	}
	return resp, nil
}

// namespaceAllowed reports whether an official server name is in one of
// the namespaces (all when there are none); com.acme allows
// com.acme/x and com.acme.platform/x.
func namespaceAllowed(serverName string, namespaces []string) bool {
	if len(namespaces) == 0 {
		return true
	}
	ns, _, _ := strings.Cut(serverName, "/")
	for _, n := range namespaces {
		if ns == n || strings.HasPrefix(ns, n+".") {
			return true
		}
	}
	return false
}

// allowed reports whether the caller holds permission on resource; when
// not, err is the refusal to answer if nothing below it is visible either.
func (s *Service) allowed(ctx context.Context, permission, resource string) (bool, error) {
	p, _ := auth.FromContext(ctx)
	err := s.authz.Authorize(ctx, p, permission, resource)
	if err == nil {
		return true, nil
	}
	return false, err
}

// filterVisible keeps the items the caller holds permission on.
func filterVisible[T any](ctx context.Context, s *Service, permission string, items []T, name func(T) string) ([]T, error) {
	p, _ := auth.FromContext(ctx)
	var out []T
	for _, it := range items {
		err := s.authz.Authorize(ctx, p, permission, name(it))
		switch {
		case err == nil:
			out = append(out, it)
		case errs.Known(err):
		default:
			return nil, err
		}
	}
	return out, nil
}

// UpdateRegistry implements RegistryService.
func (s *Service) UpdateRegistry(ctx context.Context, req *registryv1.UpdateRegistryRequest) (*registryv1.UpdateRegistryResponse, error) {
	in := req.GetRegistry()
	expandNames(orgOf(in.GetName()), in)
	paths, err := registryPaths(req)
	if err != nil {
		return nil, errs.Field("update_mask", "%v", err)
	}
	if slices.Contains(paths, "owner_teams") {
		if err := s.checkOwnerTeams(ctx, orgOf(in.GetName()), in.GetOwnerTeams()); err != nil {
			return nil, err
		}
	}
	resp := &registryv1.UpdateRegistryResponse{}
	err = s.store.Tx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Registry(ctx, in.GetName(), true)
		if err != nil {
			return err
		}
		if in.GetEtag() != "" && !aip.ETagMatches(in.GetEtag(), aip.ETag(cur.Name, cur.Revision)) {
			return fmt.Errorf("registry %q: %w", cur.Name, errs.ErrEtagMismatch)
		}
		eff, err := effective(ctx, tx, cur)
		if err != nil {
			return err
		}
		if eff.GetApprovalRequired() {
			// What can be checked now is checked now: a request that could
			// never apply is refused, not left for approvers.
			if slices.Contains(paths, "parent") {
				if err := checkParent(ctx, tx, cur.Name, in.GetParent()); err != nil {
					return err
				}
			}
			a := &registryv1.Approval{Kind: registryv1.Approval_KIND_UPDATE_REGISTRY, Registry: in,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}, Reason: req.GetReason()}
			created, err := s.request(ctx, tx, cur, eff, a)
			if err != nil {
				return err
			}
			resp.Result = &registryv1.UpdateRegistryResponse_Approval{Approval: created}
			return nil
		}
		updated, err := s.applyRegistryUpdate(ctx, tx, cur, in, paths)
		if err != nil {
			return err
		}
		resp.Result = &registryv1.UpdateRegistryResponse_Registry{Registry: updated}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// applyRegistryUpdate sets the fields in paths of cur from in.
func (s *Service) applyRegistryUpdate(ctx context.Context, tx *store.Tx, cur store.Registry, in *registryv1.Registry, paths []string) (*registryv1.Registry, error) {
	old, err := registryToProto(cur, nil)
	if err != nil {
		return nil, err
	}
	next := proto.Clone(old).(*registryv1.Registry)
	sort.Strings(paths)
	for _, p := range paths {
		switch p {
		case "description":
			next.Description = in.GetDescription()
		case "parent":
			if err := checkParent(ctx, tx, cur.Name, in.GetParent()); err != nil {
				return nil, err
			}
			next.Parent = in.GetParent()
		case "auto_upgrade":
			next.AutoUpgrade = in.AutoUpgrade
		case "approval_required":
			next.ApprovalRequired = in.ApprovalRequired
		case "min_approvals":
			next.MinApprovals = in.MinApprovals
		case "owner_teams":
			next.OwnerTeams = in.GetOwnerTeams()
		case "namespaces":
			next.Namespaces = in.GetNamespaces()
		case "tool_policy":
			next.ToolPolicy = in.GetToolPolicy()
		case "rollout_policy":
			next.RolloutPolicy = in.GetRolloutPolicy()
		case "deployments_enabled":
			next.DeploymentsEnabled = in.DeploymentsEnabled
		case "require_recorded_tools":
			next.RequireRecordedTools = in.RequireRecordedTools
		case "mcp_limits":
			next.McpLimits = in.GetMcpLimits()
		default:
			return nil, errs.Field("update_mask", "%q is not an updatable field", p)
		}
	}
	row := cur
	row.Description, row.Parent, row.Settings = next.GetDescription(), next.GetParent(), ownSettings(next)
	updated, err := tx.UpdateRegistry(ctx, row)
	if err != nil {
		return nil, err
	}
	ev := outbox.NewEvent(ctx, cur.Organization, server.ActionFor(registryv1.RegistryService_UpdateRegistry_FullMethodName), cur.Name)
	ev.Metadata = map[string]string{"update_mask": strings.Join(paths, ",")}
	if old.GetDescription() != next.GetDescription() {
		ev.Changes = append(ev.Changes, outbox.Change("description", old.GetDescription(), next.GetDescription()))
	}
	if old.GetParent() != next.GetParent() {
		ev.Changes = append(ev.Changes, outbox.Change("parent", old.GetParent(), next.GetParent()))
	}
	if o, n := string(cur.Settings), string(row.Settings); o != n {
		ev.Changes = append(ev.Changes, outbox.Change("settings", o, n))
	}
	tx.Audit(ev)
	return s.registryProto(ctx, tx, updated)
}

// DeleteRegistry implements RegistryService.
func (s *Service) DeleteRegistry(ctx context.Context, req *registryv1.DeleteRegistryRequest) (*emptypb.Empty, error) {
	if _, err := s.store.Read().Registry(ctx, req.GetName(), false); err != nil {
		return nil, err
	}
	// The grants on the registry go first (see DeleteServer).
	if err := s.purgeBindings(ctx, req.GetName()); err != nil {
		return nil, err
	}
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Registry(ctx, req.GetName(), true)
		if err != nil {
			return err
		}
		if req.GetEtag() != "" && !aip.ETagMatches(req.GetEtag(), aip.ETag(cur.Name, cur.Revision)) {
			return fmt.Errorf("registry %q: %w", cur.Name, errs.ErrEtagMismatch)
		}
		if n, err := tx.CountEntries(ctx, cur.Name); err != nil {
			return err
		} else if n > 0 {
			return fmt.Errorf("registry %q has %d entries: unpin them first: %w", cur.Name, n, errs.ErrFailedPrecondition)
		}
		if n, err := tx.Children(ctx, cur.Name); err != nil {
			return err
		} else if n > 0 {
			return fmt.Errorf("registry %q is the parent of %d registries: %w", cur.Name, n, errs.ErrFailedPrecondition)
		}
		if err := tx.DeleteRegistry(ctx, cur.Name); err != nil {
			return err
		}
		tx.Audit(outbox.NewEvent(ctx, cur.Organization, server.ActionFor(registryv1.RegistryService_DeleteRegistry_FullMethodName), cur.Name))
		return nil
	})
	if err != nil {
		return nil, err
	}
	_ = s.purgeBindings(ctx, req.GetName())
	_ = s.purgeValues(ctx, req.GetName())
	return &emptypb.Empty{}, nil
}

// checkOwnerTeams checks that every owner team is a team of org that
// exists in the orgs service.
func (s *Service) checkOwnerTeams(ctx context.Context, org string, teams []string) error {
	for i, t := range teams {
		field := fmt.Sprintf("registry.owner_teams[%d]", i)
		if orgOf(t) != org {
			return errs.Field(field, "%s is not a team of orgs/%s", t, org)
		}
		if s.orgs == nil {
			return fmt.Errorf("%s: cannot check that %s exists without the orgs service: %w", field, t, errs.ErrUnavailable)
		}
		switch err := s.orgs.TeamExists(ctx, t); {
		case errors.Is(err, errs.ErrNotFound):
			return errs.Field(field, "team %s does not exist", t)
		case err != nil:
			return fmt.Errorf("%s: cannot check that %s exists: %v: %w", field, t, err, errs.ErrUnavailable)
		}
	}
	return nil
}
