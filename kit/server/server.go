package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/frozen"
)

// Config configures the listeners and the shutdown of a process.
type Config struct {
	// GRPCAddr and HTTPAddr are listen addresses; port 0 picks a free port.
	GRPCAddr string
	HTTPAddr string
	// ShutdownTimeout bounds the graceful part of shutdown; calls still
	// running after it are cut off.
	ShutdownTimeout time.Duration
	// MaxRecvBytes bounds a gRPC request message (default 4 MiB).
	MaxRecvBytes int
	// ReadHeaderTimeout and ReadTimeout bound how long an HTTP client may
	// take to send its headers, and its whole request (defaults 10 s, 30 s).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// GRPCTLS and HTTPTLS, when set, serve the listeners over TLS. A gRPC
	// TLS configuration with ClientCAs verifies the client certificates
	// that are presented: their service identities (ServiceIdentityOf)
	// authenticate calls that carry no credential.
	GRPCTLS *tls.Config
	HTTPTLS *tls.Config
	// TrustedProxies are the peers whose X-Forwarded-For (and the REST
	// gateway's x-forwarded-for metadata) is believed for the client
	// address that logs and audit events record.
	TrustedProxies []netip.Prefix
}

// Server is one process's gRPC and HTTP servers.
type Server struct {
	cfg      Config
	log      *zap.Logger
	grpc     *grpc.Server
	mux      *http.ServeMux
	health   *health.Server
	registry *prometheus.Registry
	metrics  *metrics
	// httpMetrics counts HTTP answers by status class.
	httpMetrics *httpMetrics
	// routeMetrics time the plain HTTP routes (HandleRoute).
	routeMetrics *routeMetrics
	validators   map[string]Validator
	rules        map[string]Rule
	// local are the unary methods of the registered services, for calls
	// made in this process (InProcess).
	local  map[string]localMethod
	authn  auth.Authenticator
	authz  auth.Authorizer
	denied DeniedRecorder
	// validation is built by Run from the validators and the rules the
	// requests of every registered service declare.
	validation *Validation

	grpcLis, httpLis net.Listener
	httpSrv          *http.Server

	mu       sync.Mutex
	cleanups []cleanup
}

type cleanup struct {
	name string
	fn   func(context.Context) error
}

// New returns a server; register services and handlers, then Listen and Run.
func New(cfg Config, log *zap.Logger) *Server {
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.MaxRecvBytes <= 0 {
		cfg.MaxRecvBytes = 4 << 20
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{
		cfg:          cfg,
		log:          log,
		mux:          http.NewServeMux(),
		health:       health.NewServer(),
		registry:     reg,
		metrics:      newMetrics(reg),
		httpMetrics:  newHTTPMetrics(reg),
		routeMetrics: newRouteMetrics(reg),
		validators:   map[string]Validator{},
		local:        map[string]localMethod{},
		authz:        auth.DenyAll{},
	}
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	for _, ic := range s.Chain() {
		unary = append(unary, ic.Unary)
		stream = append(stream, ic.Stream)
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// Replies built of shared messages that never change (a registry's
		// rendered entries) are sent from their encoding, made once.
		grpc.ForceServerCodecV2(frozen.Codec()),
	}
	if cfg.GRPCTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.GRPCTLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.ready)
	return s
}

// SetAuth sets how callers are authenticated and authorized. Without an
// authenticator every call that needs a credential is refused.
func (s *Server) SetAuth(authn auth.Authenticator, authz auth.Authorizer) {
	s.authn = authn
	if authz != nil {
		s.authz = authz
	}
}

// SetDeniedRecorder sets where refused calls are recorded.
func (s *Server) SetDeniedRecorder(r DeniedRecorder) { s.denied = r }

