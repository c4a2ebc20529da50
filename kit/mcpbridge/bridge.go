// Package mcpbridge joins an MCP client session to an MCP server, with
// the official MCP Go SDK on both sides: an mcp.Client session to the
// upstream, and an mcp.Server whose receiving middleware forwards every
// request to it. The deploy service exposes a process speaking stdio as a
// streamable HTTP endpoint that keeps its address while the process
// restarts; `pylee proxy` exposes the gateway over stdio to an editor,
// reconnecting when the gateway's connection breaks.
package mcpbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ErrNoUpstream answers requests while no process is attached.
var ErrNoUpstream = &jsonrpc.Error{Code: -32002, Message: "the server is not running (restarting or stopped); retry shortly"}

// Bridge is one instance's endpoint.
type Bridge struct {
	handler *mcp.StreamableHTTPHandler
	guard   func(*http.Request) error

	mu  sync.RWMutex
	up  *mcp.ClientSession
	srv *mcp.Server

	// progress maps the token sent upstream to the session and token of
	// the client that asked: tokens of different sessions may collide.
	progress sync.Map // string -> progressTarget
	next     atomic.Uint64

	// reconnect, when set, replaces an upstream whose connection broke;
	// the request that found it broken is sent once more.
	reconnect func(ctx context.Context) (*mcp.ClientSession, error)
	reMu      sync.Mutex
}

// OnBrokenUpstream sets how a broken upstream is replaced: a request that
// fails because the connection closed calls fn, attaches what it returns
// (keeping the server and its sessions) and is sent once more.
func (b *Bridge) OnBrokenUpstream(fn func(ctx context.Context) (*mcp.ClientSession, error)) {
	b.reconnect = fn
}

// Server is the server side, to run on a transport of the caller's (the
// proxy's stdio).
func (b *Bridge) Server() *mcp.Server {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.srv
}

// Swap makes cs the upstream, keeping the server and its sessions.
func (b *Bridge) Swap(cs *mcp.ClientSession) {
	b.mu.Lock()
	b.up = cs
	b.mu.Unlock()
}

// replace swaps in a new upstream for broken, unless another request did
// already.
func (b *Bridge) replace(ctx context.Context, broken *mcp.ClientSession) (*mcp.ClientSession, error) {
	b.reMu.Lock()
	defer b.reMu.Unlock()
	if up := b.upstream(); up != broken && up != nil {
		return up, nil
	}
	cs, err := b.reconnect(ctx)
	if err != nil {
		return nil, err
	}
	_ = broken.Close()
	b.Swap(cs)
	return cs, nil
}

type progressTarget struct {
	session *mcp.ServerSession
	token   any
	// ctx is the client request's: a notification sent with it goes on
	// that request's own stream (as the spec asks), not the session's
	// GET stream, which a client need not open.
	ctx context.Context
}

// New returns a bridge whose HTTP endpoint serves only requests guard
// accepts (nil: all), ending sessions unused for idle (0: never). It
// serves ErrNoUpstream until Attach.
func New(guard func(*http.Request) error, idle time.Duration) *Bridge {
	b := &Bridge{guard: guard}
	b.srv = b.newServer(nil)
	b.handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return b.srv
	}, &mcp.StreamableHTTPOptions{SessionTimeout: idle})
	return b
}

// ClientOptions are the options of the client session to attach: they
// route the process's progress and list-changed notifications to the
// bridge's clients.
func (b *Bridge) ClientOptions() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ProgressNotificationHandler: b.onProgress,
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			b.touch(func(s *mcp.Server) { s.AddTool(refreshTool, noTool); s.RemoveTools(refreshTool.Name) })
		},
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) {
			b.touch(func(s *mcp.Server) {
				s.AddResource(refreshResource, noResource)
				s.RemoveResources(refreshResource.URI)
			})
		},
		PromptListChangedHandler: func(context.Context, *mcp.PromptListChangedRequest) {
			b.touch(func(s *mcp.Server) { s.AddPrompt(refreshPrompt, noPrompt); s.RemovePrompts(refreshPrompt.Name) })
		},
		ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			b.mu.RLock()
			s := b.srv
			b.mu.RUnlock()
			_ = s.ResourceUpdated(ctx, req.Params)
		},
	}
}

