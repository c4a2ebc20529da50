package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/kit/server/servertest"
	"github.com/pyleeai/pylee/services/audit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.DropTemplates()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const serviceSecret = "pyl_test_service_token_0123456789abcdef"

// serviceToken is the orgs target's service identity, which appends.
var serviceToken = auth.ServiceTokenFor(config.NewSecret(serviceSecret), "orgs").Reveal()

type env struct {
	client auditv1.AuditServiceClient
	store  *audit.Store
	svc    *audit.Service
	key    ed25519.PrivateKey
	ctx    context.Context // carries a service credential (orgs), which appends
	reader context.Context // carries a user credential, which reads
}

func start(t *testing.T, dbURL string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := audit.OpenStore(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	svc := audit.New(st, key, aip.NewPageTokens([]byte("k")), zap.NewNop())
	srv := server.New(servertest.Config(), zap.NewNop())
	srv.SetAuth(auth.Multi{auth.ServiceTokens{Secret: config.NewSecret(serviceSecret)}, userAuthn{}}, serviceOnlyAuthz{})
	svc.Register(srv)
	srv.AddCleanup("store", func(context.Context) error { return st.Close() })
	conn := servertest.Start(t, srv)
	return &env{client: auditv1.NewAuditServiceClient(conn), store: st, svc: svc, key: key,
		ctx:    metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+serviceToken),
		reader: metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer pyl_user")}
}

// serviceOnlyAuthz lets users do what is not for services only, so these
// tests exercise the service; decisions themselves are tested in orgs.
type serviceOnlyAuthz struct{}

func (serviceOnlyAuthz) Authorize(_ context.Context, p auth.Principal, permission, _ string) error {
	if auth.ServiceOnlyPermissions[permission] && p.Kind != auth.KindService {
		return errs.ErrPermissionDenied
	}
	return nil
}

// userAuthn accepts one user token, to show users cannot append.
type userAuthn struct{}

func (userAuthn) Authenticate(_ context.Context, c config.Secret) (auth.Principal, error) {
	if c.Reveal() == "pyl_user" {
		return auth.Principal{Name: "users/u", Kind: auth.KindUser}, nil
	}
	return auth.Principal{}, status.Error(codes.Unauthenticated, "no")
}

func newEvent(org, action string, i int) *auditv1.Event {
	return &auditv1.Event{
		Id: uuid.Must(uuid.NewV7()).String(), Organization: org, EventTime: timestamppb.Now(),
		Actor:  &auditv1.Actor{Principal: "users/admin", Kind: "user"},
		Action: action, Resource: "orgs/" + org, Outcome: auditlog.OutcomeOK,
		Changes: []*auditv1.FieldChange{{Field: "display_name", NewValue: fmt.Sprint("v", i)}},
	}
}

func appendN(t *testing.T, e *env, org string, n int) []*auditv1.Event {
	t.Helper()
	var evs []*auditv1.Event
	for i := 0; i < n; i++ {
		evs = append(evs, newEvent(org, "orgs.organization.update", i))
	}
	for start := 0; start < n; start += 1000 {
		end := min(start+1000, n)
		if _, err := e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: evs[start:end]}); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"SQLite":   func(t *testing.T) string { return dbtest.MigratedSQLiteURL(t, audit.MigrateStore) },
		"Postgres": func(t *testing.T) string { return dbtest.PostgresURL(t, "audit", audit.MigrateStore) },
	}
}

func TestAppendListVerifyExport(t *testing.T) {
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) { testAppendListVerifyExport(t, start(t, db(t))) })
	}
}

