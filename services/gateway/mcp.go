package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
)

// MCPPrefix is where the MCP gateway serves: /mcp/{org}/{registry}/{server}.
const MCPPrefix = "/mcp/"

// ProtectedResourcePrefix serves RFC 9728 metadata per MCP URL.
const ProtectedResourcePrefix = "/.well-known/oauth-protected-resource/mcp/"

// Protocol versions the gateway speaks to clients.
var mcpVersions = []string{"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}

// JSON-RPC error codes of gateway refusals (HTTP 200, so clients keep the
// connection).
const (
	codeForbidden   = -32003
	codeUnavailable = -32002
)

// MCPConfig configures the MCP gateway.
type MCPConfig struct {
	// SessionKey seals session ids; every replica must have the same.
	SessionKey []byte
	// Token is the gateway's service credential toward instances.
	Token config.Secret
	// AllowedOrigins are browser origins allowed besides the gateway's own
	// host.
	AllowedOrigins []string
	// MaxSessionAge bounds a session (default 24 h).
	MaxSessionAge time.Duration
	// Issuer names the authorization server in the protected-resource
	// metadata (empty: the gateway's own base URL).
	Issuer string
	// ResourceTokens verifies JWTs issued for one MCP URL (RFC 8707); nil
	// when the installation has no identity provider.
	ResourceTokens ResourceAuthenticator
	// AggregatePoll is how often an aggregated session's stream checks
	// what the caller may use, for list_changed (default 5 s).
	AggregatePoll time.Duration
	// WriteStall bounds how long a write to a client may block: a client
	// that stops reading its stream longer is cut off (0: 30 s).
	WriteStall time.Duration
	// SessionIdle is how long an unused session counts against its
	// caller's sessions_per_caller (0: 30 min; the deploy service's
	// bridges end such sessions after the same time).
	SessionIdle time.Duration
}

// ResourceAuthenticator authenticates a JWT whose audience must include
// a resource (auth.OIDC).
type ResourceAuthenticator interface {
	AuthenticateAudience(ctx context.Context, cred config.Secret, audience string) (auth.Principal, error)
}

// MCP is the MCP gateway handler.
type MCP struct {
	cfg      MCPConfig
	authn    auth.Authenticator
	authz    auth.Authorizer
	deploy   deployv1.DeployServiceClient
	registry registryv1.RegistryServiceClient
	sealer   *sealer
	client   *http.Client
	log      *zap.Logger

	upstreams        cache[upstreamKey, *deployv1.Upstream]
	versions         cache[string, *registryv1.ServerVersion]
	registrySettings cache[string, *registryv1.RegistrySettings]
	// observed remembers, briefly, versions without tools whose upstream
	// could not be listed or whose listing could not be recorded.
	observed cache[string, struct{}]
	// rates and sessions enforce the registries' McpLimits.
	rates    limiters
	sessions *sessionTable
	outcomes *outcomes
	guard    guard
	metrics  *mcpMetrics
	// onDrift is told of each newly seen drift (for the audit log).
	onDrift func(t target, version, tool, why string)
	// usage records tool calls in the audit log (nil: not recorded).
	usage *usage
	// agg is the aggregated endpoint's per-replica state.
	agg *aggregator
}

type upstreamKey struct{ name, user, version string }

// NewMCP returns the gateway over the deploy and registry services (as
// the gateway's identity).
func NewMCP(cfg MCPConfig, authn auth.Authenticator, authz auth.Authorizer, deploy deployv1.DeployServiceClient,
	registry registryv1.RegistryServiceClient, reg prometheus.Registerer, log *zap.Logger) (*MCP, error) {
	s, err := newSealer(cfg.SessionKey)
	if err != nil {
		return nil, err
	}
	if cfg.MaxSessionAge <= 0 {
		cfg.MaxSessionAge = 24 * time.Hour
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.WriteStall <= 0 {
		cfg.WriteStall = 30 * time.Second
	}
	if cfg.AggregatePoll <= 0 {
		cfg.AggregatePoll = 5 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	m := &MCP{cfg: cfg, authn: authn, authz: authz, deploy: deploy, registry: registry, sealer: s, log: log,
		client:           &http.Client{Transport: tr},
		upstreams:        newCache[upstreamKey, *deployv1.Upstream](5*time.Second, 10000),
		versions:         newCache[string, *registryv1.ServerVersion](time.Hour, 10000),
		registrySettings: newCache[string, *registryv1.RegistrySettings](2*time.Second, 10000),
		agg:              newAggregator(),
		observed:         newCache[string, struct{}](10*time.Second, 10000),
		sessions:         &sessionTable{idle: cfg.SessionIdle},
	}
	m.outcomes = newOutcomes(m)
	if m.metrics, err = newMCPMetrics(reg); err != nil {
		return nil, err
	}
	return m, nil
}

// Run reports call outcomes to the deploy service until ctx ends.
func (m *MCP) Run(ctx context.Context) { m.outcomes.run(ctx) }

// target is what an MCP URL names.
type target struct {
	org, registry, server string
}

func (t target) registryName() string {
	return names.Registry{Org: t.org, Registry: t.registry}.String()
}
func (t target) deployment() string { return t.registryName() + "/deployments/" + t.server }
func (t target) serverName() string { return "orgs/" + t.org + "/servers/" + t.server }
func (t target) toolResource(tool string) string {
	return t.registryName() + "/servers/" + t.server + "/tools/" + tool
}

// path is {org}/{registry}[/{server}]: the MCP URL's, and its
// protected-resource metadata's, after their prefixes.
func (t target) path() string {
	if t.server == "" {
		return t.org + "/" + t.registry
	}
	return t.org + "/" + t.registry + "/" + t.server
}

func parseTarget(path, prefix string) (target, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return target{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return target{}, false
	}
	t := target{org: parts[0], registry: parts[1], server: parts[2]}
	for _, id := range parts {
		if err := aip.ValidateSegmentID(id); err != nil {
			return target{}, false
		}
	}
	return t, true
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ServeMetadata serves the RFC 9728 protected-resource metadata of an MCP
// URL.
func (m *MCP) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTarget(r.URL.Path, ProtectedResourcePrefix)
	if !ok {
		if t, ok = parseRegistryTarget(r.URL.Path, ProtectedResourcePrefix); !ok {
			http.NotFound(w, r)
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	issuer := m.cfg.Issuer
	if issuer == "" {
		issuer = baseURL(r)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	resource, name := baseURL(r)+MCPPrefix+t.path(), t.server+" in "+t.registry
	if t.server == "" {
		name = "every server of " + t.registry
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resource":                 resource,
		"authorization_servers":    []string{issuer},
		"bearer_methods_supported": []string{"header"},
		"scopes_supported":         []string{"mcp"},
		"resource_name":            "Pylee MCP gateway: " + name,
	})
}

// ServeHTTP serves /mcp/{org}/{registry}/{server}.
func (m *MCP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTarget(r.URL.Path, MCPPrefix)
	aggregate := false
	if !ok {
		if t, ok = parseRegistryTarget(r.URL.Path, MCPPrefix); !ok {
			http.Error(w, "not an MCP URL: /mcp/{org}/{registry} or /mcp/{org}/{registry}/{server}", http.StatusNotFound)
			return
		}
		aggregate = true
	}
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "POST, GET, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !m.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if v := r.Header.Get("MCP-Protocol-Version"); v != "" && !slices.Contains(mcpVersions, v) {
		http.Error(w, fmt.Sprintf("unsupported MCP-Protocol-Version %q; supported: %s", v, strings.Join(mcpVersions, ", ")), http.StatusBadRequest)
		return
	}
	p, err := m.authenticate(r, baseURL(r)+MCPPrefix+t.path())
	if err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata="%s%s%s"`, baseURL(r), ProtectedResourcePrefix, t.path()))
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ctx := auth.WithPrincipal(r.Context(), p)
	// Another tenant's server does not even exist for the caller.
	if p.OutsideOrg("orgs/" + t.org) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if aggregate {
		m.serveAggregate(ctx, w, r, t, p)
		return
	}
	var sess *session
	if id := r.Header.Get("Mcp-Session-Id"); id != "" {
		s, err := m.sealer.open(id, m.cfg.MaxSessionAge)
		if err != nil || s.Deployment != t.deployment() {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		if s.Principal != p.Name {
			http.Error(w, "the session belongs to another caller", http.StatusForbidden)
			return
		}
		sess = &s
	}
	switch r.Method {
	case http.MethodGet:
		m.forwardStream(ctx, w, r, t, p, sess)
	case http.MethodDelete:
		if sess == nil {
			http.Error(w, "Mcp-Session-Id is required", http.StatusBadRequest)
			return
		}
		m.forwardStream(ctx, w, r, t, p, sess)
	default:
		m.post(ctx, w, r, t, p, sess)
	}
}

func (m *MCP) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return u.Host == r.Host || slices.Contains(m.cfg.AllowedOrigins, o)
}

// authenticate verifies the bearer: a Pylee API token, or a JWT whose
// audience is this MCP URL (a token for another resource, the REST API's
// included, is refused).
func (m *MCP) authenticate(r *http.Request, resource string) (auth.Principal, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return auth.Principal{}, errors.New("a bearer token is required")
	}
	cred, err := auth.ParseBearer(h[0])
	if err != nil {
		return auth.Principal{}, err
	}
	var p auth.Principal
	if m.cfg.ResourceTokens != nil && auth.LooksLikeJWT(cred.Reveal()) {
		p, err = m.cfg.ResourceTokens.AuthenticateAudience(r.Context(), cred, resource)
	} else {
		p, err = m.authn.Authenticate(r.Context(), cred)
	}
	if err != nil {
		return auth.Principal{}, errors.New("the token is not valid")
	}
	if p.Kind == auth.KindService {
		return auth.Principal{}, errors.New("service identities do not call MCP servers")
	}
	return p, nil
}

// rpcError writes a JSON-RPC error answer with HTTP 200.
func rpcError(w http.ResponseWriter, id jsonrpc.ID, code int64, msg string) {
	writeRPCError(w, http.StatusOK, id, code, msg)
}

// writeRPCError writes a JSON-RPC error answer with an HTTP status.
func writeRPCError(w http.ResponseWriter, status int, id jsonrpc.ID, code int64, msg string) {
	resp := &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}}
	b, err := jsonrpc.EncodeMessage(resp)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// maxMessageBytes bounds a client's message.
const maxMessageBytes = 4 << 20

// post handles one client message.
func (m *MCP) post(ctx context.Context, w http.ResponseWriter, r *http.Request, t target, p auth.Principal, sess *session) {
	lim := m.limits(ctx, t)
	maxBytes := min(int64(lim.GetMaxRequestBytes()), maxMessageBytes)
	if maxBytes <= 0 {
		maxBytes = maxMessageBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("the message is larger than the registry's max_request_bytes (%d)", maxBytes), http.StatusRequestEntityTooLarge)
		return
	}
	if !utf8.Valid(body) {
		rpcError(w, jsonrpc.ID{}, jsonrpc.CodeParseError, "the message is not valid UTF-8")
		return
	}
	msg, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		rpcError(w, jsonrpc.ID{}, jsonrpc.CodeParseError, "not a JSON-RPC message: "+err.Error())
		return
	}
	req, isReq := msg.(*jsonrpc.Request)
	if isReq {
		if err := checkHeaders(r, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	stateless := r.Header.Get("MCP-Protocol-Version") >= "2026-07-28"
	if sess == nil {
		if isReq && req.Method != "initialize" && !stateless && req.IsCall() {
			http.Error(w, "Mcp-Session-Id is required after initialize", http.StatusBadRequest)
			return
		}
		if !isReq || !req.IsCall() {
			http.Error(w, "Mcp-Session-Id is required", http.StatusBadRequest)
			return
		}
	}
	var call *callInfo
	if isReq && req.IsCall() {
		call = &callInfo{id: req.ID, method: req.Method, start: time.Now(), reqBytes: len(body)}
		if refusal := m.authorizeCall(ctx, t, p, req, call); refusal != "" {
			rpcError(w, req.ID, codeForbidden, refusal)
			m.outcomes.refused()
			m.recordCall(ctx, t, p, call, outcomeRefused, 0, refusal)
			return
		}
		if m.overRate(ctx, w, t, p, lim, req.ID, call) {
			return
		}
		if req.Method == "initialize" && m.tooManySessions(w, t, p, lim, req.ID) {
			return
		}
	}
	if sess != nil {
		m.sessions.touch(t.deployment()+"\x00"+p.Name, r.Header.Get("Mcp-Session-Id"), time.Now())
	}
	version := ""
	if sess != nil {
		version = sess.Version
	}
	up, err := m.upstream(ctx, t, p, version)
	if err != nil {
		m.upstreamError(w, req, err)
		return
	}
	if sess != nil && !up.GetServing() {
		// The session's version was rolled back: the client starts anew
		// on the version that serves.
		http.Error(w, "session ended: its version no longer serves", http.StatusNotFound)
		return
	}
	if sess == nil {
		if err := m.mayConnect(ctx, t, p, up.GetVersion()); err != nil {
			if errors.Is(err, errs.ErrNotFound) {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="mcp"`)
			http.Error(w, "you may not use this server (tools.list on it, or tools.invoke on one of its tools)", http.StatusForbidden)
			return
		}
	}
	if call != nil {
		call.version = up.GetVersion()
		if call.tool != "" {
			if refusal := m.checkTool(ctx, t, call.version, call.tool); refusal != "" {
				rpcError(w, req.ID, codeForbidden, refusal)
				m.outcomes.refused()
				m.recordCall(ctx, t, p, call, outcomeRefused, 0, refusal)
				return
			}
		}
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, up.GetUrl(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "bad upstream", http.StatusBadGateway)
		return
	}
	m.upstreamHeaders(out, r, up, sess)
	if call != nil {
		call.abandon = func() { m.cancelUpstream(out, call.id) }
	}
	resp, err := m.client.Do(out)
	if err != nil {
		m.upstreams.drop(upstreamKey{t.deployment(), userOf(p), version})
		if call != nil {
			m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
			m.recordCall(ctx, t, p, call, outcomeTransport, 0, err.Error())
			rpcError(w, req.ID, codeUnavailable, "the server could not be reached; retry")
			return
		}
		http.Error(w, "the server could not be reached", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if req != nil && req.Method == "initialize" && resp.StatusCode == http.StatusOK {
		s := session{Principal: p.Name, Deployment: t.deployment(), Version: up.GetVersion(),
			Upstream: resp.Header.Get("Mcp-Session-Id"), Issued: time.Now().Unix()}
		id, err := m.sealer.seal(s)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Mcp-Session-Id", id)
		m.sessions.touch(t.deployment()+"\x00"+p.Name, id, time.Now())
	}
	m.relay(ctx, w, resp, t, p, call)
}

// cancelUpstream sends the upstream notifications/cancelled for request
// id, which went out as sent: the gateway cut its client off (it stopped
// reading), so nobody will take the answer, and a disconnection alone is
// not a cancellation to an MCP server.
func (m *MCP) cancelUpstream(sent *http.Request, id jsonrpc.ID) {
	if !id.IsValid() {
		return
	}
	params, err := json.Marshal(map[string]any{"requestId": id.Raw(), "reason": "the client stopped reading its stream"})
	if err != nil {
		return
	}
	b, err := jsonrpc.EncodeMessage(&jsonrpc.Request{Method: "notifications/cancelled", Params: params})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, sent.URL.String(), bytes.NewReader(b))
	if err != nil {
		return
	}
	out.Header = sent.Header.Clone()
	out.Header.Del("Last-Event-ID")
	out.Header.Del("Mcp-Name")
	if out.Header.Get("Mcp-Method") != "" {
		out.Header.Set("Mcp-Method", "notifications/cancelled")
	}
	resp, err := m.client.Do(out)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
}

// checkHeaders checks the 2026-07-28 headers against the body.
func checkHeaders(r *http.Request, req *jsonrpc.Request) error {
	if h := r.Header.Get("Mcp-Method"); h != "" && h != req.Method {
		return fmt.Errorf("Mcp-Method %q does not match the body's method %q", h, req.Method)
	}
	if h := r.Header.Get("Mcp-Name"); h != "" {
		var p struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		}
		_ = json.Unmarshal(req.Params, &p)
		if h != p.Name && h != p.URI {
			return fmt.Errorf("Mcp-Name %q does not match the body's name", h)
		}
	}
	return nil
}

func userOf(p auth.Principal) string {
	if p.Kind == auth.KindUser {
		return p.Name
	}
	return ""
}

func (m *MCP) upstreamError(w http.ResponseWriter, req *jsonrpc.Request, err error) {
	code := status.Code(err)
	msg := status.Convert(err).Message()
	switch code {
	case codes.NotFound:
		http.Error(w, "not found", http.StatusNotFound)
		return
	case codes.FailedPrecondition:
		if req != nil && req.IsCall() {
			rpcError(w, req.ID, codeUnavailable, msg)
			return
		}
	}
	if req != nil && req.IsCall() {
		rpcError(w, req.ID, codeUnavailable, "the server is not available: "+msg)
		return
	}
	http.Error(w, "the server is not available", http.StatusServiceUnavailable)
}

// upstream is where the caller's session goes (cached briefly).
func (m *MCP) upstream(ctx context.Context, t target, p auth.Principal, version string) (*deployv1.Upstream, error) {
	k := upstreamKey{t.deployment(), userOf(p), version}
	if version != "" {
		if up, ok := m.upstreams.get(k); ok {
			return up, nil
		}
	}
	up, err := m.deploy.ResolveUpstream(auth.Outgoing(ctx, m.cfg.Token), &deployv1.ResolveUpstreamRequest{Name: t.deployment(), User: userOf(p), Version: version})
	if err != nil {
		return nil, err
	}
	// A new session's version is drawn by the rollout's weights each time;
	// a session's own version is kept, so its answer can be cached.
	if version != "" {
		m.upstreams.put(k, up)
	} else {
		m.upstreams.put(upstreamKey{t.deployment(), userOf(p), up.GetVersion()}, up)
	}
	return up, nil
}

// upstreamHeaders sets what the upstream gets: never the client's token.
func (m *MCP) upstreamHeaders(out, in *http.Request, up *deployv1.Upstream, sess *session) {
	for _, h := range []string{"Content-Type", "Accept", "MCP-Protocol-Version", "Last-Event-ID", "Mcp-Method", "Mcp-Name"} {
		if v := in.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if out.Header.Get("Accept") == "" {
		out.Header.Set("Accept", "application/json, text/event-stream")
	}
	if sess != nil && sess.Upstream != "" {
		out.Header.Set("Mcp-Session-Id", sess.Upstream)
	}
	if up.GetInstance() != "" {
		out.Header.Set("Authorization", "Bearer "+m.cfg.Token.Reveal())
	}
	for k, v := range up.GetHeaders() {
		out.Header.Set(k, v)
	}
}

// forwardStream forwards a GET (the server's stream) or DELETE.
func (m *MCP) forwardStream(ctx context.Context, w http.ResponseWriter, r *http.Request, t target, p auth.Principal, sess *session) {
	if sess == nil {
		http.Error(w, "Mcp-Session-Id is required", http.StatusBadRequest)
		return
	}
	up, err := m.upstream(ctx, t, p, sess.Version)
	if err != nil {
		m.upstreamError(w, nil, err)
		return
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, up.GetUrl(), nil)
	if err != nil {
		http.Error(w, "bad upstream", http.StatusBadGateway)
		return
	}
	m.upstreamHeaders(out, r, up, sess)
	owner := t.deployment() + "\x00" + p.Name
	if r.Method == http.MethodDelete {
		m.sessions.end(owner, r.Header.Get("Mcp-Session-Id"))
	} else {
		m.sessions.touch(owner, r.Header.Get("Mcp-Session-Id"), time.Now())
	}
	resp, err := m.client.Do(out)
	if err != nil {
		http.Error(w, "the server could not be reached", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	m.relay(ctx, w, resp, t, p, nil)
}

// cache is a small TTL cache.
type cache[K comparable, V any] struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[K]cached[V]
}

type cached[V any] struct {
	v   V
	exp time.Time
}

func newCache[K comparable, V any](ttl time.Duration, max int) cache[K, V] {
	return cache[K, V]{ttl: ttl, max: max, m: map[K]cached[V]{}}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || time.Now().After(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		now := time.Now()
		for key, e := range c.m {
			if now.After(e.exp) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[k] = cached[V]{v: v, exp: time.Now().Add(c.ttl)}
}

// each calls fn on every live entry (under the lock: fn must be quick).
func (c *cache[K, V]) each(fn func(K, V)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for k, e := range c.m {
		if now.Before(e.exp) {
			fn(k, e.v)
		}
	}
}

func (c *cache[K, V]) drop(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// recordCall records a tools/call in the audit log: who, which tool of
// which version, the outcome, latency, bytes and estimated tokens.
func (m *MCP) recordCall(ctx context.Context, t target, p auth.Principal, call *callInfo, outcome, respBytes int, detail string) {
	if m.usage == nil || call == nil || call.method != "tools/call" {
		return
	}
	ev := outbox.NewEvent(ctx, t.org, "tools.call", t.toolResource(call.tool))
	ev.Outcome = auditlog.OutcomeOK
	switch outcome {
	case outcomeRefused:
		ev.Outcome = auditlog.OutcomeDenied
	case outcomeRPC, outcomeTransport, outcomeTimeout:
		ev.Outcome = auditlog.OutcomeError
	}
	ev.Metadata = map[string]string{
		"registry": t.registryName(), "server": t.serverName(), "version": call.version, "tool": call.tool,
		"result": outcomeNames[outcome], "latency_ms": strconv.FormatFloat(float64(time.Since(call.start).Microseconds())/1000, 'f', 3, 64),
		"request_bytes": strconv.Itoa(call.reqBytes), "response_bytes": strconv.Itoa(respBytes),
		"estimated_tokens": strconv.Itoa((call.reqBytes + respBytes + 3) / 4),
	}
	if len(p.Groups) > 0 {
		ev.Metadata["teams"] = strings.Join(p.Groups, ",")
	}
	if detail != "" {
		ev.Metadata["detail"] = outbox.CutText(detail, 500)
	}
	m.usage.record(ev)
}
