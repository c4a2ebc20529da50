// Package backend declares where secret and variable values are kept: the
// built-in keyring (package keyring, in the secrets service's database)
// or HashiCorp Vault KV v2 (package vault). The secrets service calls a
// backend inside its own unit of work (the Tx argument), so with the
// keyring a value, its change record and its audit event commit together;
// Vault ignores the transaction and is written before it commits.
package backend

import (
	"context"
	"fmt"
	"time"
)

// Kind tells secrets (write-only values) from variables (readable
// configuration).
type Kind int

// Kinds.
const (
	Secret Kind = iota + 1
	Variable
)

// Collection is the kind's collection in resource names.
func (k Kind) Collection() string {
	if k == Variable {
		return "variables"
	}
	return "secrets"
}

// Key names one secret or variable.
type Key struct {
	// Org is the organization id: a ciphertext is bound to it.
	Org string
	// Scope is `orgs/{org}`, `orgs/{org}/registries/{r}`,
	// `orgs/{org}/servers/{s}` or `orgs/{org}/users/{u}`.
	Scope string
	Kind  Kind
	// Name is the NAME, `[A-Za-z_][A-Za-z0-9_]*`.
	Name string
}

// String is the key's resource name, `{scope}/{secrets|variables}/{NAME}`.
func (k Key) String() string { return k.Scope + "/" + k.Kind.Collection() + "/" + k.Name }

// Meta describes a version of a value, never the value.
type Meta struct {
	Key     Key
	Version int64
	// Fingerprint is the keyed fingerprint of the value, computed by the
	// service and stored beside it.
	Fingerprint string
	// Creator set this version.
	Creator string
	// UpdateTime is when this version was set; CreateTime when the first
	// one was.
	UpdateTime, CreateTime time.Time
}

// Write is what a Put stores beside the value.
type Write struct {
	Fingerprint string
	Creator     string
}

// Any is the cas of a Put that writes whatever the current version is.
const Any int64 = -1

// Tx is the secrets service's unit of work, opaque to backends that do
// not keep their data in its database.
type Tx interface{}

// Backend keeps the versions of values. Every method's error wraps one of
// kit/errs' sentinels when it is the caller's doing: ErrNotFound for a key
// (or version) that is not set, ErrEtagMismatch for a check-and-set that
// does not hold, ErrUnavailable when the backend cannot be reached (and
// then nothing changed).
type Backend interface {
	// Name is "keyring" or "vault".
	Name() string
	// Put stores value as key's next version and returns its metadata.
	// cas is the version the caller expects to be current: Any, 0 (the
	// key must not be set), or a version; otherwise ErrEtagMismatch and
	// nothing changes. Of concurrent Puts expecting the same version, one
	// wins.
	Put(ctx context.Context, tx Tx, key Key, value []byte, cas int64, w Write) (Meta, error)
	// Get returns the value and metadata of version (0: the current one).
	// A deleted key is not found, nor are its versions.
	Get(ctx context.Context, tx Tx, key Key, version int64) ([]byte, Meta, error)
	// List returns the current metadata of every key of kind at scope,
	// ordered by name.
	List(ctx context.Context, tx Tx, scope string, kind Kind) ([]Meta, error)
	// Versions returns key's versions, newest first.
	Versions(ctx context.Context, tx Tx, key Key) ([]Meta, error)
	// Delete removes key with every version; ErrNotFound if it is not set.
	// Setting it again starts at version 1.
	Delete(ctx context.Context, tx Tx, key Key) error
	// DeleteScope removes every key at scope (exactly that scope: an
	// organization's registries, servers and users are scopes of their
	// own) and returns how many keys there were.
	DeleteScope(ctx context.Context, tx Tx, scope string) (int, error)
}

// MaxValueBytes bounds a value.
const MaxValueBytes = 64 << 10

// ErrTooLarge is returned for a value over MaxValueBytes.
var ErrTooLarge = fmt.Errorf("a value is at most %d bytes", MaxValueBytes)

// TreePurger is a backend that can delete every value at a scope and below
// it (an organization's registries, servers and users) by what it holds,
// not by what the secrets service's change log says: a value written to
// Vault whose unit of work then failed is in no log, and must not outlive
// its organization.
type TreePurger interface {
	PurgeTree(ctx context.Context, tx Tx, scope string) (int, error)
}