func testAppendListVerifyExport(t *testing.T, e *env) {
	evs := appendN(t, e, "acme", 5)
	// Idempotent: the same events again are all duplicates.
	resp, err := e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: append(evs[:2], newEvent("acme", "orgs.organization.delete", 9))})
	if err != nil || resp.Appended != 1 || resp.Duplicates != 2 {
		t.Fatalf("re-append = %v, %v", resp, err)
	}
	// A user cannot append.
	userCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer pyl_user")
	if _, err := e.client.AppendEvents(userCtx, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{newEvent("acme", "a.b.c", 0)}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("user append: %v", err)
	}
	// Bad events are refused naming the field.
	bad := newEvent("acme", "nodots", 0)
	if _, err := e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{bad}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "events[0].action") {
		t.Fatalf("bad append: %v", err)
	}
	// List: newest first, in pages, with filters.
	p1, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", PageSize: 4})
	if err != nil || len(p1.Events) != 4 || p1.Events[0].Sequence != 6 || p1.NextPageToken == "" {
		t.Fatalf("page 1 = %v, %v", p1, err)
	}
	p2, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", PageSize: 4, PageToken: p1.NextPageToken})
	if err != nil || len(p2.Events) != 2 || p2.Events[1].Sequence != 1 || p2.NextPageToken != "" {
		t.Fatalf("page 2 = %v, %v", p2, err)
	}
	f, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", Filter: `action : "orgs.organization.del" AND outcome = "ok" AND actor = "users/admin"`})
	if err != nil || len(f.Events) != 1 || f.Events[0].Action != "orgs.organization.delete" {
		t.Fatalf("filtered = %v, %v", f, err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if f, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", Filter: `event_time >= "` + future + `"`}); err != nil || len(f.Events) != 0 {
		t.Fatalf("time filter = %v, %v", f, err)
	}
	if _, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", Filter: `hash = "x"`}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad filter: %v", err)
	}
	got, err := e.client.GetEvent(e.reader, &auditv1.GetEventRequest{Name: p1.Events[0].Name})
	if err != nil || got.Hash != p1.Events[0].Hash {
		t.Fatalf("get = %v, %v", got, err)
	}
	if _, err := e.client.GetEvent(e.reader, &auditv1.GetEventRequest{Name: "orgs/other/events/" + got.Id}); status.Code(err) != codes.NotFound {
		t.Fatalf("get from another org: %v", err)
	}
	// Verify and export.
	v, err := e.client.VerifyLog(e.reader, &auditv1.VerifyLogRequest{Parent: "orgs/acme"})
	if err != nil || !v.Ok || v.Checked != 6 {
		t.Fatalf("verify = %v, %v", v, err)
	}
	file := exportFile(t, e, "acme")
	res, err := auditlog.VerifyExport(bytes.NewReader(file), e.key.Public().(ed25519.PublicKey))
	if err != nil || res.Events != 6 {
		t.Fatalf("export verify = %+v, %v", res, err)
	}
	cp, err := e.client.GetCheckpoint(e.reader, &auditv1.GetCheckpointRequest{Parent: "orgs/acme"})
	if err != nil || cp.Sequence != 6 || auditlog.VerifyCheckpoint(e.key.Public().(ed25519.PublicKey), cp) != nil {
		t.Fatalf("checkpoint = %v, %v", cp, err)
	}
	pk, err := e.client.GetPublicKey(e.reader, &auditv1.GetPublicKeyRequest{})
	if err != nil || pk.PublicKey != auditlog.EncodePublicKey(e.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("public key = %v, %v", pk, err)
	}
}

func exportFile(t *testing.T, e *env, org string) []byte {
	t.Helper()
	stream, err := e.client.ExportEvents(e.reader, &auditv1.ExportEventsRequest{Parent: "orgs/" + org})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := auditlog.WriteRecord(&buf, rec); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointEvery1000(t *testing.T) {
	e := start(t, dbtest.MigratedSQLiteURL(t, audit.MigrateStore))
	appendN(t, e, "acme", 1500)
	cps, err := e.store.Checkpoints(context.Background(), "acme", 1, 0)
	if err != nil || len(cps) != 1 || cps[0].Sequence != 1000 {
		t.Fatalf("checkpoints = %v, %v", cps, err)
	}
	// The periodic checkpointer covers the rest within its interval.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.RunCheckpointer(ctx, 20*time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, cpSeq, _ := e.store.Head(context.Background(), "acme")
		if cpSeq == 1500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpointer did not reach the head (at %d)", cpSeq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// disableAppendOnly lets a test play the attacker with direct database
// access, which the triggers otherwise refuse.
func disableAppendOnly(t *testing.T, e *env) {
	t.Helper()
	d := e.store.DB()
	var stmts []string
	if d.Dialect == dialect.Postgres {
		stmts = []string{"ALTER TABLE audit_events DISABLE TRIGGER USER"}
	} else {
		stmts = []string{"DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"}
	}
	for _, s := range stmts {
		if _, err := d.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendOnlyTriggers(t *testing.T) {
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := start(t, db(t))
			appendN(t, e, "acme", 3)
			d := e.store.DB()
			for _, q := range []string{
				"UPDATE audit_events SET action = 'x.y.z' WHERE sequence = 2",
				"DELETE FROM audit_events WHERE sequence = 3",
			} {
				if _, err := d.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err = %v, want the append-only refusal", q, err)
				}
			}
			if d.Dialect == dialect.Postgres {
				if _, err := d.Exec("TRUNCATE audit_events"); err == nil {
					t.Error("TRUNCATE allowed")
				}
			}
			if n, _ := e.store.CountEvents(context.Background(), "acme"); n != 3 {
				t.Fatalf("events = %d after refused changes", n)
			}
		})
	}
}

