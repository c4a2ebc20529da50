package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// HTTP timeouts of the HTTP listener. ReadTimeout covers headers and body,
// so a client that trickles its body cannot hold a connection (and a
// goroutine) for longer; bodies are small JSON documents.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// httpChain wraps every route of the HTTP listener, outermost first:
// recovery, request id, access log and metrics, then the checks every
// request gets before any handler reads it (valid UTF-8 in path and query).
func (s *Server) httpChain(next http.Handler) http.Handler {
	return s.httpRecover(s.httpRequestID(s.httpLog(checkURL(next))))
}

// WriteHTTPError writes st as the JSON error body every Pylee HTTP route
// uses (grpc-gateway's shape: code, message, details).
func WriteHTTPError(w http.ResponseWriter, httpStatus int, st *status.Status) {
	buf, err := protojson.Marshal(st.Proto())
	if err != nil {
		buf = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(buf)
}

func (s *Server) httpRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				s.log.Error("panic in HTTP handler", zap.String("path", r.URL.Path),
					zap.String("request_id", r.Header.Get(RequestIDHeader)),
					zap.String("panic", fmt.Sprint(v)), zap.ByteString("stack", debug.Stack()))
				WriteHTTPError(w, http.StatusInternalServerError, status.New(codes.Internal,
					"internal error (request id "+r.Header.Get(RequestIDHeader)+")"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// httpRequestID gives every request an id (the client's when it sent a
// valid one), forwarded to the services as gRPC metadata and returned in
// the X-Request-Id response header.
func (s *Server) httpRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

type httpMetrics struct {
	requests *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pylee_http_server_requests_total",
		Help: "HTTP requests handled, by status class (2xx, 4xx, 5xx...).",
	}, []string{"class"})}
	reg.MustRegister(m.requests)
	return m
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpLog writes a line for every HTTP answer of 500 or above at error
// level (with its request id), others at debug; gRPC calls behind the REST
// facade have their own line.
func (s *Server) httpLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.httpMetrics.requests.WithLabelValues(fmt.Sprintf("%dxx", sw.status/100)).Inc()
		lvl := zapcore.DebugLevel
		if sw.status >= 500 {
			lvl = zapcore.ErrorLevel
		}
		if ce := s.log.Check(lvl, "http request"); ce != nil {
			ce.Write(zap.String("request_id", r.Header.Get(RequestIDHeader)), zap.String("method", r.Method),
				zap.String("path", r.URL.EscapedPath()), zap.Int("status", sw.status), zap.Duration("duration", time.Since(start)))
		}
	})
}

// checkURL refuses a path or query that is not valid UTF-8 (or not valid
// percent-encoding) with 400, before a handler copies it into a protobuf
// string, which must be UTF-8.
func checkURL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ValidateURL(r.URL); err != nil {
			WriteHTTPError(w, http.StatusBadRequest, status.New(codes.InvalidArgument, err.Error()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ValidateURL reports a path or query of u that is not valid UTF-8 once
// percent-decoded, naming the part.
func ValidateURL(u *url.URL) error {
	if !utf8.ValidString(u.Path) {
		return fmt.Errorf("the request path is not valid UTF-8")
	}
	if u.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("the query string is not valid percent-encoding")
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return fmt.Errorf("a query parameter name is not valid UTF-8")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return fmt.Errorf("query parameter %q is not valid UTF-8", k)
			}
		}
	}
	return nil
}
