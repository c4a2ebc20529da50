// Package schema holds the ent schema of the deploy service's database.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/pyleeai/pylee/kit/outbox"
)

// Deployment is what the deploy service must remember of a deployment
// across restarts: the entry it follows (the spec) and its rollout (which
// version is stable, which is rolling out and at which step, which is
// kept warm). Instances are not stored: they run in the deploy process
// and die with it.
type Deployment struct{ ent.Schema }

// Fields of Deployment.
func (Deployment) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").Unique().Immutable(),
		field.String("organization").Immutable(),
		field.String("registry").Immutable(),
		// record is the JSON of the service's deployment record.
		field.Bytes("record"),
		field.Time("update_time"),
	}
}

// Indexes of Deployment.
func (Deployment) Indexes() []ent.Index {
	return []ent.Index{index.Fields("registry"), index.Fields("organization")}
}

// RegistryCursor is the last entry revision of a registry the deploy
// service applied: its watch resumes after it.
type RegistryCursor struct{ ent.Schema }

// Fields of RegistryCursor.
func (RegistryCursor) Fields() []ent.Field {
	return []ent.Field{
		field.String("registry").Unique().Immutable(),
		field.String("organization").Immutable(),
		field.Int64("revision"),
	}
}

// OutboxEvent is an audit event waiting for delivery, written in the same
// transaction as the change it records.
type OutboxEvent struct{ ent.Schema }

// Fields of OutboxEvent.
func (OutboxEvent) Fields() []ent.Field { return outbox.Fields() }

// Indexes of OutboxEvent.
func (OutboxEvent) Indexes() []ent.Index { return outbox.Indexes() }

// Annotations of OutboxEvent.
func (OutboxEvent) Annotations() []schema.Annotation { return outbox.Annotations() }
