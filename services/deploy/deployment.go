package deploy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/services/deploy/internal/instance"
	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
)

// record is what a deployment keeps across restarts of the deploy
// service (stored as JSON): the entry it follows and its rollout.
type record struct {
	Name, Organization, Registry, Server, ServerName string
	// Pinned is the version the entry pins (empty: unpinned), at Revision.
	Pinned   string
	Revision int64
	// Stable serves; Canary is rolling out; Warm is kept for a rollback
	// until WarmUntil.
	Stable, Canary, Warm string
	WarmUntil            time.Time
	Rollout              rolloutRecord
	// Rejected is a version rolled back at RejectedRevision: it is not
	// rolled out again until the entry changes.
	Rejected         string
	RejectedRevision int64
	Reason           string
	RolledBack       bool
}

type rolloutRecord struct {
	Strategy          string
	State             deployv1.Rollout_State
	From, To          string
	Step, Steps       int
	StepStart, Start  time.Time
	End               time.Time
	StartedHealthyBy  time.Time
	WeightPercent     int
	MaxErrorRate      float64
	StepWeights       []int
	StepPauses        []time.Duration
	LastAnalysisCalls int64
}

// arm is a version of a deployment that runs.
type arm struct {
	version string
	doc     map[string]any
	// plan is the shared plan (resolved without a user); runtime the kind.
	plan    plan.Plan
	runtime string
	// shared runs when no value comes from a user scope; users hold the
	// per-user instances otherwise.
	shared *instance.Instance
	users  map[string]*userInstance
	counts *deployv1.CallCounts
	// failure says why the arm cannot run (missing inputs, unsupported).
	failure   deployv1.Deployment_Phase
	reason    string
	missing   []string
	startedAt time.Time
	// retry asks a failed arm to be tried again at the next reconcile.
	retry bool
}

type userInstance struct {
	inst     *instance.Instance
	lastUsed time.Time
}

// healthy reports whether the arm can take traffic.
func (a *arm) healthy() bool {
	if a.failure != 0 {
		return false
	}
	if a.runtime == plan.Remote {
		return true
	}
	if a.shared == nil {
		// Per-user only: healthy until a user's instance says otherwise.
		return a.plan.UserScoped
	}
	return a.shared.Status().State == instance.Healthy
}

func (a *arm) crashLooping() bool {
	return a.shared != nil && a.shared.Status().State == instance.CrashLoop
}

func (a *arm) stop() {
	if a.shared != nil {
		a.shared.Stop()
		a.shared = nil
	}
	for u, ui := range a.users {
		ui.inst.Stop()
		delete(a.users, u)
	}
}

// deployment is one entry's running form.
type deployment struct {
	c    *Controller
	kick chan struct{}
	done chan struct{}

	mu     sync.Mutex
	rec    record
	policy *registryv1.RolloutPolicy
	arms   map[string]*arm
	phase  deployv1.Deployment_Phase
	update time.Time
	// usersStarting guards against starting a user's instance twice.
	usersStarting map[string]chan struct{}
	// events are the audit events of the change being reconciled.
	events []*auditv1.Event
}

func (d *deployment) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// run reconciles on every kick and tick until ctx ends, then stops
// everything it runs.
func (d *deployment) run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.c.opts.Tick)
	defer t.Stop()
	for {
		d.reconcile(ctx)
		select {
		case <-ctx.Done():
			d.mu.Lock()
			arms := d.arms
			d.arms = map[string]*arm{}
			d.mu.Unlock()
			for _, a := range arms {
				a.stop()
			}
			return
		case <-d.kick:
		case <-t.C:
		}
	}
}

// server is the deployment's server, read under its lock.
func (d *deployment) server() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rec.Server
}

