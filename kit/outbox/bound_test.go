package outbox_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"entgo.io/ent/dialect"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
)

func TestBound(t *testing.T) {
	huge := strings.Repeat("ü", 900_000)
	ev := &auditv1.Event{
		Id: "x", Organization: "acme", Action: "a.b.c", UserAgent: huge + "\x1b]0;pwn\a", ClientAddress: huge,
		Resource: huge, Actor: &auditv1.Actor{DisplayName: huge}, Metadata: map[string]string{},
	}
	for i := 0; i < 100; i++ {
		ev.Metadata[fmt.Sprint("k", i)] = huge
		ev.Changes = append(ev.Changes, outbox.Change("f", huge, huge))
	}
	outbox.Bound(ev)
	if n := proto.Size(ev); n > outbox.MaxEventBytes {
		t.Fatalf("bounded event is %d bytes", n)
	}
	if n := utf8.RuneCountInString(ev.UserAgent); n > outbox.MaxUserAgent+1 || strings.ContainsAny(ev.UserAgent, "\x1b\a") {
		t.Fatalf("user agent: %d characters, %q...", n, ev.UserAgent[:20])
	}
	if !utf8.ValidString(outbox.CutText("a\xffb", 10)) {
		t.Fatal("CutText kept invalid UTF-8")
	}
	if got := outbox.CutText("héllo wörld", 5); got != "héllo…" {
		t.Fatalf("CutText counts characters: %q", got)
	}
	if got := outbox.CutText("plain", 10); got != "plain" {
		t.Fatalf("CutText changed a short text: %q", got)
	}
}

// refusingSink refuses, like the audit service, any batch holding an event
// marked poison, and any batch over the gRPC message limit.
type refusingSink struct {
	recordingSink
	maxBatch int
}

func (s *refusingSink) Append(ctx context.Context, evs []*auditv1.Event) error {
	size := 0
	for _, ev := range evs {
		size += proto.Size(ev)
		if ev.Metadata["poison"] != "" {
			return fmt.Errorf("append: %w", status.Error(codes.InvalidArgument, "events[0].action: poison"))
		}
	}
	if size > 4<<20 {
		return status.Error(codes.ResourceExhausted, "received message larger than max")
	}
	s.mu.Lock()
	if len(evs) > s.maxBatch {
		s.maxBatch = len(evs)
	}
	s.mu.Unlock()
	return s.recordingSink.Append(ctx, evs)
}

