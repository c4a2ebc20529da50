// Package instance supervises one instance of a deployment: it starts the
// process through its runtime, bridges it to a streamable HTTP address
// that stays the same across restarts, checks its health with MCP ping
// (tools/list for servers that do not answer ping), restarts it with
// exponential backoff that resets only after sustained uptime, and keeps
// its standard error, redacted, in a bounded log.
package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	bridge "github.com/pyleeai/pylee/kit/mcpbridge"
	"github.com/pyleeai/pylee/services/deploy/internal/logbuf"
	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
)

// State is where an instance stands.
type State int

// States.
const (
	Starting State = iota + 1
	Healthy
	Unhealthy
	BackingOff
	CrashLoop
	Stopped
)

func (s State) String() string {
	return [...]string{"", "starting", "healthy", "unhealthy", "backing off", "crash loop", "stopped"}[s]
}

// Options tune supervision.
type Options struct {
	// HealthInterval is the time between health checks (default 5 s).
	HealthInterval time.Duration
	// StartTimeout bounds a start, package download included (default 2 min).
	StartTimeout time.Duration
	// BackoffBase and BackoffMax bound the wait before a restart
	// (defaults 500 ms and 30 s); it doubles with each quick exit.
	BackoffBase, BackoffMax time.Duration
	// SustainedUptime resets the backoff (default 30 s).
	SustainedUptime time.Duration
	// CrashLoopAfter quick exits in a row are reported as a crash loop
	// (default 3).
	CrashLoopAfter int
	// StopGrace is how long a stopping process gets after SIGTERM (default 3 s).
	StopGrace time.Duration
	// Guard admits requests to the instance's address (the gateway's
	// identity).
	Guard func(*http.Request) error
	// SessionIdle ends MCP sessions unused this long (default 30 min).
	SessionIdle time.Duration
}

