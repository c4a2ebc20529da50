package instance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyleeai/pylee/services/deploy/internal/plan"
	"github.com/pyleeai/pylee/services/deploy/internal/runtime"
)

var testServer string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pylee-testserver")
	if err != nil {
		panic(err)
	}
	testServer = filepath.Join(dir, "testserver")
	if out, err := exec.Command("go", "build", "-o", testServer, "../testserver").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func connect(t *testing.T, addr string) *mcp.ClientSession {
	t.Helper()
	progress := make(chan float64, 100)
	c := mcp.NewClient(&mcp.Implementation{Name: "test"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress <- r.Params.Progress },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: addr}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func text(r *mcp.CallToolResult) string {
	if len(r.Content) == 0 {
		return ""
	}
	return r.Content[0].(*mcp.TextContent).Text
}

func waitState(t *testing.T, in *Instance, want State) Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := in.Status(); s.State == want {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("instance never reached %v; status %+v", want, in.Status())
	return Status{}
}

// A process speaking stdio, bridged: listed and called through the SDK's
// streamable HTTP client, an injected value arrives, progress comes
// through with the client's own token, and a killed process is restarted
// behind the same address, its exit in the status and its secret value
// never in the log.
func TestBridgedProcessRestartsBehindTheSameAddress(t *testing.T) {
	p := plan.Plan{Runtime: plan.Command, Command: testServer, Transport: "stdio",
		Env: []string{"API_KEY=canary-value-7f3a", "TEST_SERVER_VERSION=1.0.0"}, Secrets: []string{"canary-value-7f3a"}}
	var mu sync.Mutex
	var events []string
	in, err := Start("i1", "1.0.0", "", p, runtime.Local(true, "", "test")[plan.Command], Options{HealthInterval: 100 * time.Millisecond,
		BackoffBase: 50 * time.Millisecond}, func(e Event) {
		if e.Kind != "" {
			mu.Lock()
			events = append(events, e.Kind)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	waitState(t, in, Healthy)
	cs := connect(t, in.Address())
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools = %v, %v", tools, err)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "API_KEY"}})
	if err != nil || text(r) != "canary-value-7f3a" {
		t.Fatalf("env API_KEY = %v, %v", r, err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": "PYLEE_SERVICE_SECRET"}}); err != nil || text(r) != "" {
		t.Fatalf("the deploy process's own environment leaked: %v, %v", r, err)
	}

	got := make(chan float64, 10)
	c := mcp.NewClient(&mcp.Implementation{Name: "progress"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			if r.Params.ProgressToken == "mine" {
				got <- r.Params.Progress
			}
		}})
	pcs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: in.Address()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pcs.Close()
	params := &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"n": 3}}
	params.SetProgressToken("mine")
	if r, err := pcs.CallTool(ctx, params); err != nil || text(r) != "3" {
		t.Fatalf("count = %v, %v", r, err)
	}
	if len(got) != 3 {
		t.Fatalf("progress notifications with the client's token: %d, want 3", len(got))
	}

	// kill -9 the process: restarted, same address, exit recorded.
	in.mu.Lock()
	pid := in.proc.(interface{ Pid() int }).Pid()
	in.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for in.Status().Restarts == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := waitState(t, in, Healthy)
	if st.Restarts != 1 || !strings.Contains(st.LastExit, "killed") {
		t.Fatalf("after kill -9: %+v", st)
	}
	cs2 := connect(t, in.Address())
	if r, err := cs2.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "again"}}); err != nil || text(r) != "1.0.0:again" {
		t.Fatalf("echo after restart = %v, %v", r, err)
	}
	lines, _ := in.Logs().Tail(0)
	joined := strings.Join(lines, "\n")
	if strings.Contains(joined, "canary-value-7f3a") || !strings.Contains(joined, "API_KEY=[REDACTED]") {
		t.Fatalf("log not redacted:\n%s", joined)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ",") != "started,exited,started" {
		t.Fatalf("events = %v", events)
	}
}

// A process that exits at once is reported as a crash loop, with a
// backoff that grows: it does not restart in a tight loop.
func TestCrashLoopBacksOff(t *testing.T) {
	p := plan.Plan{Runtime: plan.Command, Command: "/bin/false", Transport: "stdio"}
	in, err := Start("i1", "1.0.0", "", p, runtime.Local(true, "", "test")[plan.Command], Options{BackoffBase: 20 * time.Millisecond,
		BackoffMax: 400 * time.Millisecond, StartTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	st := waitState(t, in, CrashLoop)
	if st.Restarts < 3 || st.LastExit == "" {
		t.Fatalf("crash loop status: %+v", st)
	}
	time.Sleep(time.Second)
	// 20+40+80+160+320+400+400... ms: about 7 starts in 1.5 s, never hundreds.
	if n := in.Status().Restarts; n > 12 {
		t.Fatalf("restarted %d times in about 1.5 s: no backoff", n)
	}
}

// A runtime this host lacks refuses, naming what is missing.
func TestRuntimeRefusals(t *testing.T) {
	ctx := context.Background()
	set := runtime.Local(false, "unix:///nonexistent/docker.sock", "test")
	if err := set[plan.Command].Check(ctx, plan.Plan{Command: testServer}); err == nil || !strings.Contains(err.Error(), "--deploy-allow-command") {
		t.Fatalf("command runtime off: %v", err)
	}
	if err := set[plan.OCI].Check(ctx, plan.Plan{}); err == nil || !strings.Contains(err.Error(), "no Docker engine answers at unix:///nonexistent/docker.sock") {
		t.Fatalf("oci without an engine: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if err := set[plan.PyPI].Check(ctx, plan.Plan{Command: "uvx"}); err == nil || !strings.Contains(err.Error(), "uvx is not installed") {
		t.Fatalf("pypi without uvx: %v", err)
	}
}