// The SDK sends list_changed when a server's own lists change; the
// bridge's lists are the process's (forwarded, never stored), so it adds
// and removes a placeholder to make the SDK tell its sessions.
var (
	refreshTool     = &mcp.Tool{Name: "pylee.bridge.refresh", InputSchema: map[string]any{"type": "object"}}
	refreshResource = &mcp.Resource{Name: "refresh", URI: "pylee-bridge:refresh"}
	refreshPrompt   = &mcp.Prompt{Name: "pylee.bridge.refresh"}
)

func noTool(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return nil, errors.New("not a tool")
}
func noResource(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return nil, errors.New("not a resource")
}
func noPrompt(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return nil, errors.New("not a prompt")
}

func (b *Bridge) touch(fn func(*mcp.Server)) {
	b.mu.RLock()
	s := b.srv
	b.mu.RUnlock()
	fn(s)
}

// Attach makes cs the process behind the endpoint. Sessions opened before
// keep working: requests go to whichever process is attached.
func (b *Bridge) Attach(cs *mcp.ClientSession) {
	srv := b.newServer(cs.InitializeResult())
	b.mu.Lock()
	b.up, b.srv = cs, srv
	b.mu.Unlock()
}

// Detach leaves the endpoint without a process (it answers ErrNoUpstream)
// if cs is still the one attached.
func (b *Bridge) Detach(cs *mcp.ClientSession) {
	b.mu.Lock()
	if b.up == cs {
		b.up = nil
	}
	b.mu.Unlock()
}

// Close ends every client session of the endpoint.
func (b *Bridge) Close() {
	b.mu.RLock()
	s := b.srv
	b.mu.RUnlock()
	for ss := range s.Sessions() {
		_ = ss.Close()
	}
}

func (b *Bridge) upstream() *mcp.ClientSession {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.up
}

// ServeHTTP implements http.Handler.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.guard != nil {
		if err := b.guard(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	b.handler.ServeHTTP(w, r)
}

// newServer is the server clients see: the process's name, version,
// instructions and capabilities, with every request forwarded.
func (b *Bridge) newServer(init *mcp.InitializeResult) *mcp.Server {
	impl := &mcp.Implementation{Name: "pylee-bridge", Version: "0"}
	opts := &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{},
		SubscribeHandler: func(ctx context.Context, req *mcp.SubscribeRequest) error {
			if up := b.upstream(); up != nil {
				return up.Subscribe(ctx, req.Params)
			}
			return ErrNoUpstream
		},
		UnsubscribeHandler: func(ctx context.Context, req *mcp.UnsubscribeRequest) error {
			if up := b.upstream(); up != nil {
				return up.Unsubscribe(ctx, req.Params)
			}
			return ErrNoUpstream
		}}
	if init != nil {
		if init.ServerInfo != nil {
			impl = init.ServerInfo
		}
		opts.Instructions = init.Instructions
		if init.Capabilities != nil {
			caps := *init.Capabilities
			caps.Logging = nil //nolint:staticcheck // deprecated in 2026-07-28, still sent to older clients: a shared process's log lines are not every client's business
			opts.Capabilities = &caps
		}
	}
	s := mcp.NewServer(impl, opts)
	s.AddReceivingMiddleware(b.forward)
	return s
}

