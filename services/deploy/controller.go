package deploy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/broadcast"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/deploy/internal/instance"
	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
	"github.com/pyleeai/pylee/services/deploy/internal/store"
)

// Options tune the controller.
type Options struct {
	// Discover is how often registries are listed (default 5 s).
	Discover time.Duration
	// Tick is how often each deployment is reconciled without a cause
	// (default 1 s): rollout steps, warm expiry, idle users.
	Tick time.Duration
	// HealthyWithin is how long a new version gets to become healthy
	// (default 3 min, npm downloads included).
	HealthyWithin time.Duration
	// WarmFor keeps the previous version running after a rollout
	// (default 10 min), for an instant rollback.
	WarmFor time.Duration
	// UserIdle stops a per-user instance unused this long (default 15 min).
	UserIdle time.Duration
	// MinCalls is how many calls a canary step needs before its error
	// rate is judged (default 10).
	MinCalls int64
	// RetryFailed is how long a version that could not start (missing
	// inputs, no runtime) waits before it is tried again (default 30 s).
	RetryFailed time.Duration
	// Drain is how long a replaced instance keeps serving the sessions it
	// has (default 10 s).
	Drain time.Duration
	// Instance tunes supervision.
	Instance instance.Options
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Discover, 5*time.Second)
	def(&o.Tick, time.Second)
	def(&o.HealthyWithin, 3*time.Minute)
	def(&o.WarmFor, 10*time.Minute)
	def(&o.UserIdle, 15*time.Minute)
	def(&o.RetryFailed, 30*time.Second)
	def(&o.Drain, 10*time.Second)
	if o.MinCalls <= 0 {
		o.MinCalls = 10
	}
}

// Controller converges what runs to what every registry pins.
type Controller struct {
	reg   Registry
	sec   Secrets
	rts   runtime.Set
	st    *store.Store
	opts  Options
	log   *zap.Logger
	guard func(*http.Request) error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	deps     map[string]*deployment
	stops    map[string]context.CancelFunc // per deployment
	watching map[string]context.CancelFunc // per registry
	values   map[string]context.CancelFunc // per organization
	policies map[string]*registryv1.RolloutPolicy
	changes  broadcast.Broadcast
	m        *metrics
}

// NewController returns a controller; Start runs it.
func NewController(reg Registry, sec Secrets, rts runtime.Set, st *store.Store, opts Options, log *zap.Logger) *Controller {
	opts.defaults()
	c := &Controller{reg: reg, sec: sec, rts: rts, st: st, opts: opts, log: log, deps: map[string]*deployment{},
		stops: map[string]context.CancelFunc{}, watching: map[string]context.CancelFunc{}, values: map[string]context.CancelFunc{}, policies: map[string]*registryv1.RolloutPolicy{}}
	c.m = newMetrics(c)
	return c
}

// RegisterMetrics adds the controller's metrics to reg.
func (c *Controller) RegisterMetrics(reg prometheus.Registerer) error { return c.m.Register(reg) }

// GuardInstances sets who may call the instances' addresses.
func (c *Controller) GuardInstances(g func(*http.Request) error) { c.guard = g }

// Start loads the stored deployments and starts discovering registries.
func (c *Controller) Start(ctx context.Context) error {
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for kind, rt := range c.rts {
		if s, ok := rt.(runtime.Sweeper); ok {
			if err := s.Sweep(ctx); err != nil {
				c.log.Sugar().Warnw("what an earlier run left could not be removed", "runtime", kind, "error", err)
			}
		}
	}
	recs, err := c.st.Deployments(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		var rec record
		if err := json.Unmarshal(r.Data, &rec); err != nil {
			c.log.Sugar().Warnw("unreadable deployment record skipped", "deployment", r.Name, "error", err)
			continue
		}
		c.mu.Lock()
		c.startDeployment(rec)
		c.mu.Unlock()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.discover(c.ctx)
	}()
	return nil
}

// Stop stops every deployment and its instances.
func (c *Controller) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
	for _, rt := range c.rts {
		if cl, ok := rt.(io.Closer); ok {
			_ = cl.Close()
		}
	}
}

// startDeployment runs rec's deployment; c.mu is held.
func (c *Controller) startDeployment(rec record) *deployment {
	d := &deployment{c: c, rec: rec, kick: make(chan struct{}, 1), done: make(chan struct{}), arms: map[string]*arm{},
		policy: c.policies[rec.Registry], update: time.Now(), usersStarting: map[string]chan struct{}{}}
	ctx, cancel := context.WithCancel(c.ctx)
	c.deps[rec.Name] = d
	c.stops[rec.Name] = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		d.run(ctx)
	}()
	return d
}

// discover lists registries now and then, and watches those with
// deployments on.
func (c *Controller) discover(ctx context.Context) {
	for {
		regs, err := c.reg.Registries(ctx)
		if err != nil {
			c.log.Sugar().Debugw("listing registries", "error", err)
		} else {
			c.reconcileRegistries(regs)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.opts.Discover):
		}
	}
}

