package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
)

// Interceptor is one named step of the chain, for unary and streaming calls.
type Interceptor struct {
	Name   string
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
}

// RequestIDHeader carries the request id in gRPC metadata and HTTP headers.
const RequestIDHeader = "x-request-id"

// Chain returns the interceptors in the order they run: recovery, request
// id, access log, metrics, status (domain errors to gRPC statuses),
// authentication, validation. Recovery is outermost so a panic anywhere
// becomes an Internal error; the log and metrics see the final status code;
// authentication runs before validation so an anonymous caller learns
// nothing from validation messages.
func (s *Server) Chain() []Interceptor {
	return []Interceptor{
		{"recovery", s.recoveryUnary, s.recoveryStream},
		{"request_id", s.requestIDUnary, s.requestIDStream},
		{"access_log", s.logUnary, s.logStream},
		{"metrics", s.metrics.unary, s.metrics.stream},
		{"status", s.statusUnary, s.statusStream},
		{"authentication", s.authUnary, s.authStream},
		{"validation", s.validateUnary, s.validateStream},
	}
}

// --- recovery ---------------------------------------------------------------

func (s *Server) recovered(ctx context.Context, method string, r any) error {
	ci := callInfoFrom(ctx)
	s.log.Error("panic in handler", zap.String("method", method), zap.String("request_id", ci.requestID),
		zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
	return errs.ToStatus(fmt.Errorf("panic: %v", r), ci.requestID).Err()
}

func (s *Server) recoveryUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	ctx, _ = withCallInfo(ctx)
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.recovered(ctx, info.FullMethod, r)
		}
	}()
	return next(ctx, req)
}

func (s *Server) recoveryStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
	ctx, _ := withCallInfo(ss.Context())
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(ctx, info.FullMethod, r)
		}
	}()
	return next(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

// --- request id -------------------------------------------------------------

func (s *Server) requestID(ctx context.Context) string {
	return readCallInfo(ctx, s.cfg.TrustedProxies)
}

// readCallInfo fills the call's info from its incoming metadata.
func readCallInfo(ctx context.Context, trusted []netip.Prefix) string {
	ci := callInfoFrom(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RequestIDHeader); len(v) > 0 && validRequestID(v[0]) {
		ci.requestID = v[0]
	}
	// The REST gateway forwards the HTTP client's address: believed only
	// from a trusted proxy, or a peer whose certificate names the gateway.
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	id, verified := ServiceIdentityOf(ctx)
	// A call made in this process (InProcess) comes from this process's own
	// gateway, which put the address there as it learnt it.
	gateway := verified && auth.MayCall(id, []string{"gateway"}) || inProcessCall(ctx)
	ci.clientAddress = cutBytes(ClientAddress(peerAddr, md.Get("x-forwarded-for"), gateway, trusted), maxClientAddress)
	if v := md.Get("grpcgateway-user-agent"); len(v) > 0 {
		ci.userAgent = cutBytes(v[0], maxUserAgent)
	} else if v := md.Get("user-agent"); len(v) > 0 {
		ci.userAgent = cutBytes(v[0], maxUserAgent)
	}
	if ci.requestID == "" {
		ci.requestID = newRequestID()
	}
	return ci.requestID
}

// ClientAddress is the address a call or request came from: its peer's,
// unless the peer is a trusted proxy (in trusted, or vouched for), whose
// forwarded chain (X-Forwarded-For, each hop appending the address it saw)
// is then walked from the right past trusted proxies to the first address
// that is not one. A client cannot choose its address by sending the
// header itself: only what trusted hops appended counts.
func ClientAddress(peerAddr string, forwarded []string, vouched bool, trusted []netip.Prefix) string {
	host := peerAddr
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		host = h
	}
	isTrusted := func(a string) bool {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(ip.Unmap()) {
				return true
			}
		}
		return false
	}
	if !vouched && !isTrusted(host) {
		return host
	}
	var hops []string
	for _, v := range forwarded {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	addr := host
	for i := len(hops) - 1; i >= 0; i-- {
		addr = hops[i]
		if h, _, err := net.SplitHostPort(addr); err == nil {
			addr = h
		}
		if !isTrusted(addr) {
			return addr
		}
	}
	return addr
}

