package gateway

import (
	"context"
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"golang.org/x/time/rate"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
)

// codeRateLimited is the JSON-RPC error of a request over a rate limit
// (in the implementation-defined server error range).
const codeRateLimited = -32029

// maxLimitKeys bounds the rate limiters and session tables kept.
const maxLimitKeys = 100_000

// limiters are the token buckets of the registries' McpLimits, by key
// (a caller in a registry, or a server), each refilled at its limit per
// minute with a burst of ten seconds' worth. They are this replica's.
type limiters struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	rpm  int32
	used time.Time
}

// take spends a token of key's bucket (rpm per minute; 0: no limit) and
// returns how long to wait when there is none.
func (l *limiters) take(key string, rpm int32, now time.Time) time.Duration {
	if rpm <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil || b.rpm != rpm {
		if l.m == nil {
			l.m = map[string]*bucket{}
		}
		if len(l.m) >= maxLimitKeys {
			l.evict(now)
		}
		burst := max(1, int(math.Ceil(float64(rpm)/6)))
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(rpm)/60), burst), rpm: rpm}
		l.m[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// evict drops the buckets unused for a minute: they are full again by
// then (a burst refills in ten seconds), so nothing is lost. If every
// bucket is in use, all go.
func (l *limiters) evict(now time.Time) {
	for k, b := range l.m {
		if now.Sub(b.used) > time.Minute {
			delete(l.m, k)
		}
	}
	if len(l.m) >= maxLimitKeys {
		clear(l.m)
	}
}

// sessionTable counts the sessions each caller holds with each server on
// this replica: a session is held from its initialize until its DELETE or
// until it has not been used for the idle timeout (after which the
// deploy service's bridge ends it too).
type sessionTable struct {
	mu   sync.Mutex
	idle time.Duration
	m    map[string]map[[16]byte]time.Time // deployment + caller -> session -> last use
}

func sessionKey(id string) [16]byte {
	sum := sha256.Sum256([]byte(id))
	var k [16]byte
	copy(k[:], sum[:16])
	return k
}

// open reports whether the caller may open one more session (max; 0: any).
func (s *sessionTable) open(owner string, max int32, now time.Time) bool {
	if max <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	live := 0
	for id, used := range s.m[owner] {
		if now.Sub(used) > s.idle {
			delete(s.m[owner], id)
			continue
		}
		live++
	}
	return live < int(max)
}

// touch records the use of session id.
func (s *sessionTable) touch(owner, id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]map[[16]byte]time.Time{}
	}
	sess := s.m[owner]
	if sess == nil {
		if len(s.m) >= maxLimitKeys {
			s.m = map[string]map[[16]byte]time.Time{} // rare: start afresh
		}
		sess = map[[16]byte]time.Time{}
		s.m[owner] = sess
	}
	if len(sess) >= 10_000 {
		return // far beyond any limit: not tracked further
	}
	sess[sessionKey(id)] = now
}

// end forgets session id (its DELETE).
func (s *sessionTable) end(owner, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m[owner], sessionKey(id))
	if len(s.m[owner]) == 0 {
		delete(s.m, owner)
	}
}

// limits are the registry's McpLimits in force (defaults when the registry
// cannot be read: the request is refused later anyway).
func (m *MCP) limits(ctx context.Context, t target) *registryv1.McpLimits {
	s, err := m.settings(ctx, t)
	if err != nil || s.GetMcpLimits() == nil {
		return &registryv1.McpLimits{MaxRequestBytes: maxMessageBytes}
	}
	return s.GetMcpLimits()
}

// overRate answers 429 when a request of p to t is over the registry's
// rate limits (per caller in the registry, per server), with Retry-After
// and a JSON-RPC error naming the limit; false when it may go on.
func (m *MCP) overRate(ctx context.Context, w http.ResponseWriter, t target, p auth.Principal, lim *registryv1.McpLimits, id jsonrpc.ID, call *callInfo) bool {
	now := time.Now()
	which, wait := "", time.Duration(0)
	if d := m.rates.take("c\x00"+t.registryName()+"\x00"+p.Name, lim.GetRequestsPerMinutePerCaller(), now); d > 0 {
		which, wait = "requests_per_minute_per_caller", d
	} else if d := m.rates.take("s\x00"+t.deployment(), lim.GetRequestsPerMinutePerServer(), now); d > 0 {
		which, wait = "requests_per_minute_per_server", d
	}
	if which == "" {
		return false
	}
	secs := int(math.Ceil(wait.Seconds()))
	msg := "rate limited: the registry's " + which + " is reached; retry after " + strconv.Itoa(secs) + "s"
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeRPCError(w, http.StatusTooManyRequests, id, codeRateLimited, msg)
	m.metrics.limited.WithLabelValues(t.registryName(), t.server, which).Inc()
	if call != nil {
		m.recordCall(ctx, t, p, call, outcomeRefused, 0, msg)
	}
	return true
}

// tooManySessions answers 429 when p holds the registry's sessions per
// caller with t already.
func (m *MCP) tooManySessions(w http.ResponseWriter, t target, p auth.Principal, lim *registryv1.McpLimits, id jsonrpc.ID) bool {
	if m.sessions.open(t.deployment()+"\x00"+p.Name, lim.GetSessionsPerCaller(), time.Now()) {
		return false
	}
	secs := int(math.Ceil(m.sessions.idle.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(min(secs, 60)))
	writeRPCError(w, http.StatusTooManyRequests, id, codeRateLimited, "too many sessions: the registry's sessions_per_caller ("+
		strconv.Itoa(int(lim.GetSessionsPerCaller()))+") are open with this server; end one (DELETE) or let one idle out")
	m.metrics.limited.WithLabelValues(t.registryName(), t.server, "sessions_per_caller").Inc()
	return true
}
