package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

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
	// abandon tells the upstream nobody waits for the answer any more
	// (set once the request went upstream).
	abandon func()
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

// settings are the registry's settings in force (the tool policy and
// whether tools must be recorded); an error when they cannot be read (the
// caller refuses: no policy is not "every tool").
func (m *MCP) settings(ctx context.Context, t target) (*registryv1.RegistrySettings, error) {
	if s, ok := m.registrySettings.get(t.registryName()); ok {
		return s, nil
	}
	r, err := m.registry.GetRegistry(auth.Outgoing(ctx, m.cfg.Token), &registryv1.GetRegistryRequest{Name: t.registryName()})
	if err != nil {
		return nil, fmt.Errorf("the registry's tool policy could not be read: %w", err)
	}
	s := r.GetEffective()
	m.registrySettings.put(t.registryName(), s)
	return s, nil
}

// version is the pinned version as the registry has it (cached).
func (m *MCP) version(ctx context.Context, t target, version string) (*registryv1.ServerVersion, error) {
	key := t.serverName() + "/versions/" + version
	if v, ok := m.versions.get(key); ok {
		return v, nil
	}
	v, err := m.registry.GetVersion(auth.Outgoing(ctx, m.cfg.Token), &registryv1.GetVersionRequest{Name: key})
	if err != nil {
		return nil, fmt.Errorf("version %s could not be read: %w", version, err)
	}
	m.versions.put(key, v)
	return v, nil
}

// recorded is the pinned version's tools by name: those it was published
// with or, for a version published without, those its server first listed
// (recorded by RecordObservedTools; an empty map when it listed none). Nil
// when the version records no tools at all; an error when it cannot be
// read.
func (m *MCP) recorded(ctx context.Context, t target, version string) (map[string]*registryv1.Tool, error) {
	v, err := m.version(ctx, t, version)
	if err != nil {
		return nil, err
	}
	return toolsOf(v), nil
}

// published reports whether the version was published with its tools
// (false when it cannot be read).
func (m *MCP) published(ctx context.Context, t target, version string) bool {
	v, err := m.version(ctx, t, version)
	return err == nil && len(v.GetTools()) > 0
}

func toolsOf(v *registryv1.ServerVersion) map[string]*registryv1.Tool {
	tools := v.GetTools()
	if len(tools) == 0 {
		if v.GetToolsObservedTime() == nil {
			return nil
		}
		tools = v.GetObservedTools()
	}
	out := make(map[string]*registryv1.Tool, len(tools))
	for _, tl := range tools {
		out[tl.GetName()] = tl
	}
	return out
}

// recordObserved records listing as what version's server first listed,
// for a version published without tools, and returns the version's tools
// as recorded then (by this call or, when another replica was first, by
// that one). Nil when they could not be recorded: the listing is then
// served unguarded, as before any recording, and the next one tries again.
func (m *MCP) recordObserved(ctx context.Context, t target, version string, listing []json.RawMessage) map[string]*registryv1.Tool {
	tools := make([]*registryv1.Tool, 0, len(listing))
	for _, raw := range listing {
		tl, err := toolFromListing(raw)
		if err != nil {
			m.log.Sugar().Warnw("a listed tool cannot be recorded", "deployment", t.deployment(), "version", version, "error", err)
			return nil
		}
		tools = append(tools, tl)
	}
	name := t.serverName() + "/versions/" + version
	v, err := m.registry.RecordObservedTools(auth.Outgoing(ctx, m.cfg.Token), &registryv1.RecordObservedToolsRequest{Name: name, Tools: tools})
	if status.Code(err) == codes.FailedPrecondition {
		// Recorded meanwhile (another replica's listing): read it.
		m.versions.drop(name)
		if v, err = m.version(ctx, t, version); err == nil {
			return toolsOf(v)
		}
	}
	if err != nil {
		m.log.Sugar().Warnw("the first listing of a version without tools could not be recorded; served without the drift guard",
			"deployment", t.deployment(), "version", version, "error", err)
		return nil
	}
	m.versions.put(name, v)
	m.log.Sugar().Infow("recorded the tools a version without published tools first listed", "deployment", t.deployment(),
		"version", version, "tools", len(tools))
	return toolsOf(v)
}