// setSpec records the entry's pin from an entry event.
func (d *deployment) setSpec(e *registryv1.Entry, revision int64, unpinned bool) {
	d.mu.Lock()
	if unpinned {
		d.rec.Pinned = ""
	} else {
		d.rec.Pinned = e.GetVersion()
		if d.rec.Server != e.GetServer() || d.rec.ServerName != e.GetServerName() {
			d.rec.Server, d.rec.ServerName = e.GetServer(), e.GetServerName()
		}
	}
	d.rec.Revision = revision
	d.mu.Unlock()
	d.wake()
}

// reconcile moves what runs one step toward what the entry pins.
func (d *deployment) reconcile(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	before, beforeRec := d.phase, d.rec
	d.reconcileLocked(ctx)
	d.phase = d.computePhase()
	recChanged := !reflect.DeepEqual(d.rec, beforeRec)
	if d.phase != before || recChanged {
		d.update = time.Now()
		d.c.changed()
	}
	if recChanged || len(d.events) > 0 {
		d.c.save(ctx, d.rec, d.events)
		d.events = nil
	}
}

func (d *deployment) reconcileLocked(ctx context.Context) {
	r := &d.rec
	now := time.Now()
	// Unpinned: nothing runs.
	if r.Pinned == "" {
		for v, a := range d.arms {
			a.stop()
			delete(d.arms, v)
		}
		r.Stable, r.Canary, r.Warm = "", "", ""
		return
	}
	// The warm version's time is up.
	if r.Warm != "" && now.After(r.WarmUntil) && r.Warm != r.Pinned {
		d.dropArm(r.Warm)
		r.Warm = ""
	}
	// Per-user instances idle too long stop.
	for _, a := range d.arms {
		for u, ui := range a.users {
			if now.Sub(ui.lastUsed) > d.c.opts.UserIdle {
				ui.inst.Stop()
				delete(a.users, u)
			}
		}
	}
	switch {
	case r.Stable == "" && r.Canary == "":
		// First deployment: start the pinned version; it serves once
		// healthy.
		a := d.ensureArm(ctx, r.Pinned)
		r.Stable = r.Pinned
		r.RolledBack = false
		r.Rollout = rolloutRecord{Strategy: "direct", State: deployv1.Rollout_STATE_STARTING, To: r.Pinned, Start: now, Steps: 1}
		if a.failure == 0 && a.healthy() {
			d.finishRollout(now)
		}
		return
	}
	// After a restart of the deploy service, what the record says runs is
	// started again: the stable version, and the warm one while its time
	// lasts (an instant rollback still needs it).
	// A version that could not start is tried again when due.
	if r.Stable != "" {
		d.ensureArm(ctx, r.Stable)
	}
	if r.Warm != "" {
		d.ensureArm(ctx, r.Warm)
	}
	switch {
	case r.Pinned == r.Rejected && r.Revision == r.RejectedRevision:
		// Just rolled back; wait for the re-pin to arrive.
		return
	case r.Pinned == r.Stable:
		if r.Canary != "" {
			// Re-pinned to the stable version mid-rollout: the canary goes.
			d.dropArm(r.Canary)
			r.Canary = ""
			r.Rollout.State, r.Rollout.End = deployv1.Rollout_STATE_ROLLED_BACK, now
		}
		if r.Rollout.State == deployv1.Rollout_STATE_STARTING {
			if a := d.arms[r.Stable]; a == nil {
				d.ensureArm(ctx, r.Stable)
			} else if a.healthy() {
				d.finishRollout(now)
			} else if a.failure == 0 && d.startTimedOut(a, now) {
				r.Rollout.State, r.Rollout.End = deployv1.Rollout_STATE_FAILED, now
				r.Reason = "version " + r.Stable + " never became healthy"
			}
		}
		if d.arms[r.Stable] == nil {
			d.ensureArm(ctx, r.Stable)
		}
		return
	case r.Pinned == r.Warm:
		// Re-pinned to the warm previous version: switch at once.
		d.switchTo(r.Warm, now, "re-pinned to the warm version "+r.Warm)
		return
	}
	// A new version is pinned.
	if r.Canary != r.Pinned {
		if r.Canary != "" {
			d.dropArm(r.Canary)
		}
		r.Canary = r.Pinned
		r.Reason = ""
		r.Rollout = d.newRollout(r.Stable, r.Pinned, now)
		d.c.audit(ctx, d, "deploy.rollout.start", map[string]string{"from": r.Stable, "to": r.Pinned, "strategy": r.Rollout.Strategy})
	}
	a := d.ensureArm(ctx, r.Canary)
	d.progress(ctx, a, now)
}

