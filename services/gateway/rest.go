package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/server"
)

// DefaultMaxBodyBytes bounds a REST request body unless configured.
const DefaultMaxBodyBytes = 1 << 20

// Backends are the gRPC connections to the services the REST facade
// fronts, by target. They are dialled by address, so the same code serves
// `pylee up` (its own loopback listener) and a split deployment. A target
// without a connection is not served.
type Backends map[string]grpc.ClientConnInterface

// restBackend is a service the REST facade fronts: its target, the gRPC
// services whose HTTP rules it serves, and their grpc-gateway handlers.
type restBackend struct {
	target   string
	services []protoreflect.FullName
	register []func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error
}

// restBackends are every service the facade can front; adding a service
// to the REST API is one line here.
var restBackends = []restBackend{
	{"orgs", []protoreflect.FullName{"pylee.orgs.v1.OrgsService", "pylee.orgs.v1.AccessService"},
		[]func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return orgsv1.RegisterOrgsServiceHandlerClient(ctx, m, orgsv1.NewOrgsServiceClient(c))
			},
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return orgsv1.RegisterAccessServiceHandlerClient(ctx, m, orgsv1.NewAccessServiceClient(c))
			}}},
	{"registry", []protoreflect.FullName{"pylee.registry.v1.RegistryService"},
		[]func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return registryv1.RegisterRegistryServiceHandlerClient(ctx, m, registryv1.NewRegistryServiceClient(c))
			}}},
	{"audit", []protoreflect.FullName{"pylee.audit.v1.AuditService"},
		[]func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return auditv1.RegisterAuditServiceHandlerClient(ctx, m, auditv1.NewAuditServiceClient(c))
			}}},
	{"secrets", []protoreflect.FullName{"pylee.secrets.v1.SecretsService"},
		[]func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return secretsv1.RegisterSecretsServiceHandlerClient(ctx, m, secretsv1.NewSecretsServiceClient(c))
			}}},
	{"deploy", []protoreflect.FullName{"pylee.deploy.v1.DeployService"},
		[]func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
			func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
				return deployv1.RegisterDeployServiceHandlerClient(ctx, m, deployv1.NewDeployServiceClient(c))
			}}},
}

// RESTConfig configures the REST facade.
type RESTConfig struct {
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
}

var jsonMarshaler = strictJSON{&runtime.JSONPb{
	MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
	// Unknown fields are an error, so a misspelt field is not silently lost.
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// restServices are the services whose HTTP rules the facade can serve.
var restServices = func() []protoreflect.FullName {
	var out []protoreflect.FullName
	for _, b := range restBackends {
		out = append(out, b.services...)
	}
	return out
}()

// NewREST returns the handler of `/v1/...`: grpc-gateway's mapping of every
// service's google.api.http rules onto its gRPC API. The Authorization and
// X-Request-Id headers travel to the services as gRPC metadata; errors come
// back as JSON `{"code", "message", "details"}` with the HTTP status of the
// gRPC code.
func NewREST(ctx context.Context, b Backends, cfg RESTConfig) (http.Handler, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	rts := routesOf(restServices...)
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonMarshaler),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(rts.routingError),
	)
	if b["orgs"] == nil {
		return nil, fmt.Errorf("rest: no connection to the orgs service")
	}
	for _, rb := range restBackends {
		conn := b[rb.target]
		if conn == nil {
			continue
		}
		for _, register := range rb.register {
			if err := register(ctx, mux, conn); err != nil {
				return nil, fmt.Errorf("rest: register %s: %w", rb.target, err)
			}
		}
	}
	return limitBody(mux, cfg.MaxBodyBytes), nil
}

func incomingHeader(key string) (string, bool) {
	if strings.EqualFold(key, server.RequestIDHeader) {
		return server.RequestIDHeader, true
	}
	if strings.EqualFold(key, "X-Forwarded-Proto") {
		// The scheme of the URLs GetConnectConfig writes.
		return "x-forwarded-proto", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func outgoingHeader(key string) (string, bool) {
	if key == server.RequestIDHeader {
		return textproto.CanonicalMIMEHeaderKey(key), true
	}
	return "", false
}

// errorHandler is grpc-gateway's JSON error answer with a standard
// WWW-Authenticate challenge on 401 (the default puts the error message
// there).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, &challengeWriter{ResponseWriter: w}, r, err)
}

type challengeWriter struct{ http.ResponseWriter }

func (c *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Bearer realm="pylee"`)
	}
	c.ResponseWriter.WriteHeader(code)
}

// routingError answers a path that no rule takes 404, and a path that
// rules take only with other methods 405 with an Allow header (grpc-gateway
// alone answers 501 Unimplemented there).
func (rs routes) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		allow := rs.allowed(r.URL.Path)
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
		}
		server.WriteHTTPError(w, http.StatusMethodNotAllowed, status.Newf(codes.InvalidArgument,
			"method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// limitBody answers 413 for a body over max bytes, before anything reads it.
// Bodies are small JSON documents, so reading one whole first costs little
// and catches chunked bodies that announce no length.
func limitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > max {
			tooLarge(w, max)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
		r.Body.Close()
		if err != nil {
			writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "could not read the request body"))
			return
		}
		if int64(len(body)) > max {
			tooLarge(w, max)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, max int64) {
	writeStatus(w, http.StatusRequestEntityTooLarge,
		status.New(codes.ResourceExhausted, fmt.Sprintf("request body exceeds the limit of %d bytes", max)))
}

// writeStatus writes st in the same JSON shape grpc-gateway uses for errors.
func writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	server.WriteHTTPError(w, httpStatus, st)
}
