package audit_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/audit"
)

// TestDeclaredRules: rules declared in the audit protos (buf.validate) are
// enforced by the real server and answered as hand-written ones are:
// INVALID_ARGUMENT naming the field.
func TestDeclaredRules(t *testing.T) {
	e := start(t, dbtest.MigratedSQLiteURL(t, audit.MigrateStore))
	want := func(t *testing.T, err error, fields string) {
		t.Helper()
		var got []string
		for _, d := range status.Convert(err).Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					got = append(got, v.GetField())
				}
			}
		}
		if status.Code(err) != codes.InvalidArgument || strings.Join(got, ",") != fields {
			t.Fatalf("got %v (fields %v), want INVALID_ARGUMENT naming %s", err, got, fields)
		}
	}

	_, err := e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", PageSize: -1})
	want(t, err, "page_size")
	_, err = e.client.VerifyLog(e.reader, &auditv1.VerifyLogRequest{Parent: "orgs/acme", StartSequence: -1})
	want(t, err, "start_sequence")
	_, err = e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{})
	want(t, err, "events")
	evs := make([]*auditv1.Event, 1001)
	for i := range evs {
		evs[i] = newEvent("acme", "orgs.organization.update", i)
	}
	_, err = e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: evs})
	want(t, err, "events")
	noTime := newEvent("acme", "orgs.organization.update", 0)
	noTime.EventTime = nil
	_, err = e.client.AppendEvents(e.ctx, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{newEvent("acme", "orgs.organization.update", 1), noTime}})
	want(t, err, "events[1].event_time")
	// The hand-written rules still run after the declared ones.
	_, err = e.client.ListEvents(e.reader, &auditv1.ListEventsRequest{Parent: "orgs/acme", Filter: `colour = "red"`})
	want(t, err, "filter")
	_, err = e.client.GetEvent(e.reader, &auditv1.GetEventRequest{Name: "orgs/acme/events"})
	want(t, err, "name")
}
