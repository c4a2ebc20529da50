package deploy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/deploy/internal/instance"
	"github.com/pyleeai/pylee/services/deploy/internal/store"
)

var (
	deploymentName = aip.MustPattern("orgs/{org}/registries/{registry}/deployments/{deployment}")
	registryName   = aip.MustPattern("orgs/{org}/registries/{registry}")
	paging         = aip.Paging{Default: 50, Max: 1000}
)

// Service implements pylee.deploy.v1.DeployService.
type Service struct {
	deployv1.UnimplementedDeployServiceServer
	c      *Controller
	tokens *aip.PageTokens
}

// NewService returns the service over c.
func NewService(c *Controller, tokens *aip.PageTokens) *Service {
	return &Service{c: c, tokens: tokens}
}

// Register adds the service to srv.
func (s *Service) Register(srv *server.Server) {
	srv.RegisterService(&deployv1.DeployService_ServiceDesc, s, Validators())
}

// Validators returns the hand-written validator of every RPC (resource
// names, and what crosses fields), keyed by full method name.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		deployv1.DeployService_GetDeployment_FullMethodName:     server.NameOnly("name", deploymentName, (*deployv1.GetDeploymentRequest).GetName),
		deployv1.DeployService_ListDeployments_FullMethodName:   server.NameOnly("parent", registryName, (*deployv1.ListDeploymentsRequest).GetParent),
		deployv1.DeployService_WatchDeployments_FullMethodName:  server.NameOnly("parent", registryName, (*deployv1.WatchDeploymentsRequest).GetParent),
		deployv1.DeployService_RestartDeployment_FullMethodName: server.NameOnly("name", deploymentName, (*deployv1.RestartDeploymentRequest).GetName),
		deployv1.DeployService_GetDeploymentLogs_FullMethodName: server.NameOnly("name", deploymentName, (*deployv1.GetDeploymentLogsRequest).GetName),
		deployv1.DeployService_RollbackDeployment_FullMethodName: server.ValidatorOf(func(r *deployv1.RollbackDeploymentRequest) error {
			var v errs.Violations
			_, err := deploymentName.Parse(r.GetName())
			v.Check("name", err)
			v.Check("reason", aip.CheckText(r.GetReason(), 500, true))
			return v.Err()
		}),
		deployv1.DeployService_ResolveUpstream_FullMethodName: server.ValidatorOf(func(r *deployv1.ResolveUpstreamRequest) error {
			var v errs.Violations
			_, err := deploymentName.Parse(r.GetName())
			v.Check("name", err)
			if u := r.GetUser(); u != "" && (!strings.HasPrefix(u, "users/") || len(u) > 300) {
				v.Check("user", fmt.Errorf("must be users/{user}"))
			}
			return v.Err()
		}),
		deployv1.DeployService_ReportCallOutcomes_FullMethodName: server.ValidatorOf(func(r *deployv1.ReportCallOutcomesRequest) error {
			var v errs.Violations
			_, err := deploymentName.Parse(r.GetName())
			v.Check("name", err)
			for i, o := range r.GetVersions() {
				c := o.GetCounts()
				if c.GetCalls() < 0 || c.GetRpcErrors() < 0 || c.GetTransportErrors() < 0 || c.GetTimeouts() < 0 || c.GetToolErrors() < 0 ||
					c.GetRpcErrors()+c.GetTransportErrors()+c.GetTimeouts() > c.GetCalls() {
					v.Check(fmt.Sprintf("versions[%d].counts", i), fmt.Errorf("must be non-negative, with no more failures than calls"))
				}
			}
			return v.Err()
		}),
	}
}

func (s *Service) deployment(name string) (*deployment, error) {
	d, ok := s.c.get(name)
	if !ok {
		return nil, fmt.Errorf("deployment %q: %w", name, errs.ErrNotFound)
	}
	return d, nil
}

// GetDeployment implements DeployService.
func (s *Service) GetDeployment(_ context.Context, req *deployv1.GetDeploymentRequest) (*deployv1.Deployment, error) {
	d, err := s.deployment(req.GetName())
	if err != nil {
		return nil, err
	}
	return d.toProto(), nil
}

