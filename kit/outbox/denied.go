package outbox

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/server"
)

// DeniedEvent is the audit event of a call refused by authentication or
// authorization: in the log of the organization the call named (`-` when
// it named none), outcome `denied`. The presented credential is never part
// of it.
func DeniedEvent(ctx context.Context, d server.Denied) *auditv1.Event {
	org := auditlog.NoOrg
	if id := names.OrgID(d.Resource); id != "" && id != "-" {
		org = id
	}
	ev := NewEvent(ctx, org, ActionOf(d.Method), d.Resource)
	ev.Outcome = auditlog.OutcomeDenied
	ev.Metadata = map[string]string{"method": d.Method, "permission": d.Permission, "reason": d.Reason}
	return ev
}

// ActionOf is the audit action of a full method name or a plain HTTP
// route's name (server.ActionFor).
func ActionOf(fullMethod string) string { return server.ActionFor(fullMethod) }

// DeniedAggregator counts refusals of unauthenticated callers instead of
// recording one event per request: anyone can send those, as fast as they
// like, naming any organization. They go to the installation's log (`-`)
// as one event per source address, reason and window, with a count.
type DeniedAggregator struct {
	record func(context.Context, *auditv1.Event) error
	window time.Duration
	log    *zap.Logger

	mu      sync.Mutex
	start   time.Time
	buckets map[deniedKey]*deniedBucket
}

type deniedKey struct{ source, reason string }

type deniedBucket struct {
	count     int64
	methods   []string
	userAgent string
}

const (
	// maxDeniedBuckets bounds the distinct (source, reason) pairs one window
	// keeps; the rest are counted under the source "other".
	maxDeniedBuckets = 1000
	maxDeniedMethods = 8
	// DeniedAction is the action of an aggregated refusal.
	DeniedAction = "auth.credential.refuse"
)

// NewDeniedAggregator returns an aggregator that writes its events with
// record every window (one minute when 0); Run flushes them.
func NewDeniedAggregator(record func(context.Context, *auditv1.Event) error, window time.Duration, log *zap.Logger) *DeniedAggregator {
	if window <= 0 {
		window = time.Minute
	}
	return &DeniedAggregator{record: record, window: window, log: log, start: time.Now(), buckets: map[deniedKey]*deniedBucket{}}
}

// Add takes d if its caller is unauthenticated and reports whether it did.
// It never blocks on storage.
func (a *DeniedAggregator) Add(ctx context.Context, d server.Denied) bool {
	if a == nil {
		return false
	}
	if _, ok := auth.FromContext(ctx); ok {
		return false
	}
	m := server.CallMetaFrom(ctx)
	source := m.ClientAddress
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host // one source whatever port each connection used
	}
	key := deniedKey{source: CutText(source, MaxClientAddress), reason: CutText(d.Reason, 200)}
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.buckets[key]
	if !ok {
		if len(a.buckets) >= maxDeniedBuckets {
			key.source = "other"
			if b, ok = a.buckets[key]; !ok {
				b = &deniedBucket{}
				a.buckets[key] = b
			}
		} else {
			b = &deniedBucket{}
			a.buckets[key] = b
		}
	}
	b.count++
	if len(b.methods) < maxDeniedMethods && !slices.Contains(b.methods, d.Method) {
		b.methods = append(b.methods, d.Method)
	}
	b.userAgent = CutText(m.UserAgent, MaxUserAgent)
	return true
}

// Run flushes the counts every window until ctx ends, and once more then.
func (a *DeniedAggregator) Run(ctx context.Context) {
	t := time.NewTicker(a.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			a.Flush(ctx)
		}
	}
}

// Flush records one event per bucket of the window that ends now.
func (a *DeniedAggregator) Flush(ctx context.Context) {
	a.mu.Lock()
	buckets, start := a.buckets, a.start
	a.buckets, a.start = map[deniedKey]*deniedBucket{}, time.Now()
	a.mu.Unlock()
	end := time.Now().UTC()
	for k, b := range buckets {
		ev := NewEvent(context.Background(), auditlog.NoOrg, DeniedAction, "")
		ev.Outcome = auditlog.OutcomeDenied
		ev.ClientAddress, ev.UserAgent = k.source, b.userAgent
		ev.Metadata = map[string]string{
			"count":        strconv.FormatInt(b.count, 10),
			"reason":       k.reason,
			"methods":      strings.Join(b.methods, ","),
			"window_start": start.UTC().Format(time.RFC3339),
			"window_end":   end.Format(time.RFC3339),
		}
		if err := a.record(ctx, ev); err != nil {
			a.log.Error("record aggregated refusals", zap.String("source", k.source), zap.Int64("count", b.count), zap.Error(err))
		}
	}
}
