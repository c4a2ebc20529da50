package deploy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/deploy/internal/instance"
	"github.com/pyleeai/pylee/services/deploy/internal/plan"
)

// pick chooses a version by weight.
func pick(w map[string]int) string {
	total := 0
	versions := make([]string, 0, len(w))
	for v, n := range w {
		if n > 0 {
			total += n
			versions = append(versions, v)
		}
	}
	if total == 0 {
		return ""
	}
	sort.Strings(versions)
	n := rand.IntN(total) //nolint:gosec // spreading sessions by weight, not a secret
	for _, v := range versions {
		if n < w[v] {
			return v
		}
		n -= w[v]
	}
	return versions[len(versions)-1]
}

// Resolve tells the gateway where a session of user goes: the version it
// already uses while that still takes traffic, else one chosen by weight.
func (c *Controller) Resolve(ctx context.Context, name, user, version string) (*deployv1.Upstream, error) {
	d, ok := c.get(name)
	if !ok {
		return nil, fmt.Errorf("deployment %q: %w", name, errs.ErrNotFound)
	}
	d.mu.Lock()
	w := d.weights()
	serving := true
	chosen := ""
	if version != "" {
		if w[version] > 0 {
			chosen = version
		} else {
			serving = false
		}
	}
	if chosen == "" {
		chosen = pick(w)
	}
	// Inputs missing at the shared scopes may be a user's own: such a
	// version runs per user, for the users whose values complete it.
	if chosen == "" && user != "" && !d.rec.RolledBack {
		if a := d.arms[d.rec.Stable]; a != nil && a.failure == deployv1.Deployment_PHASE_MISSING_INPUTS && a.doc != nil {
			chosen = d.rec.Stable
		}
	}
	a := d.arms[chosen]
	phase := d.phase
	// What the arm is now, read under the lock (a restart replaces its
	// plan and instance).
	var failure deployv1.Deployment_Phase
	var p plan.Plan
	var shared *instance.Instance
	var missing []string
	if a != nil {
		failure, p, shared, missing = a.failure, a.plan, a.shared, a.missing
	}
	d.mu.Unlock()
	perUserOnly := a != nil && failure == deployv1.Deployment_PHASE_MISSING_INPUTS && user != ""
	if chosen == "" || a == nil || failure != 0 && !perUserOnly {
		return nil, fmt.Errorf("%s serves no version yet (%s): %w", name, strings.TrimPrefix(phase.String(), "PHASE_"), errs.ErrUnavailable)
	}
	up := &deployv1.Upstream{Version: chosen, Serving: serving}
	if user != "" && p.Asks {
		vals, err := c.sec.Resolve(ctx, d.rec.Registry, d.server(), user)
		if err != nil {
			return nil, fmt.Errorf("resolving %s's inputs: %v: %w", user, err, errs.ErrUnavailable)
		}
		up, _, err := c.choose(ctx, a.doc, vals)
		switch {
		case err == nil && up.UserScoped && (perUserOnly || up.Runtime == p.Runtime):
			p = up
		case perUserOnly && err == nil:
			return nil, fmt.Errorf("%s needs values for %s (at the user's own scope or above): %w", name, strings.Join(up.Missing, ", "), errs.ErrFailedPrecondition)
		case perUserOnly:
			return nil, fmt.Errorf("%s: %v: %w", name, err, errs.ErrFailedPrecondition)
		}
	} else if perUserOnly {
		return nil, fmt.Errorf("%s needs values for %s: %w", name, strings.Join(missing, ", "), errs.ErrFailedPrecondition)
	}
	if p.Runtime == plan.Remote {
		up.Url, up.Transport, up.Headers = p.URL, p.Transport, p.Headers
		return up, nil
	}
	up.Transport = "streamable-http"
	if !p.UserScoped {
		if shared == nil {
			return nil, fmt.Errorf("%s %s has no running instance: %w", name, chosen, errs.ErrUnavailable)
		}
		up.Url, up.Instance = shared.Address(), shared.Status().ID
		return up, nil
	}
	inst, err := c.userInstance(ctx, d, a, user, p)
	if err != nil {
		return nil, err
	}
	up.Url, up.Instance = inst.Address(), inst.Status().ID
	return up, nil
}

