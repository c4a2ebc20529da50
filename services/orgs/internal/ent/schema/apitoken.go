package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// APIToken is an API token, stored only as the SHA-256 of its value.
type APIToken struct {
	ent.Schema
}

// Fields of APIToken.
func (APIToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.Bytes("token_hash").Unique().Immutable().Sensitive(),
		// principal is the resource name of the owner, e.g. users/admin.
		field.String("principal").Immutable(),
		field.String("display_name").Default(""),
		field.Time("create_time").Immutable(),
		field.Time("expire_time").Optional().Nillable(),
		field.Time("last_use_time").Optional().Nillable(),
	}
}