// Client facts are kept to a bound: they reach logs and audit events.
const (
	maxUserAgent     = 256
	maxClientAddress = 64
)

// cutBytes cuts s to at most max bytes on a character boundary.
func cutBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

func newRequestID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, s.requestID(ctx)))
	return next(ctx, req)
}

func (s *Server) requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	_ = ss.SetHeader(metadata.Pairs(RequestIDHeader, s.requestID(ss.Context())))
	return next(srv, ss)
}

// --- access log -------------------------------------------------------------

func (s *Server) logCall(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	ci := callInfoFrom(ctx)
	lvl := zapcore.InfoLevel
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		lvl = zapcore.ErrorLevel
	}
	if ce := s.log.Check(lvl, "grpc call"); ce != nil {
		fields := []zap.Field{
			zap.String("request_id", ci.requestID),
			zap.String("method", method),
			zap.String("code", code.String()),
			zap.Duration("duration", time.Since(start)),
		}
		if ci.principal != "" {
			fields = append(fields, zap.String("principal", ci.principal))
		}
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			fields = append(fields, zap.String("peer", p.Addr.String()))
		}
		if err != nil && code != codes.Internal {
			// Messages of known errors are written for clients and hold no secrets.
			fields = append(fields, zap.String("error", status.Convert(err).Message()))
		}
		ce.Write(fields...)
	}
}

// errPanicked stands for a call whose handler panicked, so the log and the
// metrics count it before recovery, further out, answers it.
var errPanicked = status.Error(codes.Internal, "panic")

// observePanic records a panic with record and panics on to recovery.
func observePanic(record func(error)) {
	if r := recover(); r != nil {
		record(errPanicked)
		panic(r)
	}
}

func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	defer observePanic(func(err error) { s.logCall(ctx, info.FullMethod, start, err) })
	resp, err := next(ctx, req)
	s.logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	start := time.Now()
	defer observePanic(func(err error) { s.logCall(ss.Context(), info.FullMethod, start, err) })
	err := next(srv, ss)
	s.logCall(ss.Context(), info.FullMethod, start, err)
	return err
}

// --- metrics ----------------------------------------------------------------

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pylee_grpc_server_requests_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pylee_grpc_server_request_duration_seconds",
			Help:    "Time to handle a gRPC call, by method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	defer observePanic(func(err error) { m.observe(info.FullMethod, start, err) })
	resp, err := next(ctx, req)
	m.observe(info.FullMethod, start, err)
	return resp, err
}

func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	start := time.Now()
	defer observePanic(func(err error) { m.observe(info.FullMethod, start, err) })
	err := next(srv, ss)
	m.observe(info.FullMethod, start, err)
	return err
}

// --- status -----------------------------------------------------------------

func (s *Server) toStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	ci := callInfoFrom(ctx)
	if !errs.Known(err) {
		// The one place an unexpected error's text is written down: the log,
		// under the request id the client is given.
		s.log.Error("internal error", zap.String("request_id", ci.requestID), zap.String("method", method), zap.Error(err))
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "request canceled")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return errs.ToStatus(err, ci.requestID).Err()
}

func (s *Server) statusUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	resp, err := next(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, info.FullMethod, err)
	}
	return resp, nil
}

func (s *Server) statusStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return s.toStatus(ss.Context(), info.FullMethod, next(srv, ss))
}

// --- authentication and authorization -----------------------------------------

