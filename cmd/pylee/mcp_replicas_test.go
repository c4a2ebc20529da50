package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// roundRobin sends each request to the next gateway replica, as a plain
// load balancer would: one that refuses connections is taken out, and a
// request whose connection broke before an answer is tried on the next
// (a balancer's usual retry on connect failure and reset).
type roundRobin struct {
	hosts []string
	next  atomic.Uint64
	token string
	base  http.RoundTripper
	dead  sync.Map
}

func (rr *roundRobin) RoundTrip(r *http.Request) (*http.Response, error) {
	var lastErr error
	for range rr.hosts {
		h := rr.hosts[rr.next.Add(1)%uint64(len(rr.hosts))]
		if _, dead := rr.dead.Load(h); dead {
			continue
		}
		out := r.Clone(r.Context())
		out.URL.Host, out.Host = h, h
		out.Header.Set("Authorization", "Bearer "+rr.token)
		if r.GetBody != nil {
			out.Body, _ = r.GetBody()
		}
		resp, err := rr.base.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		if strings.Contains(err.Error(), "connection refused") {
			rr.dead.Store(h, true) // the balancer's health check takes it out
		}
		if r.Context().Err() != nil {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// TestMCPGatewayReplicas: three gateway replicas behind a round-robin
// balancer serve MCP sessions without sticky routing (the session id
// carries what each needs); 100 sessions of 20 calls each succeed, also
// when a replica is killed in the middle of the run.
func TestMCPGatewayReplicas(t *testing.T) {
	bin := buildTestServer(t)
	dir := t.TempDir()
	common := []string{"--service-token", "pyl_replica_test_service_token_0123456789", "--page-token-key",
		"replica-test-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--relay-poll", "50ms", "--migrate"}
	backGRPC, backHTTP := freeAddr(t), freeAddr(t)
	backArgs := append([]string{"serve", "--target=orgs,registry,secrets,deploy,audit,gateway", "--grpc-addr", backGRPC, "--http-addr", backHTTP,
		"--data-dir", filepath.Join(dir, "back"), "--deploy-allow-command", "--deploy-discover-interval", "100ms", "--deploy-health-interval", "200ms"}, common...)
	startProc(t, backHTTP, filepath.Join(dir, "back.log"), backArgs...)
	hosts := []string{backHTTP}
	var replicas []*proc
	for i := 0; i < 2; i++ {
		g, h := freeAddr(t), freeAddr(t)
		args := append([]string{"serve", "--target=gateway", "--grpc-addr", g, "--http-addr", h, "--data-dir", filepath.Join(dir, fmt.Sprint("gw", i)),
			"--orgs-addr", backGRPC, "--registry-addr", backGRPC, "--secrets-addr", backGRPC, "--deploy-addr", backGRPC, "--audit-addr", backGRPC}, common...)
		replicas = append(replicas, startProc(t, h, filepath.Join(dir, fmt.Sprint("gw", i, ".log")), args...))
		hosts = append(hosts, h)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "back", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upInstance{rest: "http://" + backHTTP, grpc: backGRPC, token: strings.TrimSpace(string(tok)), logs: &syncBuffer{}}
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=prod", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=echo", u.token, `{"serverName":"com.acme/echo"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/secrets?secret_id=API_KEY", u.token, `{"value":"k"}`, 200)
	var doc map[string]any
	_ = json.Unmarshal([]byte(testServerDoc(bin, "1.0.0", "")), &doc)
	sj, _ := structpb.NewStruct(doc)
	conn, err := grpc.NewClient(backGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := registryv1.NewRegistryServiceClient(conn).CreateVersion(bearer(u.token), &registryv1.CreateVersionRequest{Parent: "orgs/acme/servers/echo",
		Version: &registryv1.ServerVersion{Version: "1.0.0", ServerJson: sj, Tools: testServerTools(t)}}); err != nil {
		t.Fatal(err)
	}
	u.expect(t, "PUT", "/v1/orgs/acme/registries/prod/entries/echo", u.token, `{"version":"1.0.0"}`, 200)
	u.waitDeployment(t, "/v1/orgs/acme/registries/prod/deployments/echo", "served", phaseIs("PHASE_SERVING"))

	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	rr := &roundRobin{hosts: hosts, token: u.token, base: tr}
	endpoint := (&url.URL{Scheme: "http", Host: backHTTP, Path: "/mcp/acme/prod/echo"}).String()
	const sessions, calls = 100, 20
	var failures atomic.Int64
	var firstErr sync.Once
	var done atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	killed := make(chan struct{})
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(s int) {
			defer wg.Done()
			defer func() { <-sem }()
			fail := func(err error) {
				failures.Add(1)
				firstErr.Do(func() { t.Errorf("session %d: %v", s, err) })
			}
			c := mcp.NewClient(&mcp.Implementation{Name: "replica-test"}, nil)
			cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: rr},
				DisableStandaloneSSE: true}, nil)
			if err != nil {
				fail(err)
				return
			}
			defer cs.Close()
			for i := 0; i < calls; i++ {
				want := fmt.Sprintf("1.0.0:%d-%d", s, i)
				r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprintf("%d-%d", s, i)}})
				if err != nil {
					fail(err)
					return
				}
				if got := r.Content[0].(*mcp.TextContent).Text; got != want {
					fail(fmt.Errorf("call %d answered %q, want %q", i, got, want))
					return
				}
			}
			if done.Add(1) == sessions/2 {
				close(killed)
			}
		}(s)
		if s == sessions/2 {
			<-killed
			replicas[1].kill() // mid-run: its sessions' next requests reach the others
		}
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d sessions failed", n, sessions)
	}

	// The aggregated endpoint's session too: each request may reach
	// another replica, which opens its own upstream session when needed.
	agg := (&url.URL{Scheme: "http", Host: backHTTP, Path: "/mcp/acme/prod"}).String()
	c := mcp.NewClient(&mcp.Implementation{Name: "replica-test"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: agg, HTTPClient: &http.Client{Transport: rr},
		DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := toolNames(t, cs); !strings.Contains(fmt.Sprint(got), "echo_echo") {
		t.Fatalf("aggregated tools across replicas: %v", got)
	}
	for i := 0; i < 20; i++ {
		if got := callText(t, cs, "echo_echo", map[string]any{"text": fmt.Sprint(i)}); got != fmt.Sprintf("1.0.0:%d", i) {
			t.Fatalf("aggregated call %d across replicas = %q", i, got)
		}
	}
}
