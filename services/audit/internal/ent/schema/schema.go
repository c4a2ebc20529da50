// Package schema holds the ent schema of the audit service's database.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Change is one changed field of an event, as stored.
type Change struct {
	Field    string `json:"field"`
	OldValue string `json:"old,omitempty"`
	NewValue string `json:"new,omitempty"`
}

// Event is one sealed audit event. Rows are never updated or deleted; on
// PostgreSQL a trigger enforces it.
type Event struct {
	ent.Schema
}

// Annotations of Event.
func (Event) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "audit_events"}}
}

// Fields of Event.
func (Event) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("organization").Immutable(),
		field.Int64("sequence").Immutable(),
		field.Time("event_time").Immutable(),
		field.String("actor_principal").Default("").Immutable(),
		field.String("actor_kind").Default("").Immutable(),
		field.String("actor_display_name").Default("").Immutable(),
		field.String("action").Immutable(),
		field.String("resource").Default("").Immutable(),
		field.String("outcome").Immutable(),
		field.String("request_id").Default("").Immutable(),
		field.String("client_address").Default("").Immutable(),
		field.String("user_agent").Default("").Immutable(),
		field.JSON("changes", []Change{}).Optional().Immutable(),
		field.JSON("metadata", map[string]string{}).Optional().Immutable(),
		field.String("previous_hash").Immutable(),
		field.String("hash").Immutable(),
		field.Time("receive_time").Immutable(),
	}
}

// Indexes of Event.
func (Event) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization", "sequence").Unique(),
		index.Fields("organization", "event_time"),
	}
}

// ChainHead is the last event of an organization's chain and its last
// checkpoint.
type ChainHead struct {
	ent.Schema
}

// Annotations of ChainHead.
func (ChainHead) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "audit_chain_heads"}}
}

// Fields of ChainHead.
func (ChainHead) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // the organization
		field.Int64("sequence"),
		field.String("hash"),
		field.Int64("checkpoint_sequence").Default(0),
		// The organization of this id was last created after the event at
		// epoch_sequence (0: the chain is one organization's), at
		// epoch_time; what precedes belongs to earlier, deleted ones.
		field.Int64("epoch_sequence").Default(0),
		field.Time("epoch_time").Optional().Nillable(),
	}
}

// Checkpoint is a signed statement of a chain's head.
type Checkpoint struct {
	ent.Schema
}

// Annotations of Checkpoint.
func (Checkpoint) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "audit_checkpoints"}}
}

// Fields of Checkpoint.
func (Checkpoint) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization").Immutable(),
		field.Int64("sequence").Immutable(),
		field.String("hash").Immutable(),
		field.Time("create_time").Immutable(),
		field.String("signature").Immutable(),
		field.String("public_key").Immutable(),
	}
}

// Indexes of Checkpoint.
func (Checkpoint) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization", "sequence").Unique()}
}
