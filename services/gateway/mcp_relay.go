package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	"github.com/pyleeai/pylee/kit/auth"
)

// maxResponseBytes bounds a buffered (JSON) upstream answer.
const maxResponseBytes = 32 << 20

// relay sends the upstream's answer to the client: a JSON body as one
// piece, an event stream event by event, each flushed as it comes. The
// answer to call is inspected on the way (its outcome, and a tools/list
// result filtered).
func (m *MCP) relay(ctx context.Context, w http.ResponseWriter, resp *http.Response, t target, p auth.Principal, call *callInfo) {
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(resp.StatusCode)
		sw := m.streamTo(w)
		defer sw.done()
		sw.Flush()
		m.relayEvents(ctx, sw, resp.Body, t, p, call)
	case strings.HasPrefix(ct, "application/json"):
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		if err != nil {
			if call != nil {
				m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
			}
			http.Error(w, "the server's answer broke off", http.StatusBadGateway)
			return
		}
		if call != nil {
			body = m.inspect(ctx, t, p, call, body)
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(resp.StatusCode)
		sw := m.streamTo(w)
		_, _ = sw.Write(body)
		sw.done()
	default:
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, maxResponseBytes))
		if call != nil && resp.StatusCode >= 500 {
			m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
		}
	}
}

// relayEvents copies server-sent events, flushing each, until the
// upstream's stream ends or the client stops taking them.
func (m *MCP) relayEvents(ctx context.Context, w *streamWriter, body io.Reader, t target, p auth.Principal, call *callInfo) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); readers.Put(br) }()
	var ev bytes.Buffer
	var data []string
	answered := false
	for {
		line, err := readLine(br, maxResponseBytes)
		if len(line) > 0 {
			trimmed := strings.TrimRight(line, "\r\n")
			if trimmed == "" {
				// The end of an event.
				out := ev.Bytes()
				if call != nil && !answered && len(data) > 0 {
					msg := []byte(strings.Join(data, "\n"))
					if rewritten, mine := m.inspectEvent(ctx, t, p, call, msg); mine {
						answered = true
						if rewritten != nil {
							out = rebuildEvent(ev.Bytes(), rewritten)
						}
					}
				}
				_, _ = w.Write(out)
				_, _ = w.Write([]byte("\n"))
				w.Flush()
				if w.err != nil {
					// The client is gone or stopped reading (cut off after
					// the write stall): the stream ends here. Not the
					// server's failure, so not counted against its version.
					m.log.Sugar().Debugw("client stream ended", "deployment", t.deployment(), "error", w.err)
					if call != nil && !answered {
						m.recordCall(ctx, t, p, call, outcomeTransport, 0, "the client stopped reading its stream")
						if call.abandon != nil {
							call.abandon()
						}
					}
					return
				}
				ev.Reset()
				data = data[:0]
			} else if call != nil && call.noEventIDs && (strings.HasPrefix(trimmed, "id:") || strings.HasPrefix(trimmed, "retry:")) {
				// Dropped: see callInfo.noEventIDs.
			} else {
				ev.WriteString(line)
				if d, ok := strings.CutPrefix(trimmed, "data:"); ok {
					data = append(data, strings.TrimPrefix(d, " "))
				}
				if ev.Len() > maxResponseBytes {
					// An event larger than any answer may be: the upstream
					// misbehaves; end the stream rather than hold it.
					m.log.Sugar().Warnw("an upstream event exceeded the size bound; stream ended", "deployment", t.deployment())
					if call != nil && !answered {
						m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
					}
					return
				}
			}
		}
		if err != nil {
			if ev.Len() > 0 {
				_, _ = w.Write(ev.Bytes())
				w.Flush()
			}
			if call != nil && !answered {
				m.outcomes.add(t.deployment(), call.version, outcomeTransport, call)
				m.recordCall(ctx, t, p, call, outcomeTransport, 0, "the server's stream ended before its answer")
			}
			return
		}
	}
}

// streamWriter writes to a client with each write and flush bounded by
// the write stall (MCPConfig.WriteStall): a client that stops reading is
// cut off by the deadline instead of holding its stream, the upstream's
// and a goroutine for ever. After the first failure every write fails.
type streamWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	err   error
}

func (m *MCP) streamTo(w http.ResponseWriter) *streamWriter {
	return &streamWriter{w: w, rc: http.NewResponseController(w), stall: m.cfg.WriteStall}
}

