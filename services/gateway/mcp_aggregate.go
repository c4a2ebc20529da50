package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/outbox"
)

// The aggregated endpoint /mcp/{org}/{registry} is one MCP server that
// offers what the caller may use across every server of the registry.
// The gateway answers initialize itself; each request is routed to the
// server that offers the tool, prompt or resource, through the same
// authorization, drift guard, routing, audit and metrics as the
// single-server path. Exposed tool and prompt names are {server}_{name}
// with characters outside [A-Za-z0-9_.-] replaced by "_"; the mapping is
// a table filled from listings, never parsed back from a name. Two
// originals with one exposed name (or a name over 128 characters) are
// refused: hidden, not callable, reported in the log and the audit log.

// maxExposedName is the longest tool name the spec allows.
const maxExposedName = 128

// maxAggregateServers bounds the servers one aggregated session spans.
const maxAggregateServers = 200

// aggSession is the sealed state of an aggregated session: the caller,
// the protocol and, per server, the version drawn when it started.
type aggSession struct {
	session
	// Versions is the version of each server, drawn at initialize.
	Versions map[string]string `json:"vs,omitempty"`
}

// upstreamSession is a replica's session with an upstream on behalf of
// an aggregated session.
type upstreamSession struct {
	id, protocol string
	up           *deployv1.Upstream
}

// ref is what an exposed name stands for.
type ref struct {
	server, name string
	// collision is why the name is refused ("" when it is not).
	collision string
}

// aggregator holds the per-replica state of aggregated sessions: the
// name tables and the upstream sessions (any replica makes its own).
type aggregator struct {
	// names: registry \x00 kind \x00 exposed -> ref (bounded, expiring).
	names cache[string, ref]
	// misses: names looked up and not found (briefly: a random name does
	// not make every request list every server).
	misses cache[string, bool]
	// reported remembers collisions already reported.
	reported cache[string, bool]
	// upstream sessions: session key \x00 server \x00 version -> this
	// replica's session with the upstream.
	sessions cache[string, upstreamSession]
	// entries are the registry's entries (brief cache).
	entries cache[string, []*registryv1.Entry]
	// inflight maps session key \x00 request id to the server answering
	// it (for cancellation).
	inflight sync.Map
	next     atomic.Int64

	// streams counts each caller's open GET streams (each polls every
	// server): at most maxStreamsPerCaller at once on a replica.
	streamsMu sync.Mutex
	streams   map[string]int
}

// maxStreamsPerCaller bounds a caller's open aggregated streams on one
// replica.
const maxStreamsPerCaller = 8

func (a *aggregator) openStream(principal string) bool {
	a.streamsMu.Lock()
	defer a.streamsMu.Unlock()
	if a.streams[principal] >= maxStreamsPerCaller {
		return false
	}
	a.streams[principal]++
	return true
}

func (a *aggregator) closeStream(principal string) {
	a.streamsMu.Lock()
	defer a.streamsMu.Unlock()
	if a.streams[principal]--; a.streams[principal] <= 0 {
		delete(a.streams, principal)
	}
}

func newAggregator() *aggregator {
	return &aggregator{streams: map[string]int{}, sessions: newCache[string, upstreamSession](time.Hour, 100000),
		names:    newCache[string, ref](10*time.Minute, 200000),
		misses:   newCache[string, bool](5*time.Second, 100000),
		reported: newCache[string, bool](time.Hour, 100000),
		entries:  newCache[string, []*registryv1.Entry](2*time.Second, 10000)}
}

