// Package schema holds the ent schema of the registry service's database.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/pyleeai/pylee/kit/outbox"
)

// Server is an MCP server of an organization. The id is its resource name.
type Server struct{ ent.Schema }

// Fields of Server.
func (Server) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/servers/{server}
		field.String("organization").Immutable(),
		field.String("server_name").Immutable(),
		field.String("title").Default(""),
		field.String("description").Default(""),
		field.JSON("repository", map[string]string{}).Optional(),
		field.String("website_url").Default(""),
		field.JSON("icons", []map[string]any{}).Optional(),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
		field.Int64("revision").Default(1),
		field.String("create_request_id").Optional().Nillable().Immutable(),
	}
}

// Indexes of Server.
func (Server) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization", "server_name").Unique(),
		index.Fields("create_request_id").Unique(),
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
