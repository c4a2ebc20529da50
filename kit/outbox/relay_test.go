package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/outbox"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.DropTemplates()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Println("goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// recordingSink stands in for the audit service only: the relay and the
// database under test are real. It fails while down is true and, like the
// audit service, ignores event ids it has seen.
type recordingSink struct {
	mu    sync.Mutex
	down  bool
	calls int
	seen  map[string]bool
	order []string
}

func (s *recordingSink) Append(_ context.Context, evs []*auditv1.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down {
		return errors.New("audit unavailable")
	}
	for _, ev := range evs {
		if !s.seen[ev.Id] {
			s.seen[ev.Id] = true
			s.order = append(s.order, ev.Id)
		}
	}
	return nil
}

func (s *recordingSink) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

const createTable = `CREATE TABLE audit_outbox (id varchar(64) PRIMARY KEY, organization varchar(64) NOT NULL,
	payload bytea NOT NULL, create_time timestamp NOT NULL, delivered_time timestamp NULL)`

func openOutbox(t *testing.T, url string) *db.DB {
	d, err := db.Open(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	ddl := createTable
	if d.Dialect == dialect.SQLite {
		ddl = `CREATE TABLE audit_outbox (id text PRIMARY KEY, organization text NOT NULL, payload blob NOT NULL,
			create_time datetime NOT NULL, delivered_time datetime NULL)`
	}
	if _, err := d.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func insert(t *testing.T, d *db.DB, n int) []string {
	var ids []string
	for i := 0; i < n; i++ {
		ev := &auditv1.Event{Id: fmt.Sprintf("ev-%04d", i), Organization: "acme", Action: "a.b.c", EventTime: timestamppb.Now()}
		rec, err := outbox.NewRecord(ev)
		if err != nil {
			t.Fatal(err)
		}
		q := "INSERT INTO audit_outbox (id, organization, payload, create_time) VALUES (?, ?, ?, ?)"
		if d.Dialect == dialect.Postgres {
			q = "INSERT INTO audit_outbox (id, organization, payload, create_time) VALUES ($1, $2, $3, $4)"
		}
		if _, err := d.Exec(q, rec.EventID, rec.Organization, rec.Payload, rec.CreateTime); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.Id)
	}
	return ids
}

func TestRelay(t *testing.T) {
	for name, url := range map[string]func() string{
		"SQLite": func() string { return dbtest.SQLiteURL(t) },
		"Postgres": func() string {
			return dbtest.PostgresURL(t, "outbox", func(context.Context, string) error { return nil })
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := openOutbox(t, url())
			ids := insert(t, d, 1200)
			sink := &recordingSink{down: true, seen: map[string]bool{}}
			relay := outbox.NewRelay(d.DB, d.Dialect, sink, outbox.RelayConfig{Batch: 500, Poll: 10 * time.Millisecond}, zap.NewNop())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { relay.Run(ctx); close(done) }()
			// The relay retries while the sink is down, and marks nothing.
			waitUntil := time.Now().Add(10 * time.Second)
			for {
				sink.mu.Lock()
				calls := sink.calls
				sink.mu.Unlock()
				if calls >= 3 {
					break
				}
				if time.Now().After(waitUntil) {
					t.Fatalf("relay tried %d times while the sink was down", calls)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n, _ := relay.Pending(context.Background()); n != 1200 {
				t.Fatalf("pending while down = %d", n)
			}
			sink.mu.Lock()
			sink.down = false
			sink.mu.Unlock()
			deadline := time.Now().Add(20 * time.Second)
			for {
				if n, _ := relay.Pending(context.Background()); n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("relay did not drain the outbox")
				}
				relay.Notify()
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			if got := sink.delivered(); fmt.Sprint(got) != fmt.Sprint(ids) {
				t.Fatalf("delivered %d events, in order: %v", len(got), len(got) == len(ids))
			}
			// A new relay (a restart) finds nothing left to send.
			n, err := outbox.NewRelay(d.DB, d.Dialect, sink, outbox.RelayConfig{}, zap.NewNop()).DeliverOnce(context.Background())
			if err != nil || n != 0 {
				t.Fatalf("after restart delivered %d, %v", n, err)
			}
		})
	}
}

func TestChangeCutsLongValues(t *testing.T) {
	long := make([]byte, outbox.MaxValue+10)
	for i := range long {
		long[i] = 'x'
	}
	c := outbox.Change("overview", "short", string(long))
	if c.OldValue != "short" || len(c.NewValue) > outbox.MaxValue+20 {
		t.Fatalf("change = %d bytes", len(c.NewValue))
	}
}