func exposedName(server, name string) string {
	var b strings.Builder
	b.Grow(len(server) + 1 + len(name))
	b.WriteString(server)
	b.WriteByte('_')
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func parseRegistryTarget(path, prefix string) (target, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return target{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 2 {
		return target{}, false
	}
	t, ok := parseTarget(prefix+rest+"/x", prefix)
	if !ok {
		return target{}, false
	}
	t.server = ""
	return t, true
}

// serveAggregate serves /mcp/{org}/{registry} to p, whom ServeHTTP
// authenticated (method, origin and protocol version checked).
func (m *MCP) serveAggregate(ctx context.Context, w http.ResponseWriter, r *http.Request, reg target, p auth.Principal) {
	var sess *aggSession
	if id := r.Header.Get("Mcp-Session-Id"); id != "" {
		s, err := m.sealer.openAggregate(id, m.cfg.MaxSessionAge)
		if err != nil || s.Deployment != reg.registryName() {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		if s.Principal != p.Name {
			http.Error(w, "the session belongs to another caller", http.StatusForbidden)
			return
		}
		sess = &s
	}
	key := ""
	if sess != nil {
		sum := sha256.Sum256([]byte(r.Header.Get("Mcp-Session-Id")))
		key = hex.EncodeToString(sum[:12])
	}
	switch r.Method {
	case http.MethodGet:
		if sess == nil {
			http.Error(w, "Mcp-Session-Id is required", http.StatusBadRequest)
			return
		}
		if !m.agg.openStream(p.Name) {
			w.Header().Set("Retry-After", "5")
			http.Error(w, fmt.Sprintf("too many open streams: at most %d per caller", maxStreamsPerCaller), http.StatusTooManyRequests)
			return
		}
		defer m.agg.closeStream(p.Name)
		m.aggregateStream(ctx, w, reg, p, sess, key)
	case http.MethodDelete:
		if sess == nil {
			http.Error(w, "Mcp-Session-Id is required", http.StatusBadRequest)
			return
		}
		// The upstream sessions this replica opened for it end too.
		var ended []upstreamSession
		var keys []string
		m.agg.sessions.each(func(k string, v upstreamSession) {
			if strings.HasPrefix(k, key+"\x00") {
				keys, ended = append(keys, k), append(ended, v)
			}
		})
		for i, k := range keys {
			m.agg.sessions.drop(k)
			m.endUpstreamSession(ctx, ended[i].up, ended[i].id)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		m.aggregatePost(ctx, w, r, reg, p, sess, key)
	}
}

func (m *MCP) aggregatePost(ctx context.Context, w http.ResponseWriter, r *http.Request, reg target, p auth.Principal, sess *aggSession, key string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessageBytes))
	if err != nil {
		http.Error(w, "the message is larger than 4 MiB", http.StatusRequestEntityTooLarge)
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
	protocol := r.Header.Get("MCP-Protocol-Version")
	if sess == nil {
		switch {
		case isReq && req.Method == "initialize":
			m.aggregateInitialize(ctx, w, reg, p, req)
			return
		case isReq && req.IsCall() && protocol >= "2026-07-28":
			// Stateless: upstream sessions are kept per caller.
			sum := sha256.Sum256([]byte("stateless\x00" + p.Name + "\x00" + reg.registryName()))
			key = hex.EncodeToString(sum[:12])
			sess = &aggSession{session: session{Principal: p.Name, Deployment: reg.registryName(), Protocol: protocol}}
		default:
			http.Error(w, "Mcp-Session-Id is required after initialize", http.StatusBadRequest)
			return
		}
	}
	if !isReq || !req.IsCall() {
		if isReq && req.Method == "notifications/cancelled" {
			m.aggregateCancel(ctx, reg, p, sess, key, req)
		}
		// Notifications and answers to server requests end here.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	switch req.Method {
	case "ping", "logging/setLevel":
		m.writeResult(w, req.ID, map[string]any{})
	case "tools/list":
		m.aggregateList(ctx, w, reg, p, sess, key, req, "tools")
	case "prompts/list":
		m.aggregateList(ctx, w, reg, p, sess, key, req, "prompts")
	case "resources/list":
		m.aggregateList(ctx, w, reg, p, sess, key, req, "resources")
	case "resources/templates/list":
		m.aggregateList(ctx, w, reg, p, sess, key, req, "resourceTemplates")
	case "tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe":
		m.aggregateRoute(ctx, w, r, reg, p, sess, key, req)
	case "initialize":
		rpcError(w, req.ID, jsonrpc.CodeInvalidRequest, "the session is already initialized")
	default:
		rpcError(w, req.ID, jsonrpc.CodeMethodNotFound, fmt.Sprintf("%s is not offered by the aggregated endpoint", req.Method))
	}
}

func (m *MCP) writeResult(w http.ResponseWriter, id jsonrpc.ID, result any) {
	raw, err := json.Marshal(result)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	b, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Result: raw})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	sw := m.streamTo(w) // a union of listings may be large
	_, _ = sw.Write(b)
	sw.done()
}

// aggregateInitialize answers initialize: the gateway is the server; the
// version of each server the caller may use is drawn now and sealed.
func (m *MCP) aggregateInitialize(ctx context.Context, w http.ResponseWriter, reg target, p auth.Principal, req *jsonrpc.Request) {
	var params struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(req.Params, &params)
	protocol := params.ProtocolVersion
	if !slices.Contains(mcpVersions, protocol) {
		protocol = mcpVersions[len(mcpVersions)-1]
		if protocol > "2025-11-25" {
			protocol = "2025-11-25"
		}
	}
	servers, err := m.aggregateServers(ctx, reg, p, nil)
	if err != nil {
		m.upstreamError(w, req, err)
		return
	}
	s := aggSession{session: session{Principal: p.Name, Deployment: reg.registryName(), Protocol: protocol, Issued: time.Now().Unix()},
		Versions: map[string]string{}}
	for _, sv := range servers {
		s.Versions[sv.t.server] = sv.version
	}
	id, err := m.sealer.sealAggregate(s)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Mcp-Session-Id", id)
	m.writeResult(w, req.ID, map[string]any{
		"protocolVersion": protocol,
		"capabilities": map[string]any{
			"tools": map[string]any{"listChanged": true}, "prompts": map[string]any{"listChanged": true},
			"resources": map[string]any{"listChanged": true, "subscribe": true}, "logging": map[string]any{},
		},
		"serverInfo":   map[string]any{"name": "pylee/" + reg.org + "/" + reg.registry, "version": "1"},
		"instructions": "Pylee: the tools of every server of registry " + reg.registry + " you may use, named {server}_{tool}.",
	})
}

// aggServer is one server of the registry the caller may use.
type aggServer struct {
	t       target
	version string
	up      *deployv1.Upstream
}

// aggregateServers lists the registry's servers the caller may use, with
// the version sealed in sess (or drawn now); servers that do not serve are
// left out.
func (m *MCP) aggregateServers(ctx context.Context, reg target, p auth.Principal, sess *aggSession) ([]aggServer, error) {
	entries, ok := m.agg.entries.get(reg.registryName())
	if !ok {
		var all []*registryv1.Entry
		token := ""
		for range 50 {
			resp, err := m.registry.ListEntries(auth.Outgoing(ctx, m.cfg.Token), &registryv1.ListEntriesRequest{Parent: reg.registryName(), PageSize: 100, PageToken: token})
			if err != nil {
				return nil, err
			}
			all = append(all, resp.GetEntries()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		entries = all
		m.agg.entries.put(reg.registryName(), entries)
	}
	if len(entries) > maxAggregateServers {
		entries = entries[:maxAggregateServers]
	}
	var mu sync.Mutex
	var out []aggServer
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, e := range entries {
		id := e.GetServer()[strings.LastIndex(e.GetServer(), "/")+1:]
		if id == "" {
			continue
		}
		t := target{org: reg.org, registry: reg.registry, server: id}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Whether the caller may use the server is decided before
			// anything is resolved for them (a per-user instance starts
			// on resolution), on the entry's pinned version.
			if m.mayConnect(ctx, t, p, e.GetVersion()) != nil {
				return
			}
			version := ""
			if sess != nil {
				version = sess.Versions[id]
			}
			up, err := m.upstream(ctx, t, p, version)
			if err != nil && version != "" {
				// The sealed version no longer serves: the server's current one.
				up, err = m.upstream(ctx, t, p, "")
			}
			if err != nil || !up.GetServing() {
				return
			}
			mu.Lock()
			out = append(out, aggServer{t: t, version: up.GetVersion(), up: up})
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].t.server < out[j].t.server })
	return out, nil
}

// listKinds: the list method of each kind, and whether its items are
// renamed (tools, prompts) or kept (resources, templates: by URI).
var listMethods = map[string]string{"tools": "tools/list", "prompts": "prompts/list", "resources": "resources/list", "resourceTemplates": "resources/templates/list"}

// aggregateList answers a list method with the union over servers.
func (m *MCP) aggregateList(ctx context.Context, w http.ResponseWriter, reg target, p auth.Principal, sess *aggSession, key string, req *jsonrpc.Request, kind string) {
	start := time.Now()
	items, err := m.aggregateItems(ctx, reg, p, sess, key, kind)
	m.metrics.latency.WithLabelValues(req.Method).Observe(time.Since(start).Seconds())
	if err != nil {
		m.log.Sugar().Warnw("aggregated endpoint: a list could not be made", "registry", reg.registryName(), "error", err)
		rpcError(w, req.ID, codeUnavailable, "the list could not be made; retry")
		return
	}
	m.writeResult(w, req.ID, map[string]any{kind: items})
}

// aggregateItems lists kind across the caller's servers, renamed, with
// collisions left out.
func (m *MCP) aggregateItems(ctx context.Context, reg target, p auth.Principal, sess *aggSession, key, kind string) ([]json.RawMessage, error) {
	servers, err := m.aggregateServers(ctx, reg, p, sess)
	if err != nil {
		return nil, err
	}
	type listed struct {
		srv   aggServer
		items []json.RawMessage
	}
	results := make([]listed, len(servers))
	var wg sync.WaitGroup
	for i, sv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items, err := m.serverItems(ctx, sv, p, sess, key, kind)
			if err != nil {
				m.log.Sugar().Warnw("a server of the aggregated endpoint did not list", "deployment", sv.t.deployment(), "kind", kind, "error", err)
				return
			}
			results[i] = listed{srv: sv, items: items}
		}()
	}
	wg.Wait()
	// Name each item, and find collisions over all of them.
	type named struct {
		exposed string
		ref     ref
		item    map[string]json.RawMessage
	}
	var all []named
	count := map[string]int{}
	field := "name"
	if kind == "resources" {
		field = "uri"
	} else if kind == "resourceTemplates" {
		field = "uriTemplate"
	}
	for _, l := range results {
		for _, raw := range l.items {
			var item map[string]json.RawMessage
			if json.Unmarshal(raw, &item) != nil {
				continue
			}
			var orig string
			if json.Unmarshal(item[field], &orig) != nil || orig == "" {
				continue
			}
			exposed := orig
			if kind == "tools" || kind == "prompts" {
				exposed = exposedName(l.srv.t.server, orig)
			}
			all = append(all, named{exposed: exposed, ref: ref{server: l.srv.t.server, name: orig}, item: item})
			count[exposed]++
		}
	}
	out := make([]json.RawMessage, 0, len(all))
	for _, n := range all {
		tkey := reg.registryName() + "\x00" + kind + "\x00" + n.exposed
		why := ""
		switch {
		case count[n.exposed] > 1:
			why = fmt.Sprintf("%d originals share the name", count[n.exposed])
		case (kind == "tools" || kind == "prompts") && len(n.exposed) > maxExposedName:
			why = fmt.Sprintf("longer than %d characters", maxExposedName)
		}
		if prev, ok := m.agg.names.get(tkey); why == "" && ok && (prev.collision != "" || prev.server != n.ref.server || prev.name != n.ref.name) {
			// Another listing (another caller's) mapped the name elsewhere:
			// a collision stays one, whoever lists next.
			why = "offered by more than one server"
			if prev.collision != "" {
				why = prev.collision
			}
		}
		if why != "" {
			m.agg.names.put(tkey, ref{collision: why})
			m.reportCollision(reg, kind, n.exposed, n.ref, why)
			continue
		}
		m.agg.names.put(tkey, n.ref)
		if kind == "tools" || kind == "prompts" {
			n.item["name"], _ = json.Marshal(n.exposed)
			if kind == "tools" {
				title := n.ref.name
				if t, ok := n.item["title"]; ok {
					_ = json.Unmarshal(t, &title)
				}
				n.item["title"], _ = json.Marshal(title + " (" + n.ref.server + ")")
			}
		}
		b, err := json.Marshal(n.item)
		if err == nil {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *MCP) reportCollision(reg target, kind, exposed string, r ref, why string) {
	rkey := reg.registryName() + "\x00" + kind + "\x00" + exposed + "\x00" + r.server + "\x00" + r.name
	if _, seen := m.agg.reported.get(rkey); seen {
		return
	}
	m.agg.reported.put(rkey, true)
	m.log.Sugar().Warnw("aggregated endpoint: a name is refused", "registry", reg.registryName(), "kind", kind, "name", exposed,
		"server", r.server, "original", r.name, "why", why)
	if m.usage != nil {
		t := target{org: reg.org, registry: reg.registry, server: r.server}
		ev := outbox.NewEvent(auth.WithPrincipal(context.Background(), auth.ServiceIdentity(Target)), reg.org, "tools.collision", t.toolResource(outbox.CutText(r.name, 200)))
		ev.Metadata = map[string]string{"registry": reg.registryName(), "server": t.serverName(), "kind": kind,
			"exposed": outbox.CutText(exposed, 300), "why": why}
		m.usage.record(ev)
	}
}

// serverItems lists kind on one server (every page), as the caller may
// see it: tools through the policy, drift and per-tool filter.
func (m *MCP) serverItems(ctx context.Context, sv aggServer, p auth.Principal, sess *aggSession, key, kind string) ([]json.RawMessage, error) {
	if kind != "tools" {
		if err := m.authz.Authorize(ctx, p, "tools.invoke", sv.t.registryName()+"/servers/"+sv.t.server); err != nil {
			return nil, nil
		}
	}
	var items []json.RawMessage
	cursor := ""
	for range 20 {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		result, err := m.upstreamCall(ctx, sv, sess, key, listMethods[kind], params)
		if err != nil {
			return nil, err
		}
		if kind == "tools" {
			if result, err = m.filterTools(ctx, sv.t, p, sv.version, result); err != nil {
				return nil, err
			}
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(result, &page); err != nil {
			return nil, err
		}
		var got []json.RawMessage
		_ = json.Unmarshal(page[kind], &got)
		items = append(items, got...)
		cursor = ""
		_ = json.Unmarshal(page["nextCursor"], &cursor)
		if cursor == "" {
			break
		}
	}
	return items, nil
}

// errUpstreamSession: the upstream no longer knows the session.
var errUpstreamSession = errors.New("the upstream session ended")

// upstreamCall sends one request to sv in the aggregated session's
// upstream session (made on first use), retrying once with a new one
// when the upstream forgot it.
func (m *MCP) upstreamCall(ctx context.Context, sv aggServer, sess *aggSession, key, method string, params any) (json.RawMessage, error) {
	for attempt := 0; ; attempt++ {
		id, protocol, err := m.upstreamSession(ctx, sv, sess, key)
		if err != nil {
			return nil, err
		}
		res, _, err := m.rawCall(ctx, sv.up, id, protocol, method, params)
		if errors.Is(err, errUpstreamSession) && attempt == 0 {
			m.agg.sessions.drop(key + "\x00" + sv.t.server + "\x00" + sv.version)
			continue
		}
		return res, err
	}
}

// upstreamSession returns this replica's upstream session of sv for the
// aggregated session key, and the protocol version the upstream
// negotiated, initializing one when there is none.
func (m *MCP) upstreamSession(ctx context.Context, sv aggServer, sess *aggSession, key string) (id, protocol string, err error) {
	k := key + "\x00" + sv.t.server + "\x00" + sv.version
	if v, ok := m.agg.sessions.get(k); ok {
		return v.id, v.protocol, nil
	}
	res, id, err := m.rawCall(ctx, sv.up, "", sess.Protocol, "initialize", map[string]any{
		"protocolVersion": sess.Protocol, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "pylee-gateway", "version": "1"},
	})
	if err != nil {
		return "", "", fmt.Errorf("initialize: %w", err)
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(res, &init)
	protocol = init.ProtocolVersion
	if !slices.Contains(mcpVersions, protocol) {
		protocol = sess.Protocol
	}
	if _, _, err := m.rawCall(ctx, sv.up, id, protocol, "notifications/initialized", nil); err != nil {
		return "", "", fmt.Errorf("initialized: %w", err)
	}
	m.agg.sessions.put(k, upstreamSession{id: id, protocol: protocol, up: sv.up})
	return id, protocol, nil
}

// rawCall sends one JSON-RPC request (or notification, when method
// starts with notifications/) to an upstream and reads its answer, JSON or
// event stream. It returns the result and the upstream's session id.
func (m *MCP) rawCall(ctx context.Context, up *deployv1.Upstream, sessID, protocol, method string, params any) (json.RawMessage, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var msg jsonrpc.Message
	var rawParams json.RawMessage
	if params != nil {
		var err error
		if rawParams, err = json.Marshal(params); err != nil {
			return nil, "", err
		}
	}
	notify := strings.HasPrefix(method, "notifications/")
	var id jsonrpc.ID
	if notify {
		msg = &jsonrpc.Request{Method: method, Params: rawParams}
	} else {
		// Its own ids are strings no client id of a forwarded request
		// shares in the upstream session.
		id, _ = jsonrpc.MakeID(fmt.Sprintf("pylee-%d", m.agg.next.Add(1)))
		msg = &jsonrpc.Request{ID: id, Method: method, Params: rawParams}
	}
	body, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return nil, "", err
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, up.GetUrl(), bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Accept", "application/json, text/event-stream")
	if method != "initialize" && protocol != "" {
		out.Header.Set("MCP-Protocol-Version", protocol)
	}
	if sessID != "" {
		out.Header.Set("Mcp-Session-Id", sessID)
	}
	if up.GetInstance() != "" {
		out.Header.Set("Authorization", "Bearer "+m.cfg.Token.Reveal())
	}
	for k, v := range up.GetHeaders() {
		out.Header.Set(k, v)
	}
	resp, err := m.client.Do(out)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && sessID != "" {
		return nil, "", errUpstreamSession
	}
	if notify {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode >= 300 {
			return nil, "", fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
		}
		return nil, "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
	}
	newID := resp.Header.Get("Mcp-Session-Id")
	var answer []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		answer, err = readAnswer(resp.Body, id)
	} else {
		answer, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	}
	if err != nil {
		return nil, "", err
	}
	decoded, err := jsonrpc.DecodeMessage(answer)
	if err != nil {
		return nil, "", fmt.Errorf("%s: not a JSON-RPC answer: %w", method, err)
	}
	r, ok := decoded.(*jsonrpc.Response)
	if !ok {
		return nil, "", fmt.Errorf("%s: not a JSON-RPC answer", method)
	}
	if r.Error != nil {
		return nil, newID, fmt.Errorf("%s: %w", method, r.Error)
	}
	return r.Result, newID, nil
}

// readAnswer reads an event stream until the response to id.
func readAnswer(body io.Reader, id jsonrpc.ID) ([]byte, error) {
	br := bufio.NewReaderSize(body, 16<<10)
	var data []string
	size := 0
	for {
		line, err := readLine(br, maxResponseBytes)
		if size += len(line); size > maxResponseBytes {
			return nil, errors.New("the stream's events exceed the size bound")
		}
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" && len(data) > 0 {
			msg := []byte(strings.Join(data, "\n"))
			data, size = data[:0], 0
			if d, derr := jsonrpc.DecodeMessage(msg); derr == nil {
				if r, ok := d.(*jsonrpc.Response); ok && r.ID == id {
					return msg, nil
				}
			}
		} else if d, ok := strings.CutPrefix(trimmed, "data:"); ok {
			data = append(data, strings.TrimPrefix(d, " "))
		}
		if err != nil {
			return nil, fmt.Errorf("the stream ended before the answer: %w", err)
		}
	}
}

