package instance

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
	"github.com/pyleeai/pylee/services/deploy/ocitest"
)

func containersOf(t *testing.T, cli *client.Client, owner string) []container.Summary {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", runtime.ContainerLabel+"="+owner))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// An OCI image runs as a container through the Docker Engine API, bridged
// like any stdio server: its values arrive in its environment and nothing
// of the deploy process's; a container killed behind its back is restarted
// behind the same address; stopping removes it; a container left by an
// earlier run of the same target is swept, another target's is not; an
// image that is nowhere is refused by name.
func TestOCIImageRunsAsAContainer(t *testing.T) {
	cli := ocitest.Engine(t)
	ctx := context.Background()
	t.Setenv("PYLEE_LEAK_PROBE", "deploy-process-only")
	ref := "pylee-test/testserver:oci-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	ocitest.TestServerImage(t, cli, ref)
	owner := "test-" + time.Now().Format("150405.000000")
	owner = strings.ReplaceAll(owner, ".", "")
	set := runtime.Local(false, "", owner)
	p := plan.Plan{Runtime: plan.OCI, Command: ref, Transport: "stdio",
		Env: []string{"API_KEY=oci-canary-91c2", "TEST_SERVER_VERSION=2.0.0"}, Secrets: []string{"oci-canary-91c2"}}
	if err := set[plan.OCI].Check(ctx, p); err != nil {
		t.Fatalf("check: %v", err)
	}
	in, err := Start("oci1", "2.0.0", "", p, set[plan.OCI], Options{HealthInterval: 100 * time.Millisecond, BackoffBase: 50 * time.Millisecond}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			in.Stop()
		}
	}()
	waitState(t, in, Healthy)
	cs := connect(t, in.Address())
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "API_KEY"}}); err != nil || text(r) != "oci-canary-91c2" {
		t.Fatalf("env API_KEY in the container = %v, %v", r, err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "PYLEE_LEAK_PROBE"}}); err != nil || text(r) != "" {
		t.Fatalf("the deploy process's own environment reached the container: %v, %v", r, err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil || text(r) != "2.0.0:hi" {
		t.Fatalf("echo = %v, %v", r, err)
	}
	running := containersOf(t, cli, owner)
	if len(running) != 1 {
		t.Fatalf("containers labelled %s: %d, want 1", owner, len(running))
	}

	// Killed behind the deploy service's back: restarted, same address.
	if err := cli.ContainerKill(ctx, running[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for in.Status().Restarts == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := waitState(t, in, Healthy)
	if st.Restarts != 1 || !strings.Contains(st.LastExit, "exit status 137") {
		t.Fatalf("after docker kill: %+v", st)
	}
	cs2 := connect(t, in.Address())
	if r, err := cs2.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "again"}}); err != nil || text(r) != "2.0.0:again" {
		t.Fatalf("echo after restart = %v, %v", r, err)
	}
	lines, _ := in.Logs().Tail(0)
	if joined := strings.Join(lines, "\n"); strings.Contains(joined, "oci-canary-91c2") {
		t.Fatalf("the container's log shows the secret:\n%s", joined)
	}
	in.Stop()
	stopped = true
	deadline = time.Now().Add(20 * time.Second)
	for len(containersOf(t, cli, owner)) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(containersOf(t, cli, owner)); n != 0 {
		t.Fatalf("after stop, %d containers remain", n)
	}

	// Leftovers: one of this owner's (as if the target had been killed)
	// and one of another target's. The sweep removes only the first.
	leave := func(o string) string {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Labels: map[string]string{runtime.ContainerLabel: o}}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	leave(owner)
	other := leave(owner + "-other")
	defer func() { _ = cli.ContainerRemove(ctx, other, container.RemoveOptions{Force: true}) }()
	if err := set[plan.OCI].(runtime.Sweeper).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(containersOf(t, cli, owner)); n != 0 {
		t.Fatalf("the sweep left %d of this target's containers", n)
	}
	if n := len(containersOf(t, cli, owner+"-other")); n != 1 {
		t.Fatalf("the sweep removed another target's container")
	}

	// An image that is neither here nor pullable (no registry answers).
	_, err = set[plan.OCI].Start(ctx, plan.Plan{Runtime: plan.OCI, Command: "pylee-test/absent:0.0.1", Transport: "stdio"}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pylee-test/absent:0.0.1") {
		t.Fatalf("absent image: %v", err)
	}
}
