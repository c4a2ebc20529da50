package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeOrgs is a test double of the handler layer only: the server under test
// is real.
type fakeOrgs struct {
	orgsv1.UnimplementedOrgsServiceServer
	block   chan struct{}
	entered chan struct{}
}

func (f *fakeOrgs) GetOrganization(ctx context.Context, req *orgsv1.GetOrganizationRequest) (*orgsv1.Organization, error) {
	switch req.Name {
	case "orgs/panic":
		panic("boom")
	case "orgs/missing":
		return nil, fmt.Errorf("organization %q: %w", req.Name, errs.ErrNotFound)
	case "orgs/broken":
		return nil, errors.New("driver: password=hunter2 refused")
	case "orgs/slow":
		f.entered <- struct{}{}
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p, _ := auth.FromContext(ctx)
	return &orgsv1.Organization{Name: req.Name, DisplayName: p.Name}, nil
}

type tokenAuthn map[string]auth.Principal

func (t tokenAuthn) Authenticate(_ context.Context, c config.Secret) (auth.Principal, error) {
	if p, ok := t[c.Reveal()]; ok {
		return p, nil
	}
	return auth.Principal{}, fmt.Errorf("unknown token: %w", errs.ErrUnauthenticated)
}

type denyAll struct{ seen []string }

func (d *denyAll) Authorize(_ context.Context, p auth.Principal, perm, res string) error {
	d.seen = append(d.seen, perm+" "+res)
	if res == "orgs/forbidden" {
		return fmt.Errorf("%s on %s: %w", perm, res, errs.ErrPermissionDenied)
	}
	return nil
}

func allValidators(v Validator) map[string]Validator {
	m := map[string]Validator{}
	for _, md := range orgsv1.OrgsService_ServiceDesc.Methods {
		m["/pylee.orgs.v1.OrgsService/"+md.MethodName] = v
	}
	return m
}

func validGet(req proto.Message) error {
	if r, ok := req.(*orgsv1.GetOrganizationRequest); ok && r.Name == "" {
		return errs.Field("name", "is required")
	}
	return nil
}

type harness struct {
	srv    *Server
	conn   *grpc.ClientConn
	client orgsv1.OrgsServiceClient
	logs   *observer.ObservedLogs
	authz  *denyAll
	fake   *fakeOrgs
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startWith(t, cfg, allValidators(validGet))
}

// startWith starts a harness whose RPCs have the given hand-written
// validators.
func startWith(t *testing.T, cfg Config, validators map[string]Validator) *harness {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	s := New(cfg, zap.New(core))
	h := &harness{srv: s, logs: logs, authz: &denyAll{}, fake: &fakeOrgs{block: make(chan struct{}), entered: make(chan struct{}, 1)}}
	s.SetAuth(tokenAuthn{"pyl_good": {Name: "users/admin", Kind: auth.KindUser}}, h.authz)
	s.RegisterService(&orgsv1.OrgsService_ServiceDesc, h.fake, validators)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- s.Run(ctx) }()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn, h.client = conn, orgsv1.NewOrgsServiceClient(conn)
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.conn.Close()
	h.cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func authed(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func TestChainOrder(t *testing.T) {
	s := New(Config{}, zap.NewNop())
	var names []string
	for _, ic := range s.Chain() {
		names = append(names, ic.Name)
	}
	want := "recovery,request_id,access_log,metrics,status,authentication,validation"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("chain = %s, want %s", got, want)
	}
}

func TestCalls(t *testing.T) {
	h := start(t, Config{})
	tests := []struct {
		name    string
		ctx     context.Context
		org     string
		code    codes.Code
		reason  string
		inMsg   string
		notInMs string
	}{
		{"ok", authed("pyl_good"), "orgs/acme", codes.OK, "", "", ""},
		{"no token", context.Background(), "orgs/acme", codes.Unauthenticated, "UNAUTHENTICATED", "missing credential", ""},
		{"wrong token", authed("pyl_bad"), "orgs/acme", codes.Unauthenticated, "UNAUTHENTICATED", "", "pyl_bad"},
		{"not bearer", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic x"), "orgs/acme", codes.Unauthenticated, "UNAUTHENTICATED", "Bearer", ""},
		{"anonymous invalid request learns nothing", context.Background(), "", codes.Unauthenticated, "UNAUTHENTICATED", "", "name"},
		{"invalid", authed("pyl_good"), "", codes.InvalidArgument, "INVALID_ARGUMENT", "name: is required", ""},
		{"denied", authed("pyl_good"), "orgs/forbidden", codes.PermissionDenied, "PERMISSION_DENIED", "", ""},
		{"not found", authed("pyl_good"), "orgs/missing", codes.NotFound, "NOT_FOUND", "not found", ""},
		{"internal hides cause", authed("pyl_good"), "orgs/broken", codes.Internal, "INTERNAL", "request id", "hunter2"},
		{"panic", authed("pyl_good"), "orgs/panic", codes.Internal, "INTERNAL", "internal error", "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr metadata.MD
			got, err := h.client.GetOrganization(tt.ctx, &orgsv1.GetOrganizationRequest{Name: tt.org}, grpc.Header(&hdr))
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%s), want %v", st.Code(), st.Message(), tt.code)
			}
			if len(hdr.Get(RequestIDHeader)) != 1 {
				t.Errorf("no %s header", RequestIDHeader)
			}
			if tt.code == codes.OK {
				if got.DisplayName != "users/admin" {
					t.Errorf("principal not passed to handler: %v", got)
				}
				return
			}
			if !strings.Contains(st.Message(), tt.inMsg) || (tt.notInMs != "" && strings.Contains(st.Message(), tt.notInMs)) {
				t.Errorf("message = %q", st.Message())
			}
			var reason string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reason = info.Reason
				}
			}
			if reason != tt.reason {
				t.Errorf("reason = %q, want %q", reason, tt.reason)
			}
		})
	}
	// The authorizer saw the permission and the resource from the rule.
	if len(h.authz.seen) == 0 || h.authz.seen[0] != "orgs.get orgs/acme" {
		t.Errorf("authorizer saw %v", h.authz.seen)
	}
	// One access-log line per call, with the request id; the secret never.
	var lines int
	for _, e := range h.logs.All() {
		if e.Message == "grpc call" {
			lines++
			if e.ContextMap()["request_id"] == "" {
				t.Error("access log line without request id")
			}
		}
		for _, v := range e.ContextMap() {
			if strings.Contains(fmt.Sprint(v), "pyl_good") || strings.Contains(fmt.Sprint(v), "pyl_bad") {
				t.Errorf("credential in log: %v", e.ContextMap())
			}
		}
	}
	if lines != len(tests) {
		t.Errorf("access log lines = %d, want %d", lines, len(tests))
	}
	// The panic and the unknown error were logged with their cause.
	if h.logs.FilterMessage("panic in handler").Len() != 1 || h.logs.FilterMessage("internal error").Len() != 1 {
		t.Error("panic or internal error not logged")
	}
}