// lookup returns what an exposed name stands for, listing once when this
// replica has not seen it yet.
func (m *MCP) lookup(ctx context.Context, reg target, p auth.Principal, sess *aggSession, key, kind, exposed string) (ref, bool) {
	tkey := reg.registryName() + "\x00" + kind + "\x00" + exposed
	if v, ok := m.agg.names.get(tkey); ok {
		return v, true
	}
	if _, missed := m.agg.misses.get(tkey); missed {
		return ref{}, false
	}
	if _, err := m.aggregateItems(ctx, reg, p, sess, key, kind); err != nil {
		return ref{}, false
	}
	v, ok := m.agg.names.get(tkey)
	if !ok {
		m.agg.misses.put(tkey, true)
	}
	return v, ok
}

// aggregateRoute sends a request for one tool, prompt or resource to the
// server that offers it, through the single-server path's checks.
func (m *MCP) aggregateRoute(ctx context.Context, w http.ResponseWriter, r *http.Request, reg target, p auth.Principal, sess *aggSession, key string, req *jsonrpc.Request) {
	var params map[string]json.RawMessage
	if err := json.Unmarshal(req.Params, &params); err != nil {
		rpcError(w, req.ID, jsonrpc.CodeInvalidParams, "params must be an object")
		return
	}
	kind, field := "tools", "name"
	switch req.Method {
	case "prompts/get":
		kind = "prompts"
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		kind, field = "resources", "uri"
	}
	var exposed string
	if err := json.Unmarshal(params[field], &exposed); err != nil || exposed == "" {
		rpcError(w, req.ID, jsonrpc.CodeInvalidParams, fmt.Sprintf("%s needs params.%s", req.Method, field))
		return
	}
	target, ok := m.lookup(ctx, reg, p, sess, key, kind, exposed)
	if !ok && kind == "resources" {
		target, ok = m.templateOwner(ctx, reg, p, sess, key, exposed)
	}
	if !ok {
		rpcError(w, req.ID, jsonrpc.CodeInvalidParams, fmt.Sprintf("unknown %s %q in this registry", strings.TrimSuffix(kind, "s"), exposed))
		return
	}
	if target.collision != "" {
		rpcError(w, req.ID, codeForbidden, fmt.Sprintf("%q is refused: %s", exposed, target.collision))
		return
	}
	t := reg
	t.server = target.server
	params[field], _ = json.Marshal(target.name)
	rewritten, err := json.Marshal(params)
	if err != nil {
		rpcError(w, req.ID, jsonrpc.CodeInvalidParams, "params could not be rewritten")
		return
	}
	fwd := &jsonrpc.Request{ID: req.ID, Method: req.Method, Params: rewritten}
	body, err := jsonrpc.EncodeMessage(fwd)
	if err != nil {
		rpcError(w, req.ID, jsonrpc.CodeInvalidParams, "the request could not be rewritten")
		return
	}
	// The client's stream resumption (Last-Event-ID) would reach the
	// aggregated endpoint, not this server: the events go without ids.
	call := &callInfo{id: req.ID, method: req.Method, start: time.Now(), reqBytes: len(body), noEventIDs: true}
	if refusal := m.authorizeCall(ctx, t, p, fwd, call); refusal != "" {
		rpcError(w, req.ID, codeForbidden, refusal)
		m.outcomes.refused()
		m.recordCall(ctx, t, p, call, outcomeRefused, 0, refusal)
		return
	}
	up, err := m.upstream(ctx, t, p, sess.Versions[t.server])
	if err == nil && !up.GetServing() {
		up, err = m.upstream(ctx, t, p, "")
	}
	if err != nil {
		m.upstreamError(w, req, err)
		return
	}
	sv := aggServer{t: t, version: up.GetVersion(), up: up}
	call.version = sv.version
	if call.tool != "" {
		if refusal := m.checkTool(ctx, t, call.version, call.tool); refusal != "" {
			rpcError(w, req.ID, codeForbidden, refusal)
			m.outcomes.refused()
			m.recordCall(ctx, t, p, call, outcomeRefused, 0, refusal)
			return
		}
	}
	// The registry's rate limits, as on the server's own URL.
	if m.overRate(ctx, w, t, p, m.limits(ctx, t), req.ID, call) {
		return
	}
	upSess, upProtocol, err := m.upstreamSession(ctx, sv, sess, key)
	if err != nil {
		m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
		m.recordCall(ctx, t, p, call, outcomeTransport, 0, err.Error())
		rpcError(w, req.ID, codeUnavailable, "the server could not be reached; retry")
		return
	}
	inflight := key + "\x00" + fmt.Sprintf("%T:%v", req.ID.Raw(), req.ID.Raw())
	m.agg.inflight.Store(inflight, sv)
	defer m.agg.inflight.Delete(inflight)
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, up.GetUrl(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "bad upstream", http.StatusBadGateway)
		return
	}
	in := r.Clone(ctx)
	in.Header.Set("MCP-Protocol-Version", upProtocol)
	// The request was rewritten (the original name): the 2026-07-28
	// headers of the client's request name the exposed one.
	in.Header.Del("Mcp-Name")
	in.Header.Del("Mcp-Method")
	m.upstreamHeaders(out, in, up, &session{Upstream: upSess})
	call.abandon = func() { m.cancelUpstream(out, call.id) }
	resp, err := m.client.Do(out)
	if err != nil {
		m.upstreams.drop(upstreamKey{t.deployment(), userOf(p), sv.version})
		m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
		m.recordCall(ctx, t, p, call, outcomeTransport, 0, err.Error())
		rpcError(w, req.ID, codeUnavailable, "the server could not be reached; retry")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		// The upstream forgot the session (it restarted): the next
		// request makes a new one.
		m.agg.sessions.drop(key + "\x00" + sv.t.server + "\x00" + sv.version)
		m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
		m.recordCall(ctx, t, p, call, outcomeTransport, 0, "the upstream session ended")
		rpcError(w, req.ID, codeUnavailable, "the server restarted; retry")
		return
	}
	m.relay(ctx, w, resp, t, p, call)
}