// toolFromListing is a tool of a tools/list result as the registry records
// it.
func toolFromListing(raw json.RawMessage) (*registryv1.Tool, error) {
	var in struct {
		Name         string         `json:"name"`
		Title        string         `json:"title"`
		Description  string         `json:"description"`
		InputSchema  map[string]any `json:"inputSchema"`
		OutputSchema map[string]any `json:"outputSchema"`
		Annotations  *struct {
			Title           string `json:"title"`
			ReadOnlyHint    *bool  `json:"readOnlyHint"`
			DestructiveHint *bool  `json:"destructiveHint"`
			IdempotentHint  *bool  `json:"idempotentHint"`
			OpenWorldHint   *bool  `json:"openWorldHint"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	tl := &registryv1.Tool{Name: in.Name, Title: in.Title, Description: in.Description}
	var err error
	if in.InputSchema != nil {
		if tl.InputSchema, err = structpb.NewStruct(in.InputSchema); err != nil {
			return nil, fmt.Errorf("tool %q: inputSchema: %w", in.Name, err)
		}
	}
	if in.OutputSchema != nil {
		if tl.OutputSchema, err = structpb.NewStruct(in.OutputSchema); err != nil {
			return nil, fmt.Errorf("tool %q: outputSchema: %w", in.Name, err)
		}
	}
	if a := in.Annotations; a != nil {
		tl.Annotations = &registryv1.ToolAnnotations{Title: a.Title, ReadOnlyHint: a.ReadOnlyHint, DestructiveHint: a.DestructiveHint,
			IdempotentHint: a.IdempotentHint, OpenWorldHint: a.OpenWorldHint}
	}
	return tl, nil
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
	settings, err := m.settings(ctx, t)
	if err != nil {
		return nil, err
	}
	policy := settings.GetToolPolicy()
	if settings.GetRequireRecordedTools() && !m.published(ctx, t, version) {
		// Nothing of a version without published tools is served.
		res["tools"] = json.RawMessage("[]")
		return json.Marshal(res)
	}
	if rec == nil {
		rec = m.recordObserved(ctx, t, version, raw)
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
	settings, err := m.settings(ctx, t)
	if err != nil {
		return err.Error()
	}
	policy := settings.GetToolPolicy()
	if settings.GetRequireRecordedTools() && !m.published(ctx, t, version) {
		return "this registry requires recorded tools, and version " + version + " was published without tools"
	}
	if rec == nil {
		// Called before any listing: the server's first listing is
		// recorded now, so the call is checked against it.
		rec = m.observe(ctx, t, version)
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
	if rec == nil {
		// A version that records no tools yet: its server's first listing.
		for name := range m.observe(ctx, t, version) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return err
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

// observe lists the tools of the upstream of a version that records none
// and records them (recordObserved); nil when the upstream cannot be
// asked or the listing cannot be recorded. A failure is remembered
// briefly, so callers do not each ask the upstream again.
func (m *MCP) observe(ctx context.Context, t target, version string) map[string]*registryv1.Tool {
	key := t.deployment() + "@" + version
	if _, failed := m.observed.get(key); failed {
		return nil
	}
	rec := m.listAndRecord(ctx, t, version)
	if rec == nil {
		m.observed.put(key, struct{}{})
	}
	return rec
}

func (m *MCP) listAndRecord(ctx context.Context, t target, version string) map[string]*registryv1.Tool {
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
		Tools []json.RawMessage `json:"tools"`
	}
	if json.Unmarshal(res, &list) != nil {
		return nil
	}
	return m.recordObserved(ctx, t, version, list.Tools)
}
