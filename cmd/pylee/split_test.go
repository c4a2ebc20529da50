package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// buildPylee builds the pylee binary once per test process.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func pyleeBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pylee-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pylee")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// handedOut are the addresses freeAddr gave: the kernel may offer a
// closed port again at once, and two targets of one test must not get
// the same.
var handedOut sync.Map

func freeAddr(t testing.TB) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
}

// proc is a `pylee serve` child process.
type proc struct {
	t        testing.TB
	args     []string
	httpAddr string
	logFile  string
	cmd      *exec.Cmd
	done     chan struct{}
	// https and client, when set, probe readiness over TLS.
	https  bool
	client *http.Client
}

func startProc(t testing.TB, httpAddr, logFile string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, httpAddr: httpAddr, logFile: logFile}
	p.start()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(pyleeBinary(p.t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scheme, client := "http://", http.DefaultClient
		if p.https {
			scheme, client = "https://", p.client
		}
		resp, err := client.Get(scheme + p.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.logFile)
			p.t.Fatalf("pylee %v exited: %s", p.args, log)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pylee %v not ready", p.args)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("pylee did not stop on SIGTERM")
	}
}

// kill sends SIGKILL: no shutdown, no cleanup.
func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// TestSplitAuditDownAndRelayKilled runs audit and orgs+gateway as separate
// processes. With audit stopped, 1,000 org writes succeed; when it returns,
// every event arrives exactly once and in order per organization. Then the
// same with the relay's process killed by SIGKILL while it delivers.
func TestSplitAuditDownAndRelayKilled(t *testing.T) {
	dir := t.TempDir()
	auditGRPC, auditHTTP, orgsGRPC, orgsHTTP := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--service-token", "pyl_split_test_service_token_0123456789", "--page-token-key",
		"split-test-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--relay-poll", "50ms",
		"--denied-window", "100ms", "--migrate"}
	auditArgs := append([]string{"serve", "--target=audit", "--grpc-addr", auditGRPC, "--http-addr", auditHTTP,
		"--data-dir", filepath.Join(dir, "audit"), "--orgs-addr", orgsGRPC}, common...)
	orgsArgs := append([]string{"serve", "--target=orgs,gateway", "--grpc-addr", orgsGRPC, "--http-addr", orgsHTTP,
		"--data-dir", filepath.Join(dir, "orgs"), "--audit-addr", auditGRPC}, common...)
	auditProc := startProc(t, auditHTTP, filepath.Join(dir, "audit.log"), auditArgs...)
	orgsProc := startProc(t, orgsHTTP, filepath.Join(dir, "orgs.log"), orgsArgs...)
	tok, err := os.ReadFile(filepath.Join(dir, "orgs", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	u := &upInstance{rest: "http://" + orgsHTTP, token: token}

	conn, err := grpc.NewClient(auditGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auditClient := auditv1.NewAuditServiceClient(conn)
	// The installation admin reads the log (service identities may not).
	svcCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)

	const orgCount, perOrg = 10, 100 // 1,000 writes per phase
	orgIDs := make([]string, orgCount)
	for i := range orgIDs {
		orgIDs[i] = fmt.Sprintf("split-%02d", i)
		r := u.do(t, "POST", "/v1/orgs?organization_id="+orgIDs[i], token, strings.NewReader(`{"displayName":"v-start"}`))
		if r.status != 200 {
			t.Fatalf("create: %d %v", r.status, r.body)
		}
	}
	writes := func(phase int) {
		t.Helper()
		for i := 0; i < perOrg; i++ {
			for _, org := range orgIDs {
				body := fmt.Sprintf(`{"displayName":"p%d-%03d"}`, phase, i)
				r := u.do(t, "PATCH", "/v1/orgs/"+org+"?update_mask=display_name", token, strings.NewReader(body))
				if r.status != 200 {
					t.Fatalf("write with audit down: %d %v", r.status, r.body)
				}
			}
		}
	}
	// count returns how many events org's log holds.
	count := func(org string) int {
		resp, err := auditClient.ListEvents(svcCtx, &auditv1.ListEventsRequest{Parent: "orgs/" + org, PageSize: 1000})
		if err != nil {
			return -1
		}
		return len(resp.Events)
	}
	waitAll := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			done := true
			for _, org := range orgIDs {
				if count(org) < want {
					done = false
					break
				}
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("events did not all arrive: %s has %d, want %d", orgIDs[0], count(orgIDs[0]), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// check asserts exactly want events per org: unique ids, a valid chain,
	// and the writes in the order they were made.
	check := func(want int) {
		t.Helper()
		for _, org := range orgIDs {
			resp, err := auditClient.ListEvents(svcCtx, &auditv1.ListEventsRequest{Parent: "orgs/" + org, PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Events) != want {
				t.Fatalf("%s: %d events, want exactly %d", org, len(resp.Events), want)
			}
			seen := map[string]bool{}
			var values []string
			for i := len(resp.Events) - 1; i >= 0; i-- {
				ev := resp.Events[i]
				if seen[ev.Id] {
					t.Fatalf("%s: event %s twice", org, ev.Id)
				}
				seen[ev.Id] = true
				if ev.Action == "orgs.organization.update" {
					values = append(values, ev.Changes[0].NewValue)
				}
			}
			for i := 1; i < len(values); i++ {
				if values[i] <= values[i-1] {
					t.Fatalf("%s: writes out of order: %s after %s", org, values[i], values[i-1])
				}
			}
			v, err := auditClient.VerifyLog(svcCtx, &auditv1.VerifyLogRequest{Parent: "orgs/" + org})
			if err != nil || !v.Ok {
				t.Fatalf("%s: verify = %v, %v", org, v, err)
			}
		}
	}

	waitAll(1)

	// Phase 1: audit down during 1,000 writes.
	auditProc.stop()
	writes(1)
	auditProc.start()
	waitAll(1 + perOrg)
	check(1 + perOrg)

	// Phase 2: 1,000 more writes with audit down, then SIGKILL the relay's
	// process as soon as delivery has started.
	auditProc.stop()
	writes(2)
	auditProc.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := count(orgIDs[0]); n > 1+perOrg {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delivery did not resume")
		}
		time.Sleep(2 * time.Millisecond)
	}
	orgsProc.kill()
	orgsProc.start()
	waitAll(1 + 2*perOrg)
	check(1 + 2*perOrg)

	// Users reach the audit process through the gateway of the other one;
	// it verifies their token through the orgs service.
	evs := u.waitEvents(t, orgIDs[0], 1+2*perOrg)
	if evs[0]["action"] != "orgs.organization.create" {
		t.Fatalf("first event through the gateway = %v", evs[0])
	}
	if r := u.do(t, "GET", "/v1/orgs/"+orgIDs[0]+"/events", "pyl_wrong", nil); r.status != 401 {
		t.Fatalf("wrong token through the gateway: %d", r.status)
	}
	// The audit process counted that anonymous refusal into the
	// installation's log (not the org's: anyone can send those).
	refusal := u.waitEvent(t, "-", func(ev map[string]any) bool {
		md, _ := ev["metadata"].(map[string]any)
		return ev["action"] == "auth.credential.refuse" && strings.Contains(fmt.Sprint(md["methods"]), "AuditService/ListEvents")
	})
	if refusal["outcome"] != "denied" {
		t.Fatalf("refusal at the audit target = %v", refusal)
	}
	if evs := u.waitEvents(t, orgIDs[0], 1+2*perOrg); len(evs) != 1+2*perOrg {
		t.Fatalf("the anonymous refusal reached the org's own log: %d events", len(evs))
	}
	// Decisions there come from the orgs service: a member without
	// audit.read is refused, a non-member does not learn the org exists.
	ci := u.saToken(t, orgIDs[0], "ci", "roles/user", "orgs/"+orgIDs[0])
	u.expect(t, "GET", "/v1/orgs/"+orgIDs[0]+"/events", ci, "", 403)
	u.expect(t, "GET", "/v1/orgs/"+orgIDs[1]+"/events", ci, "", 404)
	orgsProc.stop()
	auditProc.stop()
}
