package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
)

// callInfo is one client request on its way.
type callInfo struct {
	id      jsonrpc.ID
	method  string
	tool    string
	version string
	start   time.Time
	// reqBytes is the size of the client's message.
	reqBytes int
	// noEventIDs drops the upstream's event ids and retry hints from the
	// relayed stream (a resumption could not reach the same upstream).
	noEventIDs bool
}

// Permissions of MCP methods beyond tools: resources, prompts and
// completions need tools.invoke on the server (in the registry, or above);
// a binding on a single tool opens that tool only.
var serverMethods = map[string]bool{"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true, "prompts/list": true, "prompts/get": true, "completion/complete": true}

// authorizeCall decides a request before it goes upstream; "" allows it.
func (m *MCP) authorizeCall(ctx context.Context, t target, p auth.Principal, req *jsonrpc.Request, call *callInfo) string {
	switch {
	case req.Method == "tools/call":
		var params struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(req.Params, &params); err != nil || params.Name == "" {
			return "tools/call needs params.name"
		}
		call.tool = params.Name
		if err := m.authz.Authorize(ctx, p, "tools.invoke", t.toolResource(params.Name)); err != nil {
			return fmt.Sprintf("you may not call the tool %q (tools.invoke)", params.Name)
		}
	case serverMethods[req.Method]:
		if err := m.authz.Authorize(ctx, p, "tools.invoke", t.registryName()+"/servers/"+t.server); err != nil {
			return fmt.Sprintf("you may not use %s on this server (tools.invoke on the server)", req.Method)
		}
	}
	return ""
}

// guard is what the registry says of a version's tools, and what the
// upstream was last seen to list: the policy and drift checks.
type guard struct {
	mu    sync.Mutex
	drift map[string]map[string]string // version key -> tool -> what changed
}

// policy is the registry's tool policy in force; an error when it cannot
// be read (the caller refuses: no policy is not "every tool").
func (m *MCP) policy(ctx context.Context, t target) (registryv1.ToolPolicy, error) {
	if p, ok := m.policies.get(t.registryName()); ok {
		return p, nil
	}
	r, err := m.registry.GetRegistry(auth.Outgoing(ctx, m.cfg.Token), &registryv1.GetRegistryRequest{Name: t.registryName()})
	if err != nil {
		return 0, fmt.Errorf("the registry's tool policy could not be read: %w", err)
	}
	p := r.GetEffective().GetToolPolicy()
	m.policies.put(t.registryName(), p)
	return p, nil
}

// recorded is the pinned version's recorded tools by name (nil when the
// version records none); an error when the version cannot be read.
func (m *MCP) recorded(ctx context.Context, t target, version string) (map[string]*registryv1.Tool, error) {
	key := t.serverName() + "/versions/" + version
	v, ok := m.versions.get(key)
	if !ok {
		var err error
		v, err = m.registry.GetVersion(auth.Outgoing(ctx, m.cfg.Token), &registryv1.GetVersionRequest{Name: key})
		if err != nil {
			return nil, fmt.Errorf("version %s could not be read: %w", version, err)
		}
		m.versions.put(key, v)
	}
	if len(v.GetTools()) == 0 {
		return nil, nil
	}
	out := make(map[string]*registryv1.Tool, len(v.GetTools()))
	for _, tl := range v.GetTools() {
		out[tl.GetName()] = tl
	}
	return out, nil
}

// listedTool is a tool as an upstream lists it.
type listedTool struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
	Annotations map[string]any `json:"annotations"`
}

// drifted says how an upstream's tool differs from the recorded one ("":
// it does not).
func drifted(up listedTool, rec *registryv1.Tool) string {
	if rec == nil {
		return "not in the pinned version"
	}
	if up.Description != rec.GetDescription() {
		return "description changed"
	}
	if !sameJSON(up.InputSchema, rec.GetInputSchema().AsMap()) {
		return "input schema changed"
	}
	if a := rec.GetAnnotations(); a != nil {
		if ro, ok := up.Annotations["readOnlyHint"].(bool); a.ReadOnlyHint != nil && (!ok || ro != a.GetReadOnlyHint()) {
			return "readOnlyHint changed"
		}
		if d, ok := up.Annotations["destructiveHint"].(bool); a.DestructiveHint != nil && (!ok || d != a.GetDestructiveHint()) {
			return "destructiveHint changed"
		}
	}
	return ""
}

func sameJSON(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}

func readOnly(up listedTool, rec *registryv1.Tool) bool {
	if rec != nil && rec.GetAnnotations() != nil && rec.GetAnnotations().ReadOnlyHint != nil {
		return rec.GetAnnotations().GetReadOnlyHint()
	}
	ro, _ := up.Annotations["readOnlyHint"].(bool)
	return ro
}