func insertEvents(t *testing.T, d *db.DB, evs []*auditv1.Event, bound bool) {
	t.Helper()
	q := "INSERT INTO audit_outbox (id, organization, payload, create_time) VALUES (?, ?, ?, ?)"
	if d.Dialect == dialect.Postgres {
		q = "INSERT INTO audit_outbox (id, organization, payload, create_time) VALUES ($1, $2, $3, $4)"
	}
	for _, ev := range evs {
		var payload []byte
		if bound {
			rec, err := outbox.NewRecord(ev)
			if err != nil {
				t.Fatal(err)
			}
			payload = rec.Payload
		} else {
			// As a row written before events were bounded.
			payload, _ = proto.Marshal(ev)
		}
		if _, err := d.Exec(q, ev.Id, ev.Organization, payload, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayBatchesAreBoundedAndNothingBlocks: 60 events with 900 KB user
// agents written before bounding (the reported 53 MB batch), one event the
// sink refuses, and ordinary events behind them: everything is delivered,
// in order, in batches the sink accepts.
func TestRelayBatchesAreBoundedAndNothingBlocks(t *testing.T) {
	d := openOutbox(t, dbtest.SQLiteURL(t))
	ua := strings.Repeat("x", 900_000)
	var evs []*auditv1.Event
	for i := 0; i < 60; i++ {
		evs = append(evs, &auditv1.Event{Id: fmt.Sprintf("ev-%04d", i), Organization: "-", Action: "a.b.c", UserAgent: ua, EventTime: timestamppb.Now()})
	}
	evs = append(evs, &auditv1.Event{Id: "ev-0060", Organization: "acme", Action: "a.b.c", EventTime: timestamppb.Now(), Metadata: map[string]string{"poison": "1"}})
	for i := 61; i < 200; i++ {
		evs = append(evs, &auditv1.Event{Id: fmt.Sprintf("ev-%04d", i), Organization: "acme", Action: "a.b.c", EventTime: timestamppb.Now()})
	}
	insertEvents(t, d, evs, false)
	sink := &refusingSink{recordingSink: recordingSink{seen: map[string]bool{}}}
	relay := outbox.NewRelay(d.DB, d.Dialect, sink, outbox.RelayConfig{Poll: 10 * time.Millisecond}, zap.NewNop())
	for i := 0; i < 500; i++ {
		if n, _ := relay.Pending(context.Background()); n == 0 {
			break
		}
		if _, err := relay.DeliverOnce(context.Background()); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if n, _ := relay.Pending(context.Background()); n != 0 {
		t.Fatalf("%d events still pending", n)
	}
	got := sink.delivered()
	if len(got) != 200 {
		t.Fatalf("delivered %d of 200", len(got))
	}
	for i, id := range got {
		if id != fmt.Sprintf("ev-%04d", i) {
			t.Fatalf("event %d is %s: out of order", i, id)
		}
	}
}

func TestDeniedAggregator(t *testing.T) {
	var mu sync.Mutex
	var recorded []*auditv1.Event
	agg := outbox.NewDeniedAggregator(func(_ context.Context, ev *auditv1.Event) error {
		mu.Lock()
		defer mu.Unlock()
		recorded = append(recorded, ev)
		return nil
	}, time.Hour, zap.NewNop())
	d := server.Denied{Method: "/pylee.orgs.v1.OrgsService/GetOrganization", Resource: "orgs/nope", Reason: "unauthenticated: token not valid"}
	anon := func(addr string) context.Context {
		// Client facts come from the request id interceptor, as for a call
		// from that peer (a forwarded address is believed only from a
		// trusted proxy).
		md := metadata.Pairs("grpcgateway-user-agent", strings.Repeat("u", 900_000))
		tcp, _ := net.ResolveTCPAddr("tcp", addr)
		return peer.NewContext(metadata.NewIncomingContext(context.Background(), md), &peer.Peer{Addr: tcp})
	}
	for i := 0; i < 1000; i++ {
		if !agg.Add(server.CallMetaContext(anon(fmt.Sprintf("10.0.0.%d:%d", i%2, 4000+i))), d) {
			t.Fatal("an anonymous refusal was not aggregated")
		}
	}
	authed := auth.WithPrincipal(context.Background(), auth.Principal{Name: "users/bob"})
	if agg.Add(authed, d) {
		t.Fatal("an authenticated refusal was aggregated")
	}
	agg.Flush(context.Background())
	if len(recorded) != 2 {
		t.Fatalf("recorded %d events for 2 sources, want 2", len(recorded))
	}
	var total int
	for _, ev := range recorded {
		if ev.Organization != auditlog.NoOrg || ev.Outcome != auditlog.OutcomeDenied || ev.Action != outbox.DeniedAction {
			t.Fatalf("aggregated event = %v", ev)
		}
		if len(ev.UserAgent) > outbox.MaxUserAgent*4 || strings.Contains(ev.ClientAddress, ":") {
			t.Fatalf("user agent %d bytes, source %q", len(ev.UserAgent), ev.ClientAddress)
		}
		var n int
		fmt.Sscan(ev.Metadata["count"], &n)
		total += n
	}
	if total != 1000 {
		t.Fatalf("counted %d refusals, want 1000", total)
	}
	agg.Flush(context.Background())
	if len(recorded) != 2 {
		t.Fatal("an empty window recorded events")
	}
}
