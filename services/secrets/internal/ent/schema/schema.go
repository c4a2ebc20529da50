// Package schema holds the ent schema of the secrets service's database.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/pyleeai/pylee/kit/outbox"
)

// SealedValue is one version of a secret or variable kept by the built-in
// keyring: the value encrypted under a data key of its own, the data key
// wrapped by the key-encryption key. Unused with Vault.
type SealedValue struct{ ent.Schema }

// Fields of SealedValue.
func (SealedValue) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization").Immutable(),
		// key is the resource name, {scope}/{secrets|variables}/{NAME}.
		field.String("key").Immutable(),
		field.String("scope").Immutable(),
		field.Int("kind").Immutable(),
		field.String("name").Immutable(),
		field.Int64("version").Immutable(),
		// ciphertext is AES-256-GCM under the data key: nonce, then
		// sealed value and tag; its associated data binds organization,
		// key and version.
		field.Bytes("ciphertext").Immutable(),
		// wrapped_key is the data key sealed by the key-encryption key
		// kek_id (nonce, sealed key, tag), bound to the same data.
		field.Bytes("wrapped_key"),
		field.String("kek_id"),
		field.String("fingerprint").Immutable(),
		field.String("creator").Immutable(),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of SealedValue.
func (SealedValue) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("key", "version").Unique(),
		index.Fields("scope", "kind", "name"),
		index.Fields("kek_id"),
	}
}

// ValueChange records a change of an organization's secrets and
// variables (never a value), numbered by the organization's revision, for
// WatchValues.
type ValueChange struct{ ent.Schema }

// Fields of ValueChange.
func (ValueChange) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization").Immutable(),
		field.Int64("revision").Immutable(),
		field.String("key").Immutable(),
		field.Int64("version").Immutable(),
		field.String("type").Immutable(),
		field.Time("time").Immutable(),
	}
}

// Indexes of ValueChange.
func (ValueChange) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization", "revision").Unique()}
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