// userInstance returns user's instance of arm a, starting it (and waiting
// for its health) on the user's first call.
func (c *Controller) userInstance(ctx context.Context, d *deployment, a *arm, user string, p plan.Plan) (*instance.Instance, error) {
	if len(p.Missing) > 0 {
		return nil, fmt.Errorf("%s has no value for %s: %w", user, strings.Join(p.Missing, ", "), errs.ErrFailedPrecondition)
	}
	for {
		d.mu.Lock()
		if ui := a.users[user]; ui != nil {
			ui.lastUsed = time.Now()
			d.mu.Unlock()
			return ui.inst, c.waitHealthy(ctx, ui.inst)
		}
		if wait, ok := d.usersStarting[user]; ok {
			d.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		d.usersStarting[user] = done
		d.mu.Unlock()
		rt, _ := c.runtimeFor(p.Runtime)
		inst, err := instance.Start(c.instanceID(), a.version, user, p, rt, c.instanceOptions(), d.onInstance)
		d.mu.Lock()
		delete(d.usersStarting, user)
		close(done)
		if err == nil {
			if d.arms[a.version] == a {
				a.users[user] = &userInstance{inst: inst, lastUsed: time.Now()}
			} else {
				go inst.Stop() // the version went meanwhile
				err = fmt.Errorf("version %s was retired: %w", a.version, errs.ErrUnavailable)
			}
		}
		d.mu.Unlock()
		if err != nil {
			return nil, err
		}
		d.c.changed()
		return inst, c.waitHealthy(ctx, inst)
	}
}

func (c *Controller) waitHealthy(ctx context.Context, in *instance.Instance) error {
	deadline := time.Now().Add(c.opts.HealthyWithin)
	for {
		switch s := in.Status(); s.State {
		case instance.Healthy:
			return nil
		case instance.CrashLoop:
			return fmt.Errorf("the instance crash-loops (%s): %w", s.LastExit, errs.ErrUnavailable)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the instance did not become healthy in %s: %w", c.opts.HealthyWithin, errs.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Report adds the gateway's call outcomes to each version's counts and
// returns the reported versions that no longer take traffic.
func (c *Controller) Report(name string, outcomes []*deployv1.VersionOutcomes) ([]string, error) {
	d, ok := c.get(name)
	if !ok {
		return nil, fmt.Errorf("deployment %q: %w", name, errs.ErrNotFound)
	}
	var retired []string
	d.mu.Lock()
	w := d.weights()
	for _, o := range outcomes {
		n := o.GetCounts()
		if a := d.arms[o.GetVersion()]; a != nil {
			add(a.counts, n)
		}
		if w[o.GetVersion()] == 0 {
			retired = append(retired, o.GetVersion())
		}
		for outcome, v := range map[string]int64{"ok": n.GetCalls() - n.GetRpcErrors() - n.GetTransportErrors() - n.GetTimeouts(),
			"rpc_error": n.GetRpcErrors(), "transport_error": n.GetTransportErrors(), "timeout": n.GetTimeouts(), "tool_error": n.GetToolErrors()} {
			if v > 0 {
				c.m.calls.WithLabelValues(d.rec.Registry, serverID(d.rec.Server), o.GetVersion(), outcome).Add(float64(v))
			}
		}
	}
	d.mu.Unlock()
	d.wake()
	return retired, nil
}

func add(to, n *deployv1.CallCounts) {
	to.Calls += n.GetCalls()
	to.RpcErrors += n.GetRpcErrors()
	to.TransportErrors += n.GetTransportErrors()
	to.Timeouts += n.GetTimeouts()
	to.ToolErrors += n.GetToolErrors()
	to.LatencySum = durationpb.New(to.GetLatencySum().AsDuration() + n.GetLatencySum().AsDuration())
}