func (c *Controller) reconcileRegistries(regs []*registryv1.Registry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	on := map[string]bool{}
	for _, r := range regs {
		if !r.GetEffective().GetDeploymentsEnabled() {
			continue
		}
		on[r.GetName()] = true
		c.policies[r.GetName()] = r.GetEffective().GetRolloutPolicy()
		for _, d := range c.deps {
			if d.rec.Registry == r.GetName() {
				d.mu.Lock()
				d.policy = r.GetEffective().GetRolloutPolicy()
				d.mu.Unlock()
			}
		}
		if org := orgOf(r.GetName()); c.values[org] == nil {
			ctx, cancel := context.WithCancel(c.ctx)
			c.values[org] = cancel
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.watchValues(ctx, org)
			}()
		}
		if _, ok := c.watching[r.GetName()]; !ok {
			ctx, cancel := context.WithCancel(c.ctx)
			c.watching[r.GetName()] = cancel
			name, org := r.GetName(), orgOf(r.GetName())
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.watch(ctx, org, name)
			}()
		}
	}
	// Registries gone or with deployments off: stop theirs.
	orgs := map[string]bool{}
	for name := range on {
		orgs[orgOf(name)] = true
	}
	for org, cancel := range c.values {
		if !orgs[org] {
			cancel()
			delete(c.values, org)
		}
	}
	for name, cancel := range c.watching {
		if !on[name] {
			cancel()
			delete(c.watching, name)
			for dn, d := range c.deps {
				if d.rec.Registry == name {
					c.stopDeployment(dn)
				}
			}
			if err := c.st.Tx(c.ctx, func(tx *store.Tx) error { return tx.PurgeRegistry(c.ctx, name) }); err != nil {
				c.log.Sugar().Warnw("forgetting a registry's deployments", "registry", name, "error", err)
			}
		}
	}
}

