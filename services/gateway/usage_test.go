package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// flakySink is an audit service that can be down, and keeps each event
// id once, as the real one does.
type flakySink struct {
	mu    sync.Mutex
	down  bool
	seen  map[string]int
	calls int
}

func (f *flakySink) Append(_ context.Context, events []*auditv1.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return errors.New("audit is down")
	}
	for _, ev := range events {
		f.seen[ev.GetId()]++
	}
	return nil
}

func (f *flakySink) count() (unique, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.seen {
		unique++
		total += n
	}
	return unique, total
}

// 10,000 calls recorded while audit is down, the gateway restarted in the
// middle: when audit returns, every event arrives, none lost; the audit
// service skips the few a restart may send twice, as it does by id.
func TestUsageSurvivesAuditDownAndRestart(t *testing.T) {
	dir := t.TempDir()
	sink := &flakySink{down: true, seen: map[string]int{}}
	record := func(u *usage, from, to int) {
		for i := from; i < to; i++ {
			u.record(&auditv1.Event{Id: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Organization: "acme", Action: "tools.call", Outcome: "ok"})
		}
	}
	start := func() (*usage, context.CancelFunc, chan struct{}) {
		u, err := newUsage(dir, sink, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { u.run(ctx); close(done) }()
		return u, cancel, done
	}
	u, stop, done := start()
	begin := time.Now()
	record(u, 0, 5000)
	handover := time.Since(begin)
	stop()
	<-done // the gateway restarts; what was queued is spooled
	u, stop, done = start()
	record(u, 5000, 10000)
	time.Sleep(300 * time.Millisecond)
	if n, _ := sink.count(); n != 0 {
		t.Fatalf("%d events delivered while audit was down", n)
	}
	sink.mu.Lock()
	sink.down = false
	sink.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, _ := sink.count(); n == 10000 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := sink.count()
			t.Fatalf("%d of 10,000 events delivered after audit returned", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	if _, total := sink.count(); total != 10000 {
		t.Fatalf("%d deliveries of 10,000 events: some twice", total)
	}
	t.Logf("handing 5,000 events over took %v (%v each)", handover, handover/5000)
}
