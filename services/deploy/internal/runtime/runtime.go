// Package runtime starts the processes of a plan: npm packages with npx,
// PyPI packages with uvx, commands, and (where an engine answers) OCI
// images. Each runtime says plainly what this host lacks instead of
// starting something that cannot work.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyleeai/pylee/services/deploy/internal/plan"
)

// Runtime runs the processes of plans of one kind. A Kubernetes runtime
// implements the same interface with a Deployment and a Service per
// instance (see docs/deploy.md).
type Runtime interface {
	// Name is the plan's runtime kind it runs.
	Name() string
	// Check returns why this host cannot run p, or nil.
	Check(ctx context.Context, p plan.Plan) error
	// Start starts one run of p and connects an MCP client session to it
	// with opts; its standard error goes to stderr.
	Start(ctx context.Context, p plan.Plan, opts *mcp.ClientOptions, stderr io.Writer) (Process, error)
}

// Process is one run of an instance.
type Process interface {
	// Session is the MCP client session connected to it.
	Session() *mcp.ClientSession
	// Wait returns when the process has exited, saying how.
	Wait() string
	// Stop ends it: SIGTERM to its process group, SIGKILL after grace.
	Stop(grace time.Duration)
}

// Sweeper is a runtime that can remove what an earlier run of the same
// deploy target left behind (a container outlives a killed parent).
type Sweeper interface {
	Sweep(ctx context.Context) error
}

// Set holds the runtimes of this host by kind.
type Set map[string]Runtime

// ErrUnsupported wraps every "this host cannot" answer.
var ErrUnsupported = errors.New("unsupported on this host")

// Local returns the runtimes of a host that runs processes: npm, pypi,
// command (when allowCommand) and oci (through the Docker engine at
// dockerHost, or DOCKER_HOST, or the default socket; its containers are
// labelled with owner, which must be stable across restarts of one deploy
// target and differ between targets sharing an engine).
func Local(allowCommand bool, dockerHost, owner string) Set {
	return Set{
		plan.NPM:     &process{kind: plan.NPM, tool: "npx"},
		plan.PyPI:    &process{kind: plan.PyPI, tool: "uvx"},
		plan.Command: &process{kind: plan.Command, disabled: !allowCommand},
		plan.OCI:     &oci{host: dockerHost, owner: owner},
	}
}

// process runs a plan's command as a child process speaking stdio.
type process struct {
	kind     string
	tool     string
	disabled bool
}

func (r *process) Name() string { return r.kind }

func (r *process) Check(_ context.Context, p plan.Plan) error {
	if r.disabled {
		return fmt.Errorf("the command runtime is off on this deploy target (start it with --deploy-allow-command): %w", ErrUnsupported)
	}
	if p.Transport != "" && p.Transport != "stdio" {
		return fmt.Errorf("%s packages with the %s transport are not run by Pylee yet (only stdio): %w", r.kind, p.Transport, ErrUnsupported)
	}
	if _, err := exec.LookPath(p.Command); err != nil {
		if r.tool != "" {
			return fmt.Errorf("%s is not installed on this host (%s packages need it): %w", r.tool, r.kind, ErrUnsupported)
		}
		return fmt.Errorf("command %q cannot be run: %v: %w", p.Command, err, ErrUnsupported)
	}
	return nil
}

// inheritedEnv are the variables of the deploy process a server gets; the
// rest (credentials among them) stays out.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER", "NPM_CONFIG_CACHE", "npm_config_cache",
	"NPM_CONFIG_REGISTRY", "npm_config_registry", "UV_CACHE_DIR", "XDG_CACHE_HOME"}

func environment(p plan.Plan) []string {
	var env []string
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, p.Env...)
}

func (r *process) Start(ctx context.Context, p plan.Plan, opts *mcp.ClientOptions, stderr io.Writer) (Process, error) {
	if err := r.Check(ctx, p); err != nil {
		return nil, err
	}
	cmd := exec.Command(p.Command, p.Args...)
	cmd.Env = environment(p)
	cmd.Stderr = stderr
	cmd.Dir = os.TempDir()
	if p.Dir != "" {
		cmd.Dir = p.Dir
	}
	// Its own process group, killed whole on stop; and killed with the
	// deploy process, so a restarted target never finds an orphan.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	client := mcp.NewClient(&mcp.Implementation{Name: "pylee-deploy", Version: "1"}, opts)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_, _ = cmd.Process.Wait()
		}
		return nil, fmt.Errorf("start %s: %w", r.kind, err)
	}
	return &child{cmd: cmd, cs: cs}, nil
}

type child struct {
	cmd *exec.Cmd
	cs  *mcp.ClientSession
}

func (c *child) Session() *mcp.ClientSession { return c.cs }

// Pid is the process's id (its process group's too).
func (c *child) Pid() int { return c.cmd.Process.Pid }

func (c *child) Wait() string {
	_ = c.cs.Wait()
	// The connection ended: the process exited or closed its output. Make
	// sure it is gone, then read how it ended.
	c.kill(syscall.SIGKILL)
	_ = c.cs.Close()
	if st := c.cmd.ProcessState; st != nil {
		return st.String()
	}
	return "connection closed"
}

func (c *child) kill(sig syscall.Signal) {
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	}
}

func (c *child) Stop(grace time.Duration) {
	c.kill(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	c.kill(syscall.SIGKILL)
	_ = c.cs.Close()
}