// startTimedOut reports whether a has had its start timeout to become
// healthy.
func (d *deployment) startTimedOut(a *arm, now time.Time) bool {
	return a.crashLooping() || now.Sub(a.startedAt) > d.c.opts.HealthyWithin
}

func (d *deployment) newRollout(from, to string, now time.Time) rolloutRecord {
	ro := rolloutRecord{Strategy: "direct", State: deployv1.Rollout_STATE_STARTING, From: from, To: to, Start: now, Steps: 1}
	p := d.policy
	if p.GetStrategy() == registryv1.RolloutPolicy_STRATEGY_CANARY && len(p.GetSteps()) > 0 {
		ro.Strategy = "canary"
		ro.MaxErrorRate = p.GetMaxErrorRate()
		for _, s := range p.GetSteps() {
			ro.StepWeights = append(ro.StepWeights, int(s.GetWeightPercent()))
			ro.StepPauses = append(ro.StepPauses, s.GetPause().AsDuration())
		}
		if ro.StepWeights[len(ro.StepWeights)-1] < 100 {
			ro.StepWeights = append(ro.StepWeights, 100)
			ro.StepPauses = append(ro.StepPauses, 0)
		}
		ro.Steps = len(ro.StepWeights)
	}
	return ro
}

// progress advances a rollout to canary arm a.
func (d *deployment) progress(ctx context.Context, a *arm, now time.Time) {
	r := &d.rec
	ro := &r.Rollout
	if a.failure != 0 {
		// Missing inputs, no runtime here: the new version waits (and is
		// tried again when values change) while the stable one serves. The
		// pin was deliberate; setting the value is the fix, not a rollback.
		return
	}
	switch ro.State {
	case deployv1.Rollout_STATE_STARTING:
		if !a.healthy() {
			if d.startTimedOut(a, now) {
				d.rollback(ctx, now, "version "+r.Canary+" never became healthy", deployv1.Rollout_STATE_FAILED)
			}
			return
		}
		if ro.Strategy == "direct" {
			d.switchTo(r.Canary, now, "")
			return
		}
		d.enterStep(ctx, a, 1, now)
	case deployv1.Rollout_STATE_PROGRESSING:
		c := a.counts
		failed := c.GetRpcErrors() + c.GetTransportErrors() + c.GetTimeouts()
		if c.GetCalls() >= d.c.opts.MinCalls {
			if rate := float64(failed) / float64(c.GetCalls()); rate > ro.MaxErrorRate {
				d.rollback(ctx, now, fmt.Sprintf("error rate %.0f%% of %d calls at step %d exceeds %.0f%%", rate*100, c.GetCalls(), ro.Step, ro.MaxErrorRate*100),
					deployv1.Rollout_STATE_ROLLED_BACK)
				return
			}
		}
		if a.crashLooping() || !a.healthy() && a.shared != nil && a.shared.Status().State == instance.Unhealthy {
			d.rollback(ctx, now, "version "+r.Canary+" failed its health checks at step "+fmt.Sprint(ro.Step), deployv1.Rollout_STATE_ROLLED_BACK)
			return
		}
		if now.Sub(ro.StepStart) >= ro.StepPauses[ro.Step-1] {
			if ro.Step >= ro.Steps {
				d.switchTo(r.Canary, now, "")
				return
			}
			d.enterStep(ctx, a, ro.Step+1, now)
		}
	}
}

