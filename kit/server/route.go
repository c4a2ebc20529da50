package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
)

// DefaultRouteBodyBytes bounds the body of a plain HTTP route unless its
// rule says otherwise.
const DefaultRouteBodyBytes = 1 << 20

// HTTPRule is the access rule of a plain HTTP route (one that is not a
// grpc-gateway mapping of an RPC), the counterpart of an RPC's
// (pylee.api.v1.auth) option: the official registry API, the audit export,
// the MCP gateway.
type HTTPRule struct {
	// Name labels the route in metrics, logs and refusals, as an audit
	// action (`registry.official.read`); it stands where an RPC's method
	// would.
	Name string
	// Methods the route takes; any other gets 405 with Allow. Empty: any.
	Methods []string
	// Public routes need no credential (one sent is still verified).
	Public bool
	// Permission, when set, is checked on Resource(r) before the handler
	// runs. Empty: any authenticated caller, and the service behind the
	// route decides (as a filtered RPC does).
	Permission string
	// Services are the targets whose service identities may use the route
	// ("*": every target); any other service identity is refused.
	Services []string
	// Resource names what the request is about (its organization, its
	// registry); "" is the installation.
	Resource func(r *http.Request) string
	// MaxBodyBytes bounds the body; 0 means DefaultRouteBodyBytes.
	MaxBodyBytes int64
	// WriteError writes a refusal in the route's own error shape (the
	// official registry API answers {"error": ...}); nil writes the
	// Pylee error body with WriteHTTPError.
	WriteError func(w http.ResponseWriter, httpStatus int, st *status.Status)
}

type routeMetrics struct {
	duration *prometheus.HistogramVec
}

func newRouteMetrics(reg prometheus.Registerer) *routeMetrics {
	m := &routeMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pylee_http_route_duration_seconds",
		Help:    "Time to answer a plain HTTP route (official registry API, export, MCP gateway), by route and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})}
	reg.MustRegister(m.duration)
	return m
}

// HandleRoute serves h at pattern behind the route chain: the method
// check (405 with Allow), the body limit (413), authentication with the
// process's authenticators (401 with a Bearer challenge), authorization
// with its authorizer (403, or 404 for another tenant's resource), the
// refusal recorded as a gRPC call's is, and per-route metrics. The
// server's HTTP chain (recovery, request id, access log, URL check) is
// around every route already. The handler finds the caller with
// auth.FromContext and the client facts with CallMetaFrom.
func (s *Server) HandleRoute(pattern string, rule HTTPRule, h http.Handler) {
	if rule.MaxBodyBytes <= 0 {
		rule.MaxBodyBytes = DefaultRouteBodyBytes
	}
	if rule.WriteError == nil {
		rule.WriteError = WriteHTTPError
	}
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			s.routeMetrics.duration.WithLabelValues(rule.Name, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		}()
		s.serveRoute(sw, r, rule, h)
	}))
}

func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rule HTTPRule, h http.Handler) {
	if len(rule.Methods) > 0 && !slices.Contains(rule.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rule.Methods, ", "))
		rule.WriteError(w, http.StatusMethodNotAllowed, status.Newf(codes.InvalidArgument,
			"method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(rule.Methods, ", ")))
		return
	}
	if r.ContentLength > rule.MaxBodyBytes {
		rule.WriteError(w, http.StatusRequestEntityTooLarge, status.Newf(codes.ResourceExhausted,
			"the request body is larger than %d bytes", rule.MaxBodyBytes))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, rule.MaxBodyBytes)
	ctx, ci := withCallInfo(r.Context())
	ci.requestID = r.Header.Get(RequestIDHeader)
	ci.clientAddress = cutBytes(ClientAddress(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), false, s.cfg.TrustedProxies), maxClientAddress)
	ci.userAgent = cutBytes(r.UserAgent(), maxUserAgent)
	resource := ""
	if rule.Resource != nil {
		resource = rule.Resource(r)
	}
	ctx, err := s.authenticateHTTP(ctx, r, rule)
	if p, _ := auth.FromContext(ctx); err == nil && p.Kind == auth.KindService {
		if !auth.MayCall(p, rule.Services) {
			err = fmt.Errorf("%s may not use %s: %w", p.Name, rule.Name, errs.ErrPermissionDenied)
		}
	} else if err == nil && rule.Permission != "" {
		err = s.authz.Authorize(ctx, p, rule.Permission, resource)
	}
	if err != nil {
		if s.denied != nil && (errors.Is(err, errs.ErrUnauthenticated) || errors.Is(err, errs.ErrPermissionDenied)) {
			s.denied(ctx, Denied{Method: rule.Name, Permission: rule.Permission, Resource: resource, Reason: err.Error()})
		}
		st := errs.ToStatus(err, ci.requestID)
		code := HTTPStatus(st.Code())
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pylee"`)
		}
		rule.WriteError(w, code, st)
		return
	}
	h.ServeHTTP(w, r.WithContext(ctx))
}

// authenticateHTTP verifies the request's bearer credential, as the gRPC
// chain does, and returns ctx carrying the caller.
func (s *Server) authenticateHTTP(ctx context.Context, r *http.Request, rule HTTPRule) (context.Context, error) {
	header := r.Header.Values("Authorization")
	if len(header) == 0 {
		if rule.Public {
			return ctx, nil
		}
		return ctx, fmt.Errorf("missing credential: send %q: %w", "Authorization: Bearer <token>", errs.ErrUnauthenticated)
	}
	if len(header) > 1 {
		return ctx, fmt.Errorf("more than one Authorization header: %w", errs.ErrUnauthenticated)
	}
	cred, err := auth.ParseBearer(header[0])
	if err != nil {
		return ctx, err
	}
	if s.authn == nil {
		return ctx, fmt.Errorf("this process cannot verify credentials: %w", errs.ErrUnauthenticated)
	}
	p, err := s.authn.Authenticate(ctx, cred)
	if err != nil {
		if errs.Known(err) {
			return ctx, err
		}
		return ctx, fmt.Errorf("verify credential: %w", err)
	}
	callInfoFrom(ctx).principal = p.Name
	return auth.WithPrincipal(ctx, p), nil
}

// HTTPStatus is the HTTP status of a gRPC code, as grpc-gateway maps it,
// so every Pylee route answers the same error with the same status.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
