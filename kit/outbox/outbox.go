// Package outbox is the transactional outbox every Pylee service records its
// audit events with: the event is written into the service's own database in
// the same transaction as the change (so no acknowledged change lacks its
// event), and a Relay delivers pending rows to the audit service, with the
// event id as the idempotency key, until they are acknowledged.
package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/server"
)

// Table is the outbox table of every service.
const Table = "audit_outbox"

// Fields are the ent fields of a service's outbox schema. The id is the
// event id, a UUIDv7: time-ordered, so it also orders delivery, and no
// separate sequence has to be maintained on the write path.
func Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("organization").Immutable(),
		field.Bytes("payload").Immutable(),
		field.Time("create_time").Immutable(),
		field.Time("delivered_time").Optional().Nillable(),
	}
}

// Indexes are the ent indexes of the outbox schema: a partial index of the
// pending rows, which is all the relay reads; delivered rows leave it.
func Indexes() []ent.Index {
	return []ent.Index{index.Fields("id").StorageKey("audit_outbox_pending").
		Annotations(entsql.IndexWhere("delivered_time IS NULL"))}
}

// Annotations name the table.
func Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: Table}}
}

// Record is one outbox row to insert through the service's ent transaction.
type Record struct {
	EventID      string
	Organization string
	Payload      []byte
	CreateTime   time.Time
}

// NewRecord encodes ev for the outbox, cut to its bounds first.
func NewRecord(ev *auditv1.Event) (Record, error) {
	b, err := proto.Marshal(Bound(ev))
	if err != nil {
		return Record{}, fmt.Errorf("encode audit event: %w", err)
	}
	return Record{EventID: ev.GetId(), Organization: ev.GetOrganization(), Payload: b, CreateTime: time.Now().UTC()}, nil
}

// NewEvent starts the event of a call: a new time-ordered id, the time,
// the actor from the authenticated principal, and the request id, client
// address and user agent of the call.
func NewEvent(ctx context.Context, org, action, resource string) *auditv1.Event {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	ev := &auditv1.Event{
		Id: id.String(), Organization: org, EventTime: timestamppb.Now(),
		Action: action, Resource: resource, Outcome: auditlog.OutcomeOK,
		Actor: &auditv1.Actor{Kind: "anonymous"},
	}
	if p, ok := auth.FromContext(ctx); ok {
		ev.Actor = &auditv1.Actor{Principal: p.Name, Kind: string(p.Kind), DisplayName: p.DisplayName}
	}
	m := server.CallMetaFrom(ctx)
	ev.RequestId, ev.ClientAddress, ev.UserAgent = m.RequestID, m.ClientAddress, m.UserAgent
	return ev
}

// MaxValue bounds a recorded old or new value; longer ones are cut.
const MaxValue = 4096

// Change returns a field change with both values cut to MaxValue.
func Change(field, oldValue, newValue string) *auditv1.FieldChange {
	return &auditv1.FieldChange{Field: field, OldValue: cut(oldValue), NewValue: cut(newValue)}
}

func cut(s string) string {
	if len(s) <= MaxValue && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxValue {
		return s
	}
	// Cut on a character boundary.
	end := MaxValue
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "…(truncated)"
}

// Execer runs a statement; an ent transaction generated with the
// sql/execquery feature is one, so Insert joins the change's transaction.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Insert writes ev (if not nil) to the outbox through ex, the transaction
// of the change it records.
func Insert(ctx context.Context, ex Execer, dialectName string, ev *auditv1.Event) error {
	if ev == nil {
		return nil
	}
	rec, err := NewRecord(ev)
	if err != nil {
		return err
	}
	q := "INSERT INTO " + Table + " (id, organization, payload, create_time) VALUES (?, ?, ?, ?)"
	if dialectName == dialect.Postgres {
		q = "INSERT INTO " + Table + " (id, organization, payload, create_time) VALUES ($1, $2, $3, $4)"
	}
	if _, err := ex.ExecContext(ctx, q, rec.EventID, rec.Organization, rec.Payload, rec.CreateTime); err != nil {
		return fmt.Errorf("write audit event to the outbox: %w", err)
	}
	return nil
}