func TestTamperInDatabase(t *testing.T) {
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				name    string
				tamper  []string
				wantSeq int64
				reason  string
			}{
				{"flip a byte", []string{"UPDATE audit_events SET resource = 'orgs/acmf' WHERE sequence = 4"}, 4, "content does not match"},
				{"delete an event", []string{"DELETE FROM audit_events WHERE sequence = 3"}, 3, "sequence 4 where 3"},
				{"swap two", []string{
					"UPDATE audit_events SET sequence = -5 WHERE sequence = 5",
					"UPDATE audit_events SET sequence = 5 WHERE sequence = 6",
					"UPDATE audit_events SET sequence = 6 WHERE sequence = -5",
				}, 5, "previous hash differs"},
				{"drop the tail", []string{"DELETE FROM audit_events WHERE sequence >= 7"}, 7, "removed"},
				{"fork the chain", nil, 4, "does not match the signed checkpoint"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := start(t, db(t))
					appendN(t, e, "acme", 4)
					if _, err := e.svc.Checkpoint(context.Background(), "acme"); err != nil { // checkpoint at 4
						t.Fatal(err)
					}
					appendN(t, e, "acme", 4)                                                  // 5..8
					if _, err := e.svc.Checkpoint(context.Background(), "acme"); err != nil { // checkpoint at 8
						t.Fatal(err)
					}
					disableAppendOnly(t, e)
					stmts := tt.tamper
					if tt.tamper == nil {
						stmts = forkStatements(t, e)
					}
					for _, s := range stmts {
						if _, err := e.store.DB().Exec(s); err != nil {
							t.Fatalf("%s: %v", s, err)
						}
					}
					v, err := e.client.VerifyLog(e.reader, &auditv1.VerifyLogRequest{Parent: "orgs/acme"})
					if err != nil {
						t.Fatal(err)
					}
					if v.Ok || v.FirstBadSequence != tt.wantSeq || !strings.Contains(v.Reason, tt.reason) {
						t.Fatalf("verify = ok=%v seq=%d reason=%q event=%q; want seq %d, %q", v.Ok, v.FirstBadSequence, v.Reason, v.FirstBadEvent, tt.wantSeq, tt.reason)
					}
				})
			}
		})
	}
}

// forkStatements rewrite event 3 and re-chain every later event, as an
// attacker with database access but without the signing key would.
func forkStatements(t *testing.T, e *env) []string {
	ctx := context.Background()
	var evs []*auditv1.Event
	if err := e.store.ScanChain(ctx, "acme", 1, 0, func(ev *auditv1.Event) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	evs[2].Changes[0].NewValue = "forged"
	var stmts []string
	prev := evs[1].Hash
	for _, ev := range evs[2:] {
		auditlog.Seal(ev, ev.Sequence, prev)
		prev = ev.Hash
		stmts = append(stmts, fmt.Sprintf("UPDATE audit_events SET previous_hash = '%s', hash = '%s' WHERE id = '%s'", ev.PreviousHash, ev.Hash, ev.Id))
	}
	stmts = append(stmts, `UPDATE audit_events SET changes = '[{"field":"display_name","new":"forged"}]' WHERE id = '`+evs[2].Id+`'`)
	return stmts
}

// TestOnlyOrgsStartsAnIncarnation: an organization's creation (which
// hides what came before from its members) is accepted from the orgs
// service only, and no event may come from the future.
func TestOnlyOrgsStartsAnIncarnation(t *testing.T) {
	e := start(t, dbtest.MigratedSQLiteURL(t, audit.MigrateStore))
	registry := metadata.AppendToOutgoingContext(context.Background(), "authorization",
		"Bearer "+auth.ServiceTokenFor(config.NewSecret(serviceSecret), "registry").Reveal())
	create := newEvent("acme", auditlog.ActionOrganizationCreate, 0)
	if _, err := e.client.AppendEvents(registry, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{create}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("create recorded by the registry service: %v", err)
	}
	if _, err := e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{create}}); err != nil {
		t.Fatalf("create recorded by the orgs service: %v", err)
	}
	future := newEvent("acme", "registry.server.create", 1)
	future.EventTime = timestamppb.New(time.Now().Add(time.Hour))
	if _, err := e.client.AppendEvents(registry, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{future}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an event from the future: %v", err)
	}
}
