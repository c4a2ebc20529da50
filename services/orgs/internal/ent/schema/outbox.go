package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"

	"github.com/pyleeai/pylee/kit/outbox"
)

// OutboxEvent is an audit event waiting for delivery to the audit service,
// written in the same transaction as the change it records.
type OutboxEvent struct {
	ent.Schema
}

// Fields of OutboxEvent.
func (OutboxEvent) Fields() []ent.Field { return outbox.Fields() }

// Indexes of OutboxEvent.
func (OutboxEvent) Indexes() []ent.Index { return outbox.Indexes() }

// Annotations of OutboxEvent.
func (OutboxEvent) Annotations() []schema.Annotation { return outbox.Annotations() }