// templateOwner finds the server whose resource template's literal prefix
// is the longest prefix of uri (a read of a templated resource).
func (m *MCP) templateOwner(ctx context.Context, reg target, p auth.Principal, sess *aggSession, key, uri string) (ref, bool) {
	if _, err := m.aggregateItems(ctx, reg, p, sess, key, "resourceTemplates"); err != nil {
		return ref{}, false
	}
	best, bestLen, ties := ref{}, 0, 0
	m.agg.names.each(func(k string, v ref) {
		parts := strings.SplitN(k, "\x00", 3)
		if len(parts) != 3 || parts[0] != reg.registryName() || parts[1] != "resourceTemplates" {
			return
		}
		prefix, _, _ := strings.Cut(parts[2], "{")
		if prefix == "" || !strings.HasPrefix(uri, prefix) {
			return
		}
		switch {
		case len(prefix) > bestLen:
			best, bestLen, ties = v, len(prefix), 1
		case len(prefix) == bestLen && v.server != best.server:
			ties++
		}
	})
	if ties != 1 || best.collision != "" {
		return ref{}, false
	}
	return ref{server: best.server, name: uri}, true
}

// aggregateCancel forwards a cancellation to the server answering the
// request it names, when this replica relays it.
func (m *MCP) aggregateCancel(ctx context.Context, reg target, p auth.Principal, sess *aggSession, key string, req *jsonrpc.Request) {
	var params struct {
		RequestID any `json:"requestId"`
	}
	if json.Unmarshal(req.Params, &params) != nil || params.RequestID == nil {
		return
	}
	rid, err := jsonrpc.MakeID(params.RequestID)
	if err != nil {
		return
	}
	v, ok := m.agg.inflight.Load(key + "\x00" + fmt.Sprintf("%T:%v", rid.Raw(), rid.Raw()))
	if !ok {
		return
	}
	sv := v.(aggServer)
	id, protocol, err := m.upstreamSession(ctx, sv, sess, key)
	if err != nil {
		return
	}
	var raw map[string]any
	_ = json.Unmarshal(req.Params, &raw)
	_, _, _ = m.rawCall(ctx, sv.up, id, protocol, "notifications/cancelled", raw)
}