// forward sends each request of the forwarded methods to the attached
// upstream and answers with its result or error unchanged; with a
// reconnect function, a request that found the connection closed is sent
// once more on a new one.
func (b *Bridge) forward(next mcp.MethodHandler) mcp.MethodHandler {
	send := b.send(next)
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		up := b.upstream()
		res, err := send(ctx, method, req, up)
		if err == nil || b.reconnect == nil || up == nil {
			return res, err
		}
		missing := errors.Is(err, mcp.ErrSessionMissing)
		if !missing && !errors.Is(err, mcp.ErrConnectionClosed) {
			return res, err
		}
		fresh, rerr := b.replace(ctx, up)
		if rerr != nil {
			return nil, fmt.Errorf("the connection to the server broke and could not be made again: %w", rerr)
		}
		// A session the server no longer knew was not run; a tool call
		// lost with its connection may have been, and is not sent twice.
		if !missing && method == "tools/call" {
			return nil, fmt.Errorf("the connection broke during the call, which may or may not have run; reconnected, call again if it should: %w", err)
		}
		return send(ctx, method, req, fresh)
	}
}

func (b *Bridge) send(next mcp.MethodHandler) func(ctx context.Context, method string, req mcp.Request, up *mcp.ClientSession) (mcp.Result, error) {
	return func(ctx context.Context, method string, req mcp.Request, up *mcp.ClientSession) (mcp.Result, error) {
		switch method {
		case "initialize", "notifications/initialized", "ping", "notifications/cancelled", "notifications/progress",
			"notifications/roots/list_changed", "logging/setLevel":
			return next(ctx, method, req)
		}
		if params := req.GetParams(); params != nil && !isNilParams(params) {
			// The protocol's own _meta keys describe this hop (the
			// client's protocol version); the next hop sets its own.
			if m := params.GetMeta(); len(m) > 0 {
				clean := make(map[string]any, len(m))
				for k, v := range m {
					if !strings.HasPrefix(k, "io.modelcontextprotocol/") {
						clean[k] = v
					}
				}
				params.SetMeta(clean)
			}
		}
		if up == nil {
			if _, ok := forwarded[method]; ok {
				return nil, ErrNoUpstream
			}
			return next(ctx, method, req)
		}
		switch p := req.GetParams().(type) {
		case *mcp.ListToolsParams:
			return up.ListTools(ctx, p)
		case *mcp.CallToolParamsRaw:
			out := &mcp.CallToolParams{Meta: p.Meta, Name: p.Name}
			if len(p.Arguments) > 0 {
				out.Arguments = json.RawMessage(p.Arguments)
			}
			if tok := p.GetProgressToken(); tok != nil {
				id := strconv.FormatUint(b.next.Add(1), 10)
				b.progress.Store(id, progressTarget{session: sessionOf(req), token: tok, ctx: ctx})
				defer b.progress.Delete(id)
				out.Meta = copyMeta(p.Meta)
				out.SetProgressToken(id)
			}
			return up.CallTool(ctx, out)
		case *mcp.ListResourcesParams:
			return up.ListResources(ctx, p)
		case *mcp.ListResourceTemplatesParams:
			return up.ListResourceTemplates(ctx, p)
		case *mcp.ReadResourceParams:
			return up.ReadResource(ctx, p)
		case *mcp.ListPromptsParams:
			return up.ListPrompts(ctx, p)
		case *mcp.GetPromptParams:
			return up.GetPrompt(ctx, p)
		case *mcp.CompleteParams:
			return up.Complete(ctx, p)
		}
		return next(ctx, method, req)
	}
}

var forwarded = map[string]struct{}{"tools/list": {}, "tools/call": {}, "resources/list": {}, "resources/templates/list": {},
	"resources/read": {}, "prompts/list": {}, "prompts/get": {}, "completion/complete": {}}

func sessionOf(req mcp.Request) *mcp.ServerSession {
	ss, _ := req.GetSession().(*mcp.ServerSession)
	return ss
}

func isNilParams(p mcp.Params) bool {
	v := reflect.ValueOf(p)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func copyMeta(m mcp.Meta) mcp.Meta {
	out := make(mcp.Meta, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (b *Bridge) onProgress(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
	id := fmt.Sprint(req.Params.ProgressToken)
	v, ok := b.progress.Load(id)
	if !ok {
		return
	}
	t := v.(progressTarget)
	if t.session == nil {
		return
	}
	p := *req.Params
	p.ProgressToken = t.token
	_ = t.session.NotifyProgress(t.ctx, &p)
}