// ListDeployments implements DeployService.
func (s *Service) ListDeployments(ctx context.Context, req *deployv1.ListDeploymentsRequest) (*deployv1.ListDeploymentsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.deploy.v1.ListDeployments", req.GetParent()))
	if err != nil {
		return nil, err
	}
	var rows []*deployment
	for _, d := range s.c.list(req.GetParent()) {
		if d.rec.Name > page.After {
			rows = append(rows, d)
		}
		if len(rows) == page.Limit() {
			break
		}
	}
	resp := &deployv1.ListDeploymentsResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(d *deployment) string { return d.rec.Name })
	for _, d := range rows {
		resp.Deployments = append(resp.Deployments, d.toProto())
	}
	return resp, nil
}

// WatchDeployments implements DeployService.
func (s *Service) WatchDeployments(req *deployv1.WatchDeploymentsRequest, stream deployv1.DeployService_WatchDeploymentsServer) error {
	sent := map[string]string{}
	for {
		wait := s.c.changes.Wait()
		for _, d := range s.c.list(req.GetParent()) {
			p := d.toProto()
			key := p.GetEtag() + p.GetPhase().String() + fmt.Sprint(instanceKey(p))
			if sent[p.GetName()] == key {
				continue
			}
			if err := stream.Send(p); err != nil {
				return err
			}
			sent[p.GetName()] = key
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-wait:
		case <-time.After(5 * time.Second):
		}
	}
}

func instanceKey(p *deployv1.Deployment) []string {
	var out []string
	for _, in := range p.GetInstances() {
		out = append(out, in.GetId()+in.GetState().String()+fmt.Sprint(in.GetRestarts()))
	}
	return out
}

// RollbackDeployment implements DeployService.
func (s *Service) RollbackDeployment(ctx context.Context, req *deployv1.RollbackDeploymentRequest) (*deployv1.Deployment, error) {
	d, err := s.deployment(req.GetName())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	prev, current := d.previous(), d.rec.Pinned
	d.mu.Unlock()
	if prev == "" {
		return nil, fmt.Errorf("%s: %w: %w", req.GetName(), errNoPrevious, errs.ErrFailedPrecondition)
	}
	p, _ := auth.FromContext(ctx)
	reason := "rollback requested by " + p.Name
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	entry := strings.Replace(req.GetName(), "/deployments/", "/entries/", 1)
	if err := s.c.reg.Pin(ctx, entry, prev, reason); err != nil {
		return nil, fmt.Errorf("re-pinning %s: %v: %w", prev, err, errs.ErrUnavailable)
	}
	// Switch now rather than when the watch brings the pin back.
	d.mu.Lock()
	if d.rec.Pinned == current {
		d.rec.Pinned = prev
	}
	ev := outbox.NewEvent(ctx, d.rec.Organization, server.ActionFor(deployv1.DeployService_RollbackDeployment_FullMethodName), d.rec.Name)
	ev.Changes = append(ev.Changes, outbox.Change("version", current, prev))
	ev.Metadata = map[string]string{"reason": reason}
	d.events = append(d.events, ev)
	d.mu.Unlock()
	d.reconcile(ctx)
	return d.toProto(), nil
}