// aggregateStream is the session's GET stream: list_changed
// notifications when what the caller may use changes (an entry, a
// binding, an upstream's tools), checked every AggregatePoll.
func (m *MCP) aggregateStream(ctx context.Context, w http.ResponseWriter, reg target, p auth.Principal, sess *aggSession, key string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := m.streamTo(w)
	defer sw.done()
	sw.Flush()
	kinds := []string{"tools", "prompts", "resources"}
	notification := map[string]string{"tools": "notifications/tools/list_changed", "prompts": "notifications/prompts/list_changed",
		"resources": "notifications/resources/list_changed"}
	last := map[string]string{}
	fingerprint := func(kind string) string {
		items, err := m.aggregateItems(ctx, reg, p, sess, key, kind)
		if err != nil {
			return last[kind]
		}
		h := sha256.New()
		for _, it := range items {
			h.Write(it)
			h.Write([]byte{0})
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	for _, k := range kinds {
		last[k] = fingerprint(k)
	}
	tick := time.NewTicker(m.cfg.AggregatePoll)
	defer tick.Stop()
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		changed := false
		for _, k := range kinds {
			if f := fingerprint(k); f != last[k] {
				last[k] = f
				changed = true
				b, _ := jsonrpc.EncodeMessage(&jsonrpc.Request{Method: notification[k]})
				if _, err := fmt.Fprintf(sw, "event: message\ndata: %s\n\n", b); err != nil {
					return
				}
			}
		}
		idle++
		if !changed && idle*int(m.cfg.AggregatePoll) >= int(15*time.Second) {
			// A comment keeps proxies from closing an idle stream.
			if _, err := io.WriteString(sw, ": keep-alive\n\n"); err != nil {
				return
			}
			idle = 0
		}
		if sw.Flush(); sw.err != nil {
			return
		}
	}
}

// sealAggregate and openAggregate seal aggregated sessions with the same
// key and bound as single-server ones; the kinds cannot be confused (the
// Deployment of one names a registry, of the other a deployment).
func (s *sealer) sealAggregate(v aggSession) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return s.sealBytes(plain)
}

func (s *sealer) openAggregate(id string, maxAge time.Duration) (aggSession, error) {
	plain, err := s.openBytes(id, maxAggregateSessionID)
	if err != nil {
		return aggSession{}, err
	}
	var v aggSession
	if err := json.Unmarshal(plain, &v); err != nil {
		return aggSession{}, errBadSession
	}
	if maxAge > 0 && time.Since(time.Unix(v.Issued, 0)) > maxAge {
		return aggSession{}, errBadSession
	}
	return v, nil
}

// endUpstreamSession ends an upstream session the gateway opened for
// itself (DELETE, as the transport says).
func (m *MCP) endUpstreamSession(ctx context.Context, up *deployv1.Upstream, sid string) {
	if sid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, up.GetUrl(), nil)
	if err != nil {
		return
	}
	req.Header.Set("Mcp-Session-Id", sid)
	if up.GetInstance() != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.Token.Reveal())
	}
	for k, v := range up.GetHeaders() {
		req.Header.Set(k, v)
	}
	if resp, err := m.client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
}