func (d *deployment) enterStep(ctx context.Context, a *arm, step int, now time.Time) {
	ro := &d.rec.Rollout
	ro.State, ro.Step, ro.StepStart = deployv1.Rollout_STATE_PROGRESSING, step, now
	ro.WeightPercent = ro.StepWeights[step-1]
	a.counts = &deployv1.CallCounts{}
	if ro.WeightPercent >= 100 {
		d.switchTo(d.rec.Canary, now, "")
		return
	}
	d.c.audit(ctx, d, "deploy.rollout.step", map[string]string{"to": ro.To, "step": fmt.Sprint(step), "weight_percent": fmt.Sprint(ro.WeightPercent)})
}

// switchTo makes version the stable one taking all traffic; the previous
// stable version stays warm.
func (d *deployment) switchTo(version string, now time.Time, reason string) {
	r := &d.rec
	prev := r.Stable
	if r.Warm != "" && r.Warm != version && r.Warm != prev {
		d.dropArm(r.Warm)
	}
	if r.Canary != "" && r.Canary != version {
		d.dropArm(r.Canary)
	}
	r.Stable, r.Canary = version, ""
	r.Warm, r.WarmUntil = "", time.Time{}
	if prev != "" && prev != version {
		r.Warm, r.WarmUntil = prev, now.Add(d.c.opts.WarmFor)
	}
	if reason != "" {
		r.Rollout = rolloutRecord{Strategy: "instant", From: prev, To: version, Start: now, Steps: 1, Step: 1}
		r.Reason = reason
	}
	d.finishRollout(now)
	d.c.audit(context.Background(), d, "deploy.rollout.promote", map[string]string{"from": prev, "to": version, "strategy": r.Rollout.Strategy})
}

func (d *deployment) finishRollout(now time.Time) {
	ro := &d.rec.Rollout
	ro.State, ro.End, ro.Step, ro.WeightPercent = deployv1.Rollout_STATE_COMPLETE, now, ro.Steps, 100
	d.rec.RolledBack = false
}

// rollback sends all traffic back to the stable version, stops the
// canary and re-pins the entry to the stable version.
func (d *deployment) rollback(ctx context.Context, now time.Time, reason string, state deployv1.Rollout_State) {
	r := &d.rec
	bad := r.Canary
	d.dropArm(bad)
	r.Canary = ""
	r.Rollout.State, r.Rollout.End, r.Rollout.WeightPercent = state, now, 0
	r.Reason = reason
	if r.Stable == "" || r.Stable == bad {
		return
	}
	r.RolledBack = true
	r.Rejected, r.RejectedRevision = bad, r.Revision
	d.c.audit(ctx, d, "deploy.rollout.rollback", map[string]string{"from": bad, "to": r.Stable, "reason": reason})
	entry := strings.Replace(r.Name, "/deployments/", "/entries/", 1)
	stable := r.Stable
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.c.reg.Pin(ctx, entry, stable, "automatic rollback of "+bad+": "+reason); err != nil {
			d.c.log.Sugar().Warnw("rollback re-pin failed", "entry", entry, "version", stable, "error", err)
			d.mu.Lock()
			d.rec.Reason = reason + "; re-pinning " + stable + " failed: " + err.Error()
			d.mu.Unlock()
			d.wake()
		}
	}()
}

// dropArm stops version's instances.
func (d *deployment) dropArm(version string) {
	if a := d.arms[version]; a != nil {
		go a.stop()
		delete(d.arms, version)
	}
}