// filterTools rewrites a tools/list result: only the tools the caller may
// call, that the registry's policy allows and that have not drifted from
// the pinned version. It records drift.
func (m *MCP) filterTools(ctx context.Context, t target, p auth.Principal, version string, result json.RawMessage) (json.RawMessage, error) {
	var res map[string]json.RawMessage
	if err := json.Unmarshal(result, &res); err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(res["tools"], &raw); err != nil {
		return nil, err
	}
	rec, err := m.recorded(ctx, t, version)
	if err != nil {
		return nil, err
	}
	policy, err := m.policy(ctx, t)
	if err != nil {
		return nil, err
	}
	tools := make([]listedTool, len(raw))
	resources := make([]string, len(raw))
	for i, r := range raw {
		_ = json.Unmarshal(r, &tools[i])
		resources[i] = t.toolResource(tools[i].Name)
	}
	decisions, err := auth.AuthorizeMany(ctx, m.authz, p, "tools.invoke", resources)
	if err != nil {
		return nil, err
	}
	drift := map[string]string{}
	kept := make([]json.RawMessage, 0, len(raw))
	for i, tl := range tools {
		if rec != nil {
			if why := drifted(tl, rec[tl.Name]); why != "" {
				drift[tl.Name] = why
				continue
			}
		}
		if decisions[i] != nil {
			continue
		}
		if policy == registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY && !readOnly(tl, rec[tl.Name]) {
			continue
		}
		kept = append(kept, raw[i])
	}
	m.observeDrift(t, version, drift)
	res["tools"], _ = json.Marshal(kept)
	return json.Marshal(res)
}

// checkTool refuses a call the policy or drift guard forbids ("" allows).
func (m *MCP) checkTool(ctx context.Context, t target, version, tool string) string {
	rec, err := m.recorded(ctx, t, version)
	if err != nil {
		return err.Error()
	}
	policy, err := m.policy(ctx, t)
	if err != nil {
		return err.Error()
	}
	if why := m.driftOf(t, version, tool); why != "" {
		return fmt.Sprintf("the tool %q is not callable: it drifted from version %s (%s)", tool, version, why)
	}
	if rec != nil && rec[tool] == nil {
		return fmt.Sprintf("the tool %q is not part of version %s", tool, version)
	}
	if policy == registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY {
		if rec == nil {
			return "this registry allows read-only tools only, and version " + version + " records no tools to tell"
		}
		if !readOnly(listedTool{}, rec[tool]) {
			return fmt.Sprintf("this registry allows read-only tools only; %q is not annotated readOnlyHint", tool)
		}
	}
	return ""
}

func (m *MCP) observeDrift(t target, version string, drift map[string]string) {
	key := t.deployment() + "@" + version
	m.guard.mu.Lock()
	prev := m.guard.drift[key]
	if m.guard.drift == nil {
		m.guard.drift = map[string]map[string]string{}
	}
	m.guard.drift[key] = drift
	m.guard.mu.Unlock()
	for name, why := range drift {
		if prev[name] != why {
			m.log.Sugar().Warnw("tool drift: hidden and not callable", "deployment", t.deployment(), "version", version, "tool", name, "change", why)
			m.metrics.drift.WithLabelValues(t.registryName(), t.server).Inc()
			if m.onDrift != nil {
				m.onDrift(t, version, name, why)
			}
		}
	}
}

func (m *MCP) driftOf(t target, version, tool string) string {
	m.guard.mu.Lock()
	defer m.guard.mu.Unlock()
	return m.guard.drift[t.deployment()+"@"+version][tool]
}

// mayConnect decides whether the caller may open a session with the
// server at all: tools.list on the server in the registry (or above), or
// tools.invoke on one of the pinned version's tools. A caller outside the
// organization gets errs.ErrNotFound from the authorizer, as everywhere.
func (m *MCP) mayConnect(ctx context.Context, t target, p auth.Principal, version string) error {
	err := m.authz.Authorize(ctx, p, "tools.list", t.registryName()+"/servers/"+t.server)
	if err == nil {
		return nil
	}
	rec, rerr := m.recorded(ctx, t, version)
	if rerr != nil {
		return err
	}
	names := make([]string, 0, len(rec))
	for name := range rec {
		names = append(names, name)
	}
	if len(rec) == 0 {
		// A version recorded without tools: the tools its upstream lists.
		if names = m.observedTools(ctx, t, p, version); len(names) == 0 {
			return err
		}
	}
	resources := make([]string, 0, len(names))
	for _, name := range names {
		resources = append(resources, t.toolResource(name))
	}
	decisions, derr := auth.AuthorizeMany(ctx, m.authz, p, "tools.invoke", resources)
	if derr != nil {
		return derr
	}
	for _, d := range decisions {
		if d == nil {
			return nil
		}
	}
	return err
}

// observedTools are the tool names the upstream of a version recorded
// without tools lists (cached briefly); nil when it cannot be asked.
func (m *MCP) observedTools(ctx context.Context, t target, p auth.Principal, version string) []string {
	key := t.deployment() + "@" + version
	if names, ok := m.observed.get(key); ok {
		return names
	}
	// Asked as no one: a per-user instance is not started to learn names.
	up, err := m.upstream(ctx, t, auth.Principal{}, version)
	if err != nil || !up.GetServing() {
		return nil
	}
	const protocol = "2025-06-18"
	_, sid, err := m.rawCall(ctx, up, "", protocol, "initialize", map[string]any{"protocolVersion": protocol, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "pylee-gateway", "version": "1"}})
	if err != nil {
		return nil
	}
	if _, _, err := m.rawCall(ctx, up, sid, protocol, "notifications/initialized", nil); err != nil {
		return nil
	}
	res, _, err := m.rawCall(ctx, up, sid, protocol, "tools/list", map[string]any{})
	m.endUpstreamSession(ctx, up, sid)
	if err != nil {
		return nil
	}
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	if json.Unmarshal(res, &list) != nil {
		return nil
	}
	names := make([]string, 0, len(list.Tools))
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	m.observed.put(key, names)
	return names
}
