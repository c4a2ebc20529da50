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

// Version is an immutable server version. Only status, status_message and
// update_time change after creation.
type Version struct{ ent.Schema }

// Fields of Version.
func (Version) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/servers/{server}/versions/{version}
		field.String("organization").Immutable(),
		field.String("server").Immutable(),
		field.String("version").Immutable(),
		// precedence is the version without build metadata: two versions of
		// equal precedence cannot both exist.
		field.String("precedence").Immutable(),
		field.Bool("prerelease").Immutable(),
		field.Text("server_json").Immutable(),
		field.Text("release_notes").Default("").Immutable(),
		field.Text("tools").Default("[]").Immutable(),
		field.String("digest").Immutable(),
		field.String("creator").Immutable(),
		field.String("status").Default("active"),
		field.String("status_message").Default(""),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
		// observed_tools: for a version published without tools, the tools
		// its server first listed through the gateway, recorded once
		// (tools_observed_time set); not part of the digest.
		field.Text("observed_tools").Default("[]"),
		field.Time("tools_observed_time").Optional().Nillable(),
	}
}

// Indexes of Version.
func (Version) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("server", "precedence").Unique(),
	}
}

// Registry is a registry with its own settings (unset ones inherited).
type Registry struct{ ent.Schema }

// Fields of Registry.
func (Registry) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/registries/{registry}
		field.String("organization").Immutable(),
		field.String("description").Default(""),
		field.String("parent").Default(""),
		// settings is the protojson of a pylee.registry.v1.Registry holding
		// only the inheritable settings.
		field.Text("settings").Default("{}"),
		// entry_revision counts the changes to the registry's entries.
		field.Int64("entry_revision").Default(0),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
		field.Int64("revision").Default(1),
		field.String("create_request_id").Optional().Nillable().Immutable(),
	}
}

// Indexes of Registry.
func (Registry) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization", "id"),
		index.Fields("parent"),
		index.Fields("create_request_id").Unique(),
	}
}

// Entry pins a server in a registry.
type Entry struct{ ent.Schema }

// Fields of Entry.
func (Entry) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/registries/{registry}/entries/{server}
		field.String("organization").Immutable(),
		field.String("registry").Immutable(),
		field.String("server").Immutable(),
		field.String("server_name").Immutable(),
		field.String("version"),
		field.String("version_range").Default(""),
		field.Int64("revision"),
		field.String("pinned_by"),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
	}
}

// Indexes of Entry.
func (Entry) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("registry", "server_name"),
		index.Fields("server"),
	}
}

// EntryChange is one change of a registry's entries, for WatchEntries.
type EntryChange struct{ ent.Schema }

// Fields of EntryChange.
func (EntryChange) Fields() []ent.Field {
	return []ent.Field{
		field.String("registry").Immutable(),
		field.Int64("revision").Immutable(),
		field.String("type").Immutable(),
		// entry is the protojson of the pylee.registry.v1.Entry after the change.
		field.Text("entry").Immutable(),
		field.Time("time").Immutable(),
	}
}

// Indexes of EntryChange.
func (EntryChange) Indexes() []ent.Index {
	return []ent.Index{index.Fields("registry", "revision").Unique()}
}

// Approval is an approval request.
type Approval struct{ ent.Schema }

// Fields of Approval.
func (Approval) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/registries/{registry}/approvals/{uuid}
		field.String("organization").Immutable(),
		field.String("registry").Immutable(),
		field.String("state"),
		// body is the protojson of the pylee.registry.v1.Approval.
		field.Text("body"),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
	}
}

// Indexes of Approval.
func (Approval) Indexes() []ent.Index {
	return []ent.Index{index.Fields("registry", "create_time")}
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