// RegisterService registers a gRPC service and the hand-written validators
// of its requests, keyed by full method name
// (`/pylee.orgs.v1.OrgsService/GetOrganization`); every RPC needs one, or
// DeclaredOnly when the rules declared in its proto say everything.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any, validators map[string]Validator) {
	s.grpc.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		s.local["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
	for m, v := range validators {
		s.validators[m] = v
	}
	s.health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// serviceNames are the registered services but the infrastructure ones.
func (s *Server) serviceNames() []string {
	var names []string
	for name := range s.grpc.GetServiceInfo() {
		if !isInfrastructure("/" + name + "/") {
			names = append(names, name)
		}
	}
	return names
}

// GRPC returns the gRPC server, e.g. for tests that enumerate its services.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Handle registers an HTTP handler on the HTTP server.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Registry is the Prometheus registry served at /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// AddCleanup registers fn to run at shutdown; cleanups run in reverse order
// of registration, each under the shutdown deadline.
func (s *Server) AddCleanup(name string, fn func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, cleanup{name, fn})
}

// Listen binds both listeners, so their addresses are known (port 0) before
// anything dials them.
func (s *Server) Listen() error {
	var err error
	if s.grpcLis, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen grpc on %s: %w", s.cfg.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		s.grpcLis.Close()
		return fmt.Errorf("listen http on %s: %w", s.cfg.HTTPAddr, err)
	}
	return nil
}

// GRPCAddr is the bound gRPC address (after Listen).
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address (after Listen).
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Run serves until ctx is done, then shuts down: health turns NOT_SERVING,
// both servers drain for at most ShutdownTimeout, then stop hard; cleanups
// run last, in reverse. It refuses to start if any RPC is unguarded.
func (s *Server) Run(ctx context.Context) error {
	if s.grpcLis == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	rules, err := RulesOf(s.grpc, s.validators)
	if err == nil {
		s.validation, err = NewValidation(s.validators, s.serviceNames()...)
	}
	if err != nil {
		s.closeListeners()
		s.RunCleanups(ctx)
		return err
	}
	s.rules = rules
	s.httpSrv = &http.Server{
		Handler:           s.httpChain(s.mux),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		TLSConfig:         s.cfg.HTTPTLS,
	}
	httpLis := s.httpLis
	if s.cfg.HTTPTLS != nil {
		httpLis = tls.NewListener(s.httpLis, s.cfg.HTTPTLS)
	}
	// Serving from the first call: a client that connected while the
	// process was starting must not be told NOT_SERVING.
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() {
		if err := s.httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.log.Error("server stopped unexpectedly", zap.Error(serveErr))
	}
	s.shutdown()
	return serveErr
}

// AbortListen releases the listeners of a server that will not Run, e.g.
// when building the process failed after Listen.
func (s *Server) AbortListen() {
	if s.grpcLis != nil {
		s.closeListeners()
	}
}

// RunCleanups runs the registered cleanups in reverse order; Run does this at
// shutdown, a caller that gives up before Run does it itself.
func (s *Server) RunCleanups(ctx context.Context) {
	s.mu.Lock()
	cleanups := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		c := cleanups[i]
		if err := c.fn(ctx); err != nil {
			s.log.Error("cleanup failed", zap.String("cleanup", c.name), zap.Error(err))
		}
	}
}

func (s *Server) closeListeners() {
	s.grpcLis.Close()
	s.httpLis.Close()
}

func (s *Server) shutdown() {
	s.log.Info("shutting down", zap.Duration("grace", s.cfg.ShutdownTimeout))
	s.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()

	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.grpc.GracefulStop() }()
		go func() { defer wg.Done(); _ = s.httpSrv.Shutdown(ctx) }()
		wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("grace period over, stopping hard")
		s.grpc.Stop()
		_ = s.httpSrv.Close()
		// Handlers see their context canceled; one that ignores it cannot be
		// waited for forever.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.log.Error("handlers still running after hard stop")
		}
	}

	cctx, ccancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer ccancel()
	s.RunCleanups(cctx)
	s.log.Info("stopped")
}