// ensureArm returns version's arm, starting it when it does not run.
func (d *deployment) ensureArm(ctx context.Context, version string) *arm {
	users := map[string]*userInstance{}
	if a := d.arms[version]; a != nil {
		if a.failure == 0 || !a.retry && time.Since(a.startedAt) < d.c.opts.RetryFailed {
			return a
		}
		// Missing inputs or an unsupported runtime: try again now and then,
		// values may have been set meanwhile. Users' own instances carry on.
		users = a.users
		delete(d.arms, version)
	}
	a := &arm{version: version, counts: &deployv1.CallCounts{}, users: users, startedAt: time.Now()}
	d.arms[version] = a
	doc, err := d.c.reg.ServerJSON(ctx, d.rec.Server, version)
	if err != nil {
		a.failure, a.reason = deployv1.Deployment_PHASE_FAILED, "reading server.json: "+err.Error()
		return a
	}
	a.doc = doc
	vals, err := d.c.sec.Resolve(ctx, d.rec.Registry, d.rec.Server, "")
	if err != nil {
		a.failure, a.reason = deployv1.Deployment_PHASE_FAILED, "resolving inputs: "+err.Error()
		return a
	}
	p, rt, err := d.c.choose(ctx, doc, vals)
	if err != nil {
		a.failure, a.reason = deployv1.Deployment_PHASE_UNSUPPORTED, err.Error()
		return a
	}
	a.plan, a.runtime = p, p.Runtime
	if len(p.Missing) > 0 {
		a.failure, a.missing = deployv1.Deployment_PHASE_MISSING_INPUTS, p.Missing
		a.reason = "required inputs have no value: " + strings.Join(p.Missing, ", ")
		return a
	}
	if p.Runtime == plan.Remote || p.UserScoped {
		return a // nothing shared to run: remote, or per user on first call
	}
	inst, err := instance.Start(d.c.instanceID(), version, "", p, rt, d.c.instanceOptions(), d.onInstance)
	if err != nil {
		a.failure, a.reason = deployv1.Deployment_PHASE_FAILED, err.Error()
		return a
	}
	a.shared = inst
	return a
}

// onInstance is told of every instance change.
func (d *deployment) onInstance(ev instance.Event) {
	switch ev.Kind {
	case "exited", "crash_loop":
		d.c.instanceEvent(d, ev)
	}
	d.wake()
	d.c.changed()
}

func (d *deployment) computePhase() deployv1.Deployment_Phase {
	r := d.rec
	if r.Pinned == "" {
		return deployv1.Deployment_PHASE_STOPPED
	}
	st := d.arms[r.Stable]
	if st != nil && st.failure != 0 && r.Canary == "" {
		return st.failure
	}
	if r.Canary != "" {
		if c := d.arms[r.Canary]; c != nil && c.failure != 0 {
			return c.failure
		}
		return deployv1.Deployment_PHASE_PROGRESSING
	}
	if r.RolledBack {
		return deployv1.Deployment_PHASE_ROLLED_BACK
	}
	if r.Rollout.State == deployv1.Rollout_STATE_FAILED {
		return deployv1.Deployment_PHASE_FAILED
	}
	if st == nil || r.Rollout.State == deployv1.Rollout_STATE_STARTING {
		return deployv1.Deployment_PHASE_PROGRESSING
	}
	if st.healthy() {
		return deployv1.Deployment_PHASE_SERVING
	}
	return deployv1.Deployment_PHASE_DEGRADED
}

// weights are the traffic shares of new sessions by version.
func (d *deployment) weights() map[string]int {
	r := d.rec
	out := map[string]int{}
	if r.Stable == "" {
		return out
	}
	if r.Canary != "" && r.Rollout.State == deployv1.Rollout_STATE_PROGRESSING {
		if a := d.arms[r.Canary]; a == nil || !a.healthy() {
			// Restarted mid-rollout: the canary takes its share once healthy.
			out[r.Stable] = 100
			return out
		}
		out[r.Canary] = r.Rollout.WeightPercent
		out[r.Stable] = 100 - r.Rollout.WeightPercent
		return out
	}
	if r.Rollout.State == deployv1.Rollout_STATE_STARTING && r.Canary == "" {
		if a := d.arms[r.Stable]; a == nil || !a.healthy() {
			return out // the first version is not healthy yet
		}
	}
	out[r.Stable] = 100
	return out
}