func (s *streamWriter) arm() {
	if s.stall > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.arm()
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// Flush sends what is buffered.
func (s *streamWriter) Flush() {
	if s.err != nil {
		return
	}
	s.arm()
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
}

// done lifts the deadline, so that the next request on a kept-alive
// connection is not cut by this one's.
func (s *streamWriter) done() {
	if s.stall > 0 && s.err == nil {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// readers are reused across streams: a 16 KiB buffer per request is
// garbage the collector would otherwise chase at every call.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// rebuildEvent replaces an event's data lines with data.
func rebuildEvent(ev, data []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(ev), "\n") {
		if line == "" || strings.HasPrefix(line, "data:") {
			continue
		}
		out.WriteString(line)
	}
	out.WriteString("data: ")
	out.Write(data)
	out.WriteString("\n")
	return out.Bytes()
}

// inspect handles a JSON answer to call.
func (m *MCP) inspect(ctx context.Context, t target, p auth.Principal, call *callInfo, body []byte) []byte {
	if rewritten, mine := m.inspectEvent(ctx, t, p, call, body); mine && rewritten != nil {
		return rewritten
	}
	return body
}

// inspectEvent looks at one message from the upstream: when it answers
// call, it records the outcome and, for tools/list, returns the filtered
// message (nil when unchanged).
func (m *MCP) inspectEvent(ctx context.Context, t target, p auth.Principal, call *callInfo, msg []byte) ([]byte, bool) {
	decoded, err := jsonrpc.DecodeMessage(msg)
	if err != nil {
		return nil, false
	}
	resp, ok := decoded.(*jsonrpc.Response)
	if !ok || resp.ID != call.id {
		return nil, false
	}
	kind := outcomeOK
	switch {
	case resp.Error != nil:
		kind = outcomeRPC
	case call.method == "tools/call":
		var r struct {
			IsError bool `json:"isError"`
		}
		_ = json.Unmarshal(resp.Result, &r)
		if r.IsError {
			kind = outcomeTool
		}
	}
	m.outcomes.add(t.deployment(), call.version, kind, call)
	m.recordCall(ctx, t, p, call, kind, len(msg), "")
	if call.method != "tools/list" || resp.Error != nil {
		return nil, true
	}
	filtered, err := m.filterTools(ctx, t, p, call.version, resp.Result)
	if err != nil {
		resp.Result = nil
		resp.Error = &jsonrpc.Error{Code: codeUnavailable, Message: "the tool list could not be checked; retry"}
	} else {
		resp.Result = filtered
	}
	out, err := jsonrpc.EncodeMessage(resp)
	if err != nil {
		return nil, true
	}
	return out, true
}

// Outcome kinds.
const (
	outcomeOK = iota
	outcomeRPC
	outcomeTransport
	outcomeTimeout
	outcomeTool
	outcomeRefused
)

var outcomeNames = [...]string{"ok", "rpc_error", "transport_error", "timeout", "tool_error", "refused"}

// outcomes gathers call outcomes per deployment and version and reports
// them to the deploy service every second (canary analysis), and counts
// them in metrics.
type outcomes struct {
	m       *MCP
	mu      sync.Mutex
	pending map[string]map[string]*deployv1.CallCounts
}

func newOutcomes(m *MCP) *outcomes {
	return &outcomes{m: m, pending: map[string]map[string]*deployv1.CallCounts{}}
}

func (o *outcomes) refused() { o.m.metrics.calls.WithLabelValues("", "", "refused").Inc() }

func (o *outcomes) add(deployment, version string, kind int, call *callInfo) {
	latency := time.Since(call.start)
	reg, server, _ := strings.Cut(deployment, "/deployments/")
	o.m.metrics.calls.WithLabelValues(reg, server, outcomeNames[kind]).Inc()
	o.m.metrics.latency.WithLabelValues(call.method).Observe(latency.Seconds())
	if version == "" || call.method != "tools/call" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	byVersion := o.pending[deployment]
	if byVersion == nil {
		byVersion = map[string]*deployv1.CallCounts{}
		o.pending[deployment] = byVersion
	}
	c := byVersion[version]
	if c == nil {
		c = &deployv1.CallCounts{LatencySum: durationpb.New(0)}
		byVersion[version] = c
	}
	c.Calls++
	switch kind {
	case outcomeRPC:
		c.RpcErrors++
	case outcomeTransport:
		c.TransportErrors++
	case outcomeTimeout:
		c.Timeouts++
	case outcomeTool:
		c.ToolErrors++
	}
	c.LatencySum = durationpb.New(c.LatencySum.AsDuration() + latency)
}

func (o *outcomes) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.flush(ctx)
		}
	}
}

func (o *outcomes) flush(ctx context.Context) {
	o.mu.Lock()
	pending := o.pending
	o.pending = map[string]map[string]*deployv1.CallCounts{}
	o.mu.Unlock()
	for dep, byVersion := range pending {
		req := &deployv1.ReportCallOutcomesRequest{Name: dep}
		for v, c := range byVersion {
			req.Versions = append(req.Versions, &deployv1.VersionOutcomes{Version: v, Counts: c})
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := o.m.deploy.ReportCallOutcomes(auth.Outgoing(rctx, o.m.cfg.Token), req); err != nil {
			o.m.log.Sugar().Debugw("reporting call outcomes", "deployment", dep, "error", err)
		}
		cancel()
	}
}

// mcpMetrics are the MCP gateway's metrics.
type mcpMetrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	drift   *prometheus.CounterVec
	limited *prometheus.CounterVec
}

func newMCPMetrics(reg prometheus.Registerer) (*mcpMetrics, error) {
	m := &mcpMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pylee_mcp_requests_total",
			Help: "MCP requests answered through the gateway, by registry, server and outcome (ok, rpc_error, transport_error, timeout, tool_error, refused)."},
			[]string{"registry", "server", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pylee_mcp_request_duration_seconds",
			Help: "Time from a client's MCP request to the upstream's answer, by method.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"method"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pylee_mcp_tool_drift_total",
			Help: "Tools seen to differ from the pinned version (hidden, not callable), by registry and server."}, []string{"registry", "server"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pylee_mcp_limited_total",
			Help: "MCP requests answered 429 by a registry's limits, by registry, server and limit."}, []string{"registry", "server", "limit"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.latency, m.drift, m.limited} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// errLineTooLong ends a stream whose line exceeds the bound.
var errLineTooLong = errors.New("an event line exceeds the size bound")

// readLine reads up to and including the next newline, refusing to hold
// more than max bytes of one line.
func readLine(br *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return "", errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return string(line), err
	}
}