func TestRequestIDPropagates(t *testing.T) {
	h := start(t, Config{})
	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(authed("pyl_good"), RequestIDHeader, "req-123")
	if _, err := h.client.GetOrganization(ctx, &orgsv1.GetOrganizationRequest{Name: "orgs/acme"}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(RequestIDHeader); len(got) != 1 || got[0] != "req-123" {
		t.Fatalf("request id = %v", got)
	}
}

func TestHealthAndHTTP(t *testing.T) {
	h := start(t, Config{})
	resp, err := healthpb.NewHealthClient(h.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "pylee.orgs.v1.OrgsService"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "pylee_grpc_server_requests_total"} {
		if path == "/metrics" {
			_, _ = h.client.GetOrganization(authed("pyl_good"), &orgsv1.GetOrganizationRequest{Name: "orgs/acme"})
		}
		r, err := http.Get("http://" + h.srv.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s = %d %q", path, r.StatusCode, body)
		}
	}
}

func TestRefusesUnguardedRPC(t *testing.T) {
	s := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, zap.NewNop())
	v := allValidators(validGet)
	delete(v, "/pylee.orgs.v1.OrgsService/DeleteOrganization")
	s.RegisterService(&orgsv1.OrgsService_ServiceDesc, &fakeOrgs{}, v)
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "DeleteOrganization (no request validator)") {
		t.Fatalf("Run = %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	h := start(t, Config{ShutdownTimeout: 5 * time.Second})
	var order []string
	var mu sync.Mutex
	for _, n := range []string{"first", "second"} {
		h.srv.AddCleanup(n, func(context.Context) error { mu.Lock(); order = append(order, n); mu.Unlock(); return nil })
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.GetOrganization(authed("pyl_good"), &orgsv1.GetOrganizationRequest{Name: "orgs/slow"})
		errc <- err
	}()
	<-h.fake.entered
	h.cancel()
	time.Sleep(50 * time.Millisecond)
	close(h.fake.block) // the in-flight call finishes inside the grace period
	if err := <-errc; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.conn.Close()
	h.cancel = nil
	if strings.Join(order, ",") != "second,first" {
		t.Fatalf("cleanups ran as %v, want reverse order", order)
	}
}

func TestHardStopAfterGrace(t *testing.T) {
	h := start(t, Config{ShutdownTimeout: 200 * time.Millisecond})
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.GetOrganization(authed("pyl_good"), &orgsv1.GetOrganizationRequest{Name: "orgs/slow"})
		errc <- err
	}()
	<-h.fake.entered
	h.cancel()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("cut-off call = %v, want Unavailable", err)
	}
	close(h.fake.block)
	h.conn.Close()
	h.cancel = nil
}
