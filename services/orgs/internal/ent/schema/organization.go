// Package schema holds the ent schema of the orgs service's database.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Organization is the tenant. Its id is the client-chosen slug of
// `orgs/{org}`.
type Organization struct {
	ent.Schema
}

// Fields of Organization.
func (Organization) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MinLen(3).MaxLen(63).Immutable(),
		field.String("display_name").Default("").MaxLen(800), // bytes: 200 characters of up to 4 bytes
		field.String("description").Default("").MaxLen(4000), // bytes: 1,000 characters
		field.Text("overview").Default(""),
		field.Time("create_time").Immutable(),
		field.Time("update_time"),
		// revision counts changes; the etag is derived from it.
		field.Int64("revision").Default(1),
		// oidc is the organization's identity provider (issuer, audience,
		// jwks_uri, groups_claim); oidc_issuer is indexed to route JWTs.
		field.JSON("oidc", map[string]string{}).Optional(),
		field.String("oidc_issuer").Default(""),
		// create_request_id makes Create idempotent (AIP-155).
		field.String("create_request_id").Optional().Nillable().Immutable().MaxLen(128).
			SchemaType(map[string]string{dialect.Postgres: "varchar(128)"}),
	}
}

// Indexes of Organization.
func (Organization) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("create_request_id").Unique(),
		index.Fields("oidc_issuer"),
	}
}
