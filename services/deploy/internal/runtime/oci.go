package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyleeai/pylee/services/deploy/internal/plan"
)

// ContainerLabel marks the containers Pylee runs; its value is the deploy
// target's owner id, so a restarted target removes what an earlier run of
// it left behind, and only that.
const ContainerLabel = "ai.pylee.deploy"

// oci runs images through the Docker Engine API: one container per run,
// its standard input and output attached as the MCP stdio transport.
type oci struct {
	host  string
	owner string

	once sync.Once
	cli  *client.Client
	err  error
}

// Close releases the engine's connections.
func (r *oci) Close() error {
	if r.cli != nil {
		return r.cli.Close()
	}
	return nil
}

func (r *oci) Name() string { return plan.OCI }

func (r *oci) socket() string {
	h := r.host
	if h == "" {
		h = os.Getenv("DOCKER_HOST")
	}
	if h == "" {
		h = "unix:///var/run/docker.sock"
	}
	return h
}

func (r *oci) client() (*client.Client, error) {
	r.once.Do(func() {
		r.cli, r.err = client.NewClientWithOpts(client.WithHost(r.socket()), client.WithAPIVersionNegotiation())
	})
	return r.cli, r.err
}

func (r *oci) Check(ctx context.Context, p plan.Plan) error {
	if p.Transport != "" && p.Transport != "stdio" {
		return fmt.Errorf("oci packages with the %s transport are not run by Pylee yet (only stdio): %w", p.Transport, ErrUnsupported)
	}
	cli, err := r.client()
	if err != nil {
		return fmt.Errorf("the Docker engine at %s: %v: %w", r.socket(), err, ErrUnsupported)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker engine answers at %s (oci packages need one): %w", r.socket(), ErrUnsupported)
	}
	return nil
}

// ensureImage pulls the image unless the engine has it.
func (r *oci) ensureImage(ctx context.Context, cli *client.Client, ref string) error {
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("the image %s is not on this host and could not be pulled: %w", ref, err)
	}
	defer rc.Close()
	// The pull's progress stream ends when the pull has; an error in it
	// shows as a missing image below.
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<20))
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("the image %s could not be pulled", ref)
	}
	return nil
}

// Sweep removes the containers an earlier run of this deploy target left
// (it was killed before it could stop them).
func (r *oci) Sweep(ctx context.Context) error {
	if r.Check(ctx, plan.Plan{}) != nil {
		return nil
	}
	cli, _ := r.client()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", ContainerLabel+"="+r.ownerID()))})
	if err != nil {
		return err
	}
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	return nil
}

func (r *oci) ownerID() string {
	if r.owner == "" {
		return "pylee"
	}
	return r.owner
}

func (r *oci) Start(ctx context.Context, p plan.Plan, opts *mcp.ClientOptions, stderr io.Writer) (Process, error) {
	if err := r.Check(ctx, p); err != nil {
		return nil, err
	}
	cli, _ := r.client()
	if err := r.ensureImage(ctx, cli, p.Command); err != nil {
		return nil, err
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image: p.Command, Cmd: p.Args, Env: p.Env,
		AttachStdin: true, AttachStdout: true, AttachStderr: true, OpenStdin: true, StdinOnce: true,
		Labels: map[string]string{ContainerLabel: r.ownerID()},
	}, &container.HostConfig{
		// A server gets no privilege it did not ask for, and is removed
		// when it exits.
		AutoRemove:  true,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Init:        ptr(true),
	}, nil, nil, "")
	if err != nil {
		return nil, fmt.Errorf("create a container of %s: %w", p.Command, err)
	}
	c := &containerRun{cli: cli, id: created.ID, done: make(chan struct{})}
	fail := func(err error) (Process, error) {
		_ = cli.ContainerRemove(context.WithoutCancel(ctx), c.id, container.RemoveOptions{Force: true})
		return nil, err
	}
	hj, err := cli.ContainerAttach(ctx, c.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fail(fmt.Errorf("attach to the container of %s: %w", p.Command, err))
	}
	// Wait before start, so an exit between the two is not missed.
	waitCh, errCh := cli.ContainerWait(context.WithoutCancel(ctx), c.id, container.WaitConditionNextExit)
	go func() {
		defer close(c.done)
		select {
		case w := <-waitCh:
			c.how = "exit status " + strconv.FormatInt(w.StatusCode, 10)
			if w.Error != nil && w.Error.Message != "" {
				c.how += ": " + w.Error.Message
			}
		case err := <-errCh:
			c.how = "container wait: " + err.Error()
		}
	}()
	if err := cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		hj.Close()
		return fail(fmt.Errorf("start the container of %s: %w", p.Command, err))
	}
	// The attached stream multiplexes the container's stdout and stderr.
	out, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, stderr, hj.Reader)
		pw.CloseWithError(err)
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "pylee-deploy", Version: "1"}, opts)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: out, Writer: attachWriter{hj: hj}}, nil)
	if err != nil {
		hj.Close()
		return fail(fmt.Errorf("start oci %s: %w", p.Command, err))
	}
	c.cs = cs
	return c, nil
}

func ptr[T any](v T) *T { return &v }

// attachWriter is the container's standard input; closing it closes the
// input only, so the container may still answer and exit.
type attachWriter struct{ hj types.HijackedResponse }

func (w attachWriter) Write(p []byte) (int, error) { return w.hj.Conn.Write(p) }
func (w attachWriter) Close() error                { return w.hj.CloseWrite() }

type containerRun struct {
	cli  *client.Client
	id   string
	cs   *mcp.ClientSession
	done chan struct{}
	how  string
}

func (c *containerRun) Session() *mcp.ClientSession { return c.cs }

func (c *containerRun) Wait() string {
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.cs.Wait() }()
	select {
	case <-c.done:
	case <-waitErr: //nolint:errcheck // how the connection ended is not how the container did
		// The connection ended first: the container closed its output.
		// Make sure it is gone.
		c.kill()
		<-c.done
	}
	_ = c.cs.Close()
	return c.how
}

func (c *containerRun) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.cli.ContainerKill(ctx, c.id, "KILL"); err != nil && !cerrdefs.IsNotFound(err) && !errors.Is(err, context.DeadlineExceeded) &&
		!strings.Contains(err.Error(), "is not running") {
		_ = c.cli.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true})
	}
}

func (c *containerRun) Stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
	defer cancel()
	secs := max(int(grace.Seconds()), 1)
	_ = c.cli.ContainerStop(ctx, c.id, container.StopOptions{Timeout: &secs})
	select {
	case <-c.done:
	case <-time.After(grace + 5*time.Second):
		c.kill()
	}
	_ = c.cs.Close()
}