func (o *Options) defaults() {
	if o.HealthInterval <= 0 {
		o.HealthInterval = 5 * time.Second
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 30 * time.Minute
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.SustainedUptime <= 0 {
		o.SustainedUptime = 30 * time.Second
	}
	if o.CrashLoopAfter <= 0 {
		o.CrashLoopAfter = 3
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 3 * time.Second
	}
}

// Status is a snapshot of an instance.
type Status struct {
	ID, Version, User string
	State             State
	Restarts          int
	LastExit          string
	LastExitTime      time.Time
	StartTime         time.Time
	HealthTime        time.Time
	HealthError       string
	Address           string
}

// Event says what happened to an instance, for audit and metrics.
type Event struct {
	Instance, Version string
	// Kind is "started", "exited", "crash_loop" or "stopped".
	Kind   string
	Detail string
}

// Instance is one supervised process behind its bridge.
type Instance struct {
	id, version, user string
	plan              plan.Plan
	rt                runtime.Runtime
	opts              Options
	bridge            *bridge.Bridge
	log               *logbuf.Buffer
	ln                net.Listener
	srv               *http.Server
	onChange          func(Event)

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status Status
	proc   runtime.Process
}

// Start listens on a loopback address and starts supervising p with rt.
// onChange is called (without locks held) whenever the status changes.
func Start(id, version, user string, p plan.Plan, rt runtime.Runtime, opts Options, onChange func(Event)) (*Instance, error) {
	opts.defaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &Instance{id: id, version: version, user: user, plan: p, rt: rt, opts: opts, onChange: onChange,
		bridge: bridge.New(opts.Guard, opts.SessionIdle), log: logbuf.New(1000, 4096), ln: ln, done: make(chan struct{})}
	in.log.SetSecrets(p.Secrets)
	in.status = Status{ID: id, Version: version, User: user, State: Starting, Address: "http://" + ln.Addr().String() + "/mcp"}
	in.srv = &http.Server{Handler: in.bridge, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = in.srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go in.supervise(ctx)
	return in, nil
}

// Address is the instance's MCP endpoint.
func (in *Instance) Address() string { return in.status.Address }

// Logs is the instance's bounded, redacted standard error.
func (in *Instance) Logs() *logbuf.Buffer { return in.log }

// Status returns a snapshot.
func (in *Instance) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status
}

// Stop stops supervising, ends the process and closes the address.
func (in *Instance) Stop() {
	in.cancel()
	<-in.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	in.bridge.Close()
	_ = in.srv.Shutdown(ctx)
	_ = in.srv.Close()
}

func (in *Instance) set(ev Event, fn func(*Status)) {
	in.mu.Lock()
	fn(&in.status)
	in.mu.Unlock()
	if in.onChange != nil {
		ev.Instance, ev.Version = in.id, in.version
		in.onChange(ev)
	}
}

func (in *Instance) supervise(ctx context.Context) {
	defer close(in.done)
	quick := 0
	for {
		started := time.Now()
		in.set(Event{}, func(s *Status) { s.State = Starting; s.StartTime = started })
		startCtx, cancel := context.WithTimeout(ctx, in.opts.StartTimeout)
		proc, err := in.rt.Start(startCtx, in.plan, in.bridge.ClientOptions(), in.log)
		cancel()
		var exit string
		if err != nil {
			exit = "failed to start: " + err.Error()
			in.log.Line("pylee: " + exit)
		} else {
			in.mu.Lock()
			in.proc = proc
			in.mu.Unlock()
			in.bridge.Attach(proc.Session())
			in.set(Event{Kind: "started"}, func(s *Status) {})
			exited := make(chan string, 1)
			go func() { exited <- proc.Wait() }()
			exit = in.watch(ctx, proc, exited)
			in.bridge.Detach(proc.Session())
			if ctx.Err() != nil {
				in.set(Event{Kind: "stopped"}, func(s *Status) { s.State = Stopped })
				return
			}
			in.log.Line("pylee: exited: " + exit)
		}
		if ctx.Err() != nil {
			in.set(Event{Kind: "stopped"}, func(s *Status) { s.State = Stopped })
			return
		}
		if time.Since(started) >= in.opts.SustainedUptime {
			quick = 0
		}
		quick++
		wait := in.opts.BackoffBase << min(quick-1, 16)
		if wait > in.opts.BackoffMax || wait <= 0 {
			wait = in.opts.BackoffMax
		}
		state, kind := BackingOff, "exited"
		if quick >= in.opts.CrashLoopAfter {
			state, kind = CrashLoop, "crash_loop"
		}
		now := time.Now()
		in.set(Event{Kind: kind, Detail: exit}, func(s *Status) {
			s.State, s.LastExit, s.LastExitTime = state, exit, now
			s.Restarts++
		})
		select {
		case <-ctx.Done():
			in.set(Event{Kind: "stopped"}, func(s *Status) { s.State = Stopped })
			return
		case <-time.After(wait):
		}
	}
}

// watch checks health until the process exits or ctx ends (then it stops
// the process); it returns how the process exited.
func (in *Instance) watch(ctx context.Context, proc runtime.Process, exited <-chan string) string {
	check := time.NewTimer(0)
	defer check.Stop()
	for {
		select {
		case exit := <-exited:
			return exit
		case <-ctx.Done():
			proc.Stop(in.opts.StopGrace)
			return <-exited
		case <-check.C:
			err := Check(ctx, proc.Session())
			now := time.Now()
			in.set(Event{}, func(s *Status) {
				s.HealthTime = now
				if err != nil {
					s.State, s.HealthError = Unhealthy, err.Error()
				} else {
					s.State, s.HealthError = Healthy, ""
				}
			})
			check.Reset(in.opts.HealthInterval)
		}
	}
}

// Check pings cs; a server that does not know ping is asked for its tools
// instead.
func Check(ctx context.Context, cs *mcp.ClientSession) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := cs.Ping(ctx, nil)
	var we *jsonrpc.Error
	if errors.As(err, &we) && we.Code == jsonrpc.CodeMethodNotFound {
		_, err = cs.ListTools(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	return nil
}

// Plan is what the instance runs.
func (in *Instance) Plan() plan.Plan { return in.plan }