// RestartDeployment implements DeployService.
func (s *Service) RestartDeployment(ctx context.Context, req *deployv1.RestartDeploymentRequest) (*deployv1.Deployment, error) {
	d, err := s.deployment(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.c.restart(ctx, d, "restart requested"); err != nil {
		return nil, err
	}
	d.mu.Lock()
	ev := outbox.NewEvent(ctx, d.rec.Organization, server.ActionFor(deployv1.DeployService_RestartDeployment_FullMethodName), d.rec.Name)
	d.mu.Unlock()
	if err := s.c.st.Tx(ctx, func(tx *store.Tx) error { tx.Audit(ev); return nil }); err != nil {
		return nil, err
	}
	return d.toProto(), nil
}

// GetDeploymentLogs implements DeployService.
func (s *Service) GetDeploymentLogs(_ context.Context, req *deployv1.GetDeploymentLogsRequest) (*deployv1.GetDeploymentLogsResponse, error) {
	d, err := s.deployment(req.GetName())
	if err != nil {
		return nil, err
	}
	tail := int(req.GetTailLines())
	if tail == 0 {
		tail = 200
	}
	resp := &deployv1.GetDeploymentLogsResponse{}
	for _, in := range d.instances() {
		st := in.Status()
		if req.GetInstance() != "" && req.GetInstance() != st.ID {
			continue
		}
		lines, dropped := in.Logs().Tail(tail)
		resp.Instances = append(resp.Instances, &deployv1.GetDeploymentLogsResponse_InstanceLog{Instance: st.ID, Version: st.Version,
			Lines: lines, DroppedLines: dropped})
	}
	if req.GetInstance() != "" && len(resp.Instances) == 0 {
		return nil, fmt.Errorf("instance %q of %s: %w", req.GetInstance(), req.GetName(), errs.ErrNotFound)
	}
	return resp, nil
}

// ResolveUpstream implements DeployService.
func (s *Service) ResolveUpstream(ctx context.Context, req *deployv1.ResolveUpstreamRequest) (*deployv1.Upstream, error) {
	return s.c.Resolve(ctx, req.GetName(), req.GetUser(), req.GetVersion())
}

// ReportCallOutcomes implements DeployService.
func (s *Service) ReportCallOutcomes(_ context.Context, req *deployv1.ReportCallOutcomesRequest) (*deployv1.ReportCallOutcomesResponse, error) {
	retired, err := s.c.Report(req.GetName(), req.GetVersions())
	if err != nil {
		return nil, err
	}
	return &deployv1.ReportCallOutcomesResponse{RetiredVersions: retired}, nil
}

// instances returns every instance of d.
func (d *deployment) instances() []*instance.Instance {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*instance.Instance
	for _, a := range d.arms {
		if a.shared != nil {
			out = append(out, a.shared)
		}
		for _, u := range a.users {
			out = append(out, u.inst)
		}
	}
	return out
}

// restart replaces every instance of d gracefully: for each shared one,
// a new instance (with freshly resolved values) first, then the old one
// drained; per-user instances stop and start again on their user's next
// call.
func (c *Controller) restart(ctx context.Context, d *deployment, why string) error {
	d.mu.Lock()
	arms := make([]*arm, 0, len(d.arms))
	for _, a := range d.arms {
		arms = append(arms, a)
	}
	d.mu.Unlock()
	for _, a := range arms {
		if err := c.replace(ctx, d, a, why, true); err != nil {
			return err
		}
	}
	return nil
}

// replace starts a new shared instance of a with freshly resolved values
// (when always, or when they changed) and drains the old one.
func (c *Controller) replace(ctx context.Context, d *deployment, a *arm, why string, always bool) error {
	if a.doc == nil || a.runtime == "" {
		return nil
	}
	vals, err := c.sec.Resolve(ctx, d.rec.Registry, d.server(), "")
	if err != nil {
		return fmt.Errorf("resolving inputs: %v: %w", err, errs.ErrUnavailable)
	}
	p, rt, err := c.choose(ctx, a.doc, vals)
	if err != nil {
		return fmt.Errorf("%v: %w", err, errs.ErrFailedPrecondition)
	}
	d.mu.Lock()
	same := reflect.DeepEqual(p, a.plan)
	old, users := a.shared, a.users
	if !always && same {
		d.mu.Unlock()
		return nil
	}
	a.users = map[string]*userInstance{}
	d.mu.Unlock()
	for _, u := range users {
		go u.inst.Stop()
	}
	if p.Runtime == "remote" || p.UserScoped || len(p.Missing) > 0 {
		d.mu.Lock()
		a.plan, a.shared = p, nil
		d.mu.Unlock()
		if old != nil {
			go old.Stop()
		}
		d.wake()
		return nil
	}
	inst, err := instance.Start(c.instanceID(), a.version, "", p, rt, c.instanceOptions(), d.onInstance)
	if err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, inst); err != nil {
		inst.Stop()
		return fmt.Errorf("the new instance (%s): %w", why, err)
	}
	d.mu.Lock()
	if d.arms[a.version] != a {
		d.mu.Unlock()
		inst.Stop()
		return nil
	}
	a.plan, a.shared = p, inst
	d.mu.Unlock()
	if old != nil {
		go func() {
			time.Sleep(c.opts.Drain)
			old.Stop()
		}()
	}
	c.changed()
	return nil
}