func (s *Server) authenticate(ctx context.Context, method string) (context.Context, *Rule, error) {
	rule, ok := s.rules[method]
	if !ok {
		if isInfrastructure(method) {
			return ctx, nil, nil
		}
		// Deny by default: a method without a rule is never served.
		return ctx, nil, fmt.Errorf("method %s declares no access rule: %w", method, errs.ErrPermissionDenied)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		// A call without a credential from a peer whose client certificate
		// the server verified is that peer's service identity (mTLS
		// between targets).
		if p, ok := ServiceIdentityOf(ctx); ok {
			callInfoFrom(ctx).principal = p.Name
			if rule.Public {
				return auth.WithPrincipal(ctx, p), nil, nil
			}
			return auth.WithPrincipal(ctx, p), &rule, nil
		}
		if rule.Public {
			return ctx, nil, nil
		}
		return ctx, nil, fmt.Errorf("missing credential: send %q: %w", "authorization: Bearer <token>", errs.ErrUnauthenticated)
	}
	cred, err := auth.ParseBearer(vals[0])
	if err != nil {
		return ctx, nil, err
	}
	if s.authn == nil {
		return ctx, nil, fmt.Errorf("this process cannot verify credentials: %w", errs.ErrUnauthenticated)
	}
	p, err := s.authn.Authenticate(ctx, cred)
	if err != nil {
		if errs.Known(err) {
			return ctx, nil, err
		}
		return ctx, nil, fmt.Errorf("verify credential: %w", err)
	}
	callInfoFrom(ctx).principal = p.Name
	if rule.Public {
		// A public RPC called with a valid credential learns who called.
		return auth.WithPrincipal(ctx, p), nil, nil
	}
	return auth.WithPrincipal(ctx, p), &rule, nil
}

func (s *Server) authorize(ctx context.Context, rule *Rule, req any) error {
	if rule == nil {
		return nil
	}
	p, _ := auth.FromContext(ctx)
	if p.Kind == auth.KindService {
		// A service identity may call exactly what the rules list for it.
		if !auth.MayCall(p, rule.Services) {
			return fmt.Errorf("%s may not call this method (its rule lists %v): %w", p.Name, rule.Services, errs.ErrPermissionDenied)
		}
		return nil
	}
	if rule.Filtered {
		return nil
	}
	resource := ""
	if rule.ResourceField != "" {
		msg, ok := req.(proto.Message)
		if !ok {
			return fmt.Errorf("request is not a proto message")
		}
		resource = fieldString(msg, rule.ResourceField)
	}
	return s.authz.Authorize(ctx, p, rule.Permission, resource)
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	authCtx, rule, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		s.recordDenied(ctx, info.FullMethod, req, err)
		return nil, err
	}
	if err := s.authorize(authCtx, rule, req); err != nil {
		// A NOT_FOUND here hides another tenant's resource: still a refusal.
		if errors.Is(err, errs.ErrNotFound) {
			s.recordDenied(authCtx, info.FullMethod, req, fmt.Errorf("%w (answered as not found)", errs.ErrPermissionDenied))
		} else {
			s.recordDenied(authCtx, info.FullMethod, req, err)
		}
		return nil, err
	}
	return next(authCtx, req)
}

// Denied describes a call refused by authentication or authorization, for
// the audit log. It never holds the presented credential.
type Denied struct {
	Method     string
	Permission string
	// Resource is the resource the call named, when its rule says where.
	Resource string
	Reason   string
}

// DeniedRecorder records refused calls; it runs on the request path, so it
// must be quick and must not fail the call.
type DeniedRecorder func(ctx context.Context, d Denied)

func (s *Server) recordDenied(ctx context.Context, method string, req any, err error) {
	if s.denied == nil || !(errors.Is(err, errs.ErrUnauthenticated) || errors.Is(err, errs.ErrPermissionDenied)) {
		return
	}
	d := Denied{Method: method, Reason: err.Error()}
	if rule, ok := s.rules[method]; ok {
		d.Permission = rule.Permission
		if msg, ok := req.(proto.Message); ok && rule.ResourceField != "" {
			d.Resource = fieldString(msg, rule.ResourceField)
		}
	}
	s.denied(ctx, d)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx, rule, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		s.recordDenied(ss.Context(), info.FullMethod, nil, err)
		return err
	}
	// The resource is in the first request message: authorize on receipt.
	return next(srv, &wrappedStream{ServerStream: ss, ctx: ctx, onFirstRecv: func(m any) error {
		err := s.authorize(ctx, rule, m)
		if err != nil {
			s.recordDenied(ctx, info.FullMethod, m, err)
		}
		return err
	}})
}

func isInfrastructure(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// wrappedStream replaces a stream's context and can check the first message.
type wrappedStream struct {
	grpc.ServerStream
	ctx         context.Context
	onFirstRecv func(any) error
	received    bool
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (w *wrappedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !w.received && w.onFirstRecv != nil {
		w.received = true
		return w.onFirstRecv(m)
	}
	return nil
}
