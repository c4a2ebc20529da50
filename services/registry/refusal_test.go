package registry_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/kit/server/servertest"
	"github.com/pyleeai/pylee/services/registry"
)

// collected is an audit sink that keeps what the relay delivers.
type collected struct{ events []*auditv1.Event }

func (c *collected) Append(_ context.Context, evs []*auditv1.Event) error {
	c.events = append(c.events, evs...)
	return nil
}

// startWithOutbox is start, plus a way to read the audit events the
// service wrote to its outbox since the last read.
func startWithOutbox(t *testing.T, url string) (*env, func() []*auditv1.Event) {
	t.Helper()
	st, err := registry.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	z := &testAuthz{}
	for _, u := range []string{"admin", "alice", "bob", "carol"} {
		z.add(grant{"users/" + u, "*", "orgs/acme"})
	}
	srv := server.New(servertest.Config(), zap.NewNop())
	srv.SetAuth(tokens{}, z)
	registry.New(st, aip.NewPageTokens([]byte("k")), z).Register(srv)
	srv.AddCleanup("store", func(context.Context) error { return st.Close() })
	e := &env{client: registryv1.NewRegistryServiceClient(servertest.Start(t, srv)), authz: z}
	db, dialect := st.OutboxDB()
	sink := &collected{}
	relay := outbox.NewRelay(db, dialect, sink, outbox.RelayConfig{}, zap.NewNop())
	return e, func() []*auditv1.Event {
		t.Helper()
		sink.events = nil
		for {
			n, err := relay.DeliverOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return sink.events
			}
		}
	}
}

// Refusals decided in the handler, not by the interceptor (self-approval, a
// second approval, a cancel by someone who may not), are audited like the
// interceptor's: one `denied` event with the action a success records and
// the reason, in the organization's log; the request does not change and
// the call fails with the same code as before.
func TestDecisionRefusalsAreAudited(t *testing.T) {
	for name, db := range backends() {
		t.Run(name, func(t *testing.T) {
			e, events := startWithOutbox(t, db(t))
			e.server(t, "github", "com.acme/github")
			e.publish(t, "github", "1.0.0")
			e.registry(t, "production", &registryv1.Registry{ApprovalRequired: proto.Bool(true), MinApprovals: proto.Int32(2)})
			req := pin(t, e, "alice", "production", "github", "1.0.0").GetApproval()
			e.authz.add(grant{"users/eve", "approvals.get", "orgs/acme"})
			events()

			get := func() *registryv1.Approval {
				t.Helper()
				return must[*registryv1.Approval](t)(e.client.GetApproval(e.as("admin"), &registryv1.GetApprovalRequest{Name: req.Name}))
			}
			refused := func(who, action, reason, permission string, call func() error, code codes.Code) {
				t.Helper()
				before := get()
				wantCode(t, call(), code, who+" "+action)
				if after := get(); !proto.Equal(before, after) {
					t.Fatalf("%s %s: the refusal changed the request:\n%v\n%v", who, action, before, after)
				}
				evs := events()
				if len(evs) != 1 {
					t.Fatalf("%s %s: %d audit events, want one denied event: %v", who, action, len(evs), evs)
				}
				ev := evs[0]
				if ev.Organization != "acme" || ev.Action != action || ev.Outcome != "denied" || ev.Resource != req.Name ||
					ev.Actor.GetPrincipal() != "users/"+who || !strings.Contains(ev.Metadata["reason"], reason) ||
					!strings.HasPrefix(ev.Metadata["method"], "/pylee.registry.v1.RegistryService/") || ev.Metadata["permission"] != permission {
					t.Fatalf("%s %s: event = %v", who, action, ev)
				}
			}
			approve := func(who string) func() error {
				return func() error {
					_, err := e.client.Approve(e.as(who), &registryv1.ApproveRequest{Name: req.Name})
					return err
				}
			}

			refused("alice", "registry.approval.approve", "requested this change and cannot approve it", "", approve("alice"), codes.PermissionDenied)
			if err := approve("bob")(); err != nil {
				t.Fatal(err)
			}
			if evs := events(); len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].Action != "registry.approval.approve" {
				t.Fatalf("approval events = %v", evs)
			}
			refused("bob", "registry.approval.approve", "approved this request already", "", approve("bob"), codes.FailedPrecondition)
			refused("eve", "registry.approval.cancel", "only the requester or an approver may cancel", "approvals.approve", func() error {
				_, err := e.client.CancelApproval(e.as("eve"), &registryv1.CancelApprovalRequest{Name: req.Name})
				return err
			}, codes.PermissionDenied)

			// A request that is no longer pending is a conflict of state,
			// not a refusal of the caller: it records nothing, as a stale
			// etag does not.
			if err := approve("carol")(); err != nil {
				t.Fatal(err)
			}
			events()
			wantCode(t, approve("admin")(), codes.FailedPrecondition, "approve an applied request")
			if evs := events(); len(evs) != 0 {
				t.Fatalf("approving an applied request recorded %v", evs)
			}
		})
	}
}