// watchValues follows an organization's secrets and variables: after a
// change (and a short quiet), each deployment of the organization checks
// whether what it runs would now start differently, and if so restarts
// gracefully; a version waiting for missing inputs tries again.
func (c *Controller) watchValues(ctx context.Context, org string) {
	var since int64
	changed := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			c.mu.Lock()
			var deps []*deployment
			for _, d := range c.deps {
				if d.rec.Organization == org {
					deps = append(deps, d)
				}
			}
			c.mu.Unlock()
			for _, d := range deps {
				c.valuesChanged(ctx, d)
			}
		}
	}()
	for ctx.Err() == nil {
		recv, err := c.sec.WatchValues(ctx, org, since)
		for err == nil {
			var rev int64
			if rev, err = recv(); err == nil {
				since = rev
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// valuesChanged re-plans d's versions with the current values.
func (c *Controller) valuesChanged(ctx context.Context, d *deployment) {
	d.mu.Lock()
	var running []*arm
	users := map[*arm]map[string]*userInstance{}
	for _, a := range d.arms {
		switch {
		case a.failure != 0:
			a.retry = true // try again at once
		case a.runtime != "":
			running = append(running, a)
		}
		users[a] = maps.Clone(a.users)
	}
	d.mu.Unlock()
	d.wake()
	for _, a := range running {
		if err := c.replace(ctx, d, a, "a value it uses changed", false); err != nil {
			c.log.Sugar().Warnw("restarting after a value changed", "deployment", d.rec.Name, "version", a.version, "error", err)
		}
	}
	// A user's instance whose values changed stops; the user's next
	// session starts one with the new values.
	for a, us := range users {
		for user, ui := range us {
			vals, err := c.sec.Resolve(ctx, d.rec.Registry, d.server(), user)
			if err != nil {
				continue
			}
			if p, _, err := c.choose(ctx, a.doc, vals); err == nil && reflect.DeepEqual(p, ui.inst.Plan()) {
				continue
			}
			d.mu.Lock()
			if a.users[user] == ui {
				delete(a.users, user)
			}
			d.mu.Unlock()
			go ui.inst.Stop()
		}
	}
}

// stopDeployment stops and forgets name; c.mu is held.
func (c *Controller) stopDeployment(name string) {
	if cancel := c.stops[name]; cancel != nil {
		cancel()
	}
	delete(c.stops, name)
	delete(c.deps, name)
	c.changes.Notify()
}

// watch follows a registry's entries from its stored cursor, again and
// again until ctx ends.
func (c *Controller) watch(ctx context.Context, org, registry string) {
	for ctx.Err() == nil {
		since, err := c.st.Cursor(ctx, registry)
		if err == nil {
			err = c.follow(ctx, org, registry, since)
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Sugar().Debugw("entry watch ended; resuming", "registry", registry, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (c *Controller) follow(ctx context.Context, org, registry string, since int64) error {
	recv, err := c.reg.WatchEntries(ctx, registry, since)
	if err != nil {
		return err
	}
	for {
		ev, err := recv()
		if err != nil {
			return err
		}
		c.apply(ev)
		if err := c.st.Tx(ctx, func(tx *store.Tx) error { return tx.SetCursor(ctx, org, registry, ev.GetRevision()) }); err != nil {
			return err
		}
	}
}

// apply applies an entry event.
func (c *Controller) apply(ev *registryv1.EntryEvent) {
	e := ev.GetEntry()
	name := strings.Replace(e.GetName(), "/entries/", "/deployments/", 1)
	unpinned := ev.GetType() == registryv1.EntryEvent_TYPE_UNPINNED
	c.mu.Lock()
	d := c.deps[name]
	if d == nil {
		if unpinned {
			c.mu.Unlock()
			return
		}
		reg := name[:strings.Index(name, "/deployments/")]
		d = c.startDeployment(record{Name: name, Organization: orgOf(name), Registry: reg, Server: e.GetServer(), ServerName: e.GetServerName()})
	}
	c.mu.Unlock()
	d.setSpec(e, ev.GetRevision(), unpinned)
	if unpinned {
		go func() {
			// Let the deployment stop its instances, then forget it.
			time.Sleep(c.opts.Tick)
			c.mu.Lock()
			if c.deps[name] == d {
				d.mu.Lock()
				gone := d.rec.Pinned == ""
				d.mu.Unlock()
				if gone {
					c.stopDeployment(name)
					_ = c.st.Tx(c.ctx, func(tx *store.Tx) error { return tx.DeleteDeployment(c.ctx, name) })
				}
			}
			c.mu.Unlock()
		}()
	}
}

// choose picks the first choice of doc this host can run and builds its
// plan with vals.
func (c *Controller) choose(ctx context.Context, doc map[string]any, vals plan.Values) (plan.Plan, runtime.Runtime, error) {
	var why []string
	for _, ch := range plan.Choices(doc) {
		p, err := plan.Build(doc, ch, vals)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if ch.Runtime == plan.Remote {
			return p, nil, nil
		}
		rt, ok := c.runtimeFor(ch.Runtime)
		if !ok {
			why = append(why, fmt.Sprintf("no runtime runs %s packages", ch.Runtime))
			continue
		}
		if err := rt.Check(ctx, p); err != nil {
			why = append(why, err.Error())
			continue
		}
		return p, rt, nil
	}
	if len(why) == 0 {
		return plan.Plan{}, nil, fmt.Errorf("the version's server.json has no package or remote to run")
	}
	return plan.Plan{}, nil, fmt.Errorf("%s", strings.Join(why, "; "))
}

func (c *Controller) instanceID() string { return strings.ToLower(rand.Text()[:10]) }

func (c *Controller) instanceOptions() instance.Options {
	o := c.opts.Instance
	o.Guard = c.guard
	return o
}

// save stores rec with the audit events of its change.
func (c *Controller) save(ctx context.Context, rec record, events []*auditv1.Event) {
	data, err := json.Marshal(rec)
	if err == nil {
		err = c.st.Tx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			for _, ev := range events {
				tx.Audit(ev)
			}
			if rec.Pinned == "" && rec.Stable == "" {
				return nil
			}
			return tx.SaveDeployment(ctx, store.Record{Name: rec.Name, Organization: rec.Organization, Registry: rec.Registry, Data: data})
		})
	}
	if err != nil {
		c.log.Sugar().Warnw("saving a deployment", "deployment", rec.Name, "error", err)
	}
}

// deployIdentity is the context of the deploy service's own events.
func deployIdentity(ctx context.Context) context.Context {
	return auth.WithPrincipal(ctx, auth.ServiceIdentity(Target))
}

// event makes an audit event of d (never holding a value).
func (c *Controller) event(d *deployment, action string, meta map[string]string) *auditv1.Event {
	ev := outbox.NewEvent(deployIdentity(context.Background()), d.rec.Organization, action, d.rec.Name)
	ev.Metadata = meta
	return ev
}

// audit queues an event of d's current change (d.mu is held); it is
// stored with the record.
func (c *Controller) audit(_ context.Context, d *deployment, action string, meta map[string]string) {
	d.events = append(d.events, c.event(d, action, meta))
}

// instanceEvent records an instance's exit or crash loop at once.
func (c *Controller) instanceEvent(d *deployment, ev instance.Event) {
	d.mu.Lock()
	action := "deploy.instance.restart"
	if ev.Kind == "crash_loop" {
		action = "deploy.instance.crash_loop"
	}
	e := c.event(d, action, map[string]string{"instance": ev.Instance, "version": ev.Version, "exit": ev.Detail})
	d.mu.Unlock()
	c.m.exits.WithLabelValues(ev.Kind).Inc()
	if err := c.st.Tx(c.ctx, func(tx *store.Tx) error { tx.Audit(e); return nil }); err != nil {
		c.log.Sugar().Warnw("recording an instance event", "error", err)
	}
}

// changed wakes the watchers of statuses.
func (c *Controller) changed() { c.changes.Notify() }

// get returns the deployment name.
func (c *Controller) get(name string) (*deployment, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.deps[name]
	return d, ok
}

// list returns the deployments of registry, ordered by name.
func (c *Controller) list(registry string) []*deployment {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*deployment
	for _, d := range c.deps {
		if d.rec.Registry == registry {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.Name < out[j].rec.Name })
	return out
}

func orgOf(name string) string {
	rest := strings.TrimPrefix(name, "orgs/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