// toProto renders the status.
func (d *deployment) toProto() *deployv1.Deployment {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rec
	out := &deployv1.Deployment{Name: r.Name, Server: r.Server, ServerName: r.ServerName, Version: r.Pinned, Revision: r.Revision,
		Phase: d.phase, Reason: r.Reason, UpdateTime: ts(d.update)}
	w := d.weights()
	roles := map[string]deployv1.Arm_Role{}
	if r.Stable != "" {
		roles[r.Stable] = deployv1.Arm_ROLE_STABLE
	}
	if r.Canary != "" {
		roles[r.Canary] = deployv1.Arm_ROLE_CANARY
	}
	if r.Warm != "" {
		roles[r.Warm] = deployv1.Arm_ROLE_WARM
	}
	versions := make([]string, 0, len(roles))
	for v := range roles {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return roles[versions[i]] < roles[versions[j]] })
	for _, v := range versions {
		arm := &deployv1.Arm{Version: v, Role: roles[v], WeightPercent: int32(w[v])}
		if roles[v] == deployv1.Arm_ROLE_WARM {
			arm.WarmUntil = ts(r.WarmUntil)
		}
		if a := d.arms[v]; a != nil {
			arm.Calls = proto.Clone(a.counts).(*deployv1.CallCounts)
			if out.Runtime == "" || roles[v] == deployv1.Arm_ROLE_STABLE {
				out.Runtime = a.runtime
			}
			if a.failure != 0 && out.Reason == "" {
				out.Reason = a.reason
			}
			if a.failure == deployv1.Deployment_PHASE_MISSING_INPUTS {
				out.MissingInputs = a.missing
			}
			if a.shared != nil {
				out.Instances = append(out.Instances, instanceProto(a.shared.Status()))
			}
			users := make([]string, 0, len(a.users))
			for u := range a.users {
				users = append(users, u)
			}
			sort.Strings(users)
			for _, u := range users {
				out.Instances = append(out.Instances, instanceProto(a.users[u].inst.Status()))
			}
		}
		out.Arms = append(out.Arms, arm)
	}
	ro := r.Rollout
	out.Rollout = &deployv1.Rollout{Strategy: ro.Strategy, State: ro.State, ToVersion: ro.To, FromVersion: ro.From, Step: int32(ro.Step),
		Steps: int32(ro.Steps), StepStartTime: ts(ro.StepStart), StartTime: ts(ro.Start), EndTime: ts(ro.End)}
	out.Etag = fmt.Sprintf("%q", fmt.Sprintf("%d-%d", r.Revision, d.update.UnixNano()))
	return out
}

var stateNames = map[instance.State]deployv1.Instance_State{
	instance.Starting: deployv1.Instance_STATE_STARTING, instance.Healthy: deployv1.Instance_STATE_HEALTHY,
	instance.Unhealthy: deployv1.Instance_STATE_UNHEALTHY, instance.BackingOff: deployv1.Instance_STATE_BACKING_OFF,
	instance.CrashLoop: deployv1.Instance_STATE_CRASH_LOOP, instance.Stopped: deployv1.Instance_STATE_STOPPED,
}

func instanceProto(s instance.Status) *deployv1.Instance {
	return &deployv1.Instance{Id: s.ID, Version: s.Version, State: stateNames[s.State], User: s.User, Restarts: int32(s.Restarts),
		LastExit: s.LastExit, LastExitTime: ts(s.LastExitTime), StartTime: ts(s.StartTime), LastHealthTime: ts(s.HealthTime),
		HealthError: s.HealthError, Address: s.Address}
}

// errNoPrevious refuses a rollback with nothing to go back to.
var errNoPrevious = errors.New("no previous version to roll back to")

// previous is the version a rollback goes back to.
func (d *deployment) previous() string {
	r := d.rec
	switch {
	case r.Canary != "":
		return r.Stable
	case r.Warm != "":
		return r.Warm
	case r.Rollout.From != "" && r.Rollout.From != r.Stable:
		return r.Rollout.From
	}
	return ""
}

// runtimeFor is the runtime of kind on this host.
func (c *Controller) runtimeFor(kind string) (runtime.Runtime, bool) {
	rt, ok := c.rts[kind]
	return rt, ok
}
