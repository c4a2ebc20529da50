// Package keyring is the built-in secrets backend, the default of
// `pylee up`: values kept in the secrets service's own database, sealed by
// envelope encryption. Each version of a value gets a random 256-bit data
// key; the value is sealed under it with AES-256-GCM, and the data key is
// sealed (wrapped) under the key-encryption key (KEK). Both seals carry
// associated data binding the organization, the value's resource name and
// its version, so a ciphertext copied to another name, scope, organization
// or version does not open. The KEK never touches the database: it comes
// from --keyring-key or a 0600 file in the data directory. Rotation
// re-wraps the data keys under a new KEK (Rewrap) while the old one still
// opens what is not re-wrapped yet.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/ent"
	entsealed "github.com/pyleeai/pylee/services/secrets/internal/ent/sealedvalue"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

// KeySize is the size of a key-encryption key: AES-256.
const KeySize = 32

// KeyFile is the KEK's file in the data directory when none is given.
const KeyFile = "keyring.key"

// KEK is a key-encryption key.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// ID identifies the key without revealing it: the first 8 bytes of the
// SHA-256 of a domain-separated hash of it, in hex.
func (k KEK) ID() string { return k.id }

// ParseKEK reads a base64 (standard or URL, padded or not) 32-byte key.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil || len(raw) != KeySize {
		return KEK{}, fmt.Errorf("a keyring key is %d random bytes in base64 (openssl rand -base64 32)", KeySize)
	}
	return newKEK(raw)
}

func newKEK(raw []byte) (KEK, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return KEK{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return KEK{}, err
	}
	sum := sha256.Sum256(append([]byte("pylee keyring key id\x00"), raw...))
	return KEK{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// LoadOrCreateKEK reads the KEK file in dir, creating it (0600, random)
// when it does not exist. A file readable by others is refused.
func LoadOrCreateKEK(dir string) (KEK, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, KeySize)
		if _, err := rand.Read(raw); err != nil {
			return KEK{}, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return KEK{}, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return KEK{}, err
		}
		if _, err := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
			f.Close()
			return KEK{}, err
		}
		if err := f.Close(); err != nil {
			return KEK{}, err
		}
		return newKEK(raw)
	}
	if err != nil {
		return KEK{}, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return KEK{}, fmt.Errorf("%s is readable by others (mode %o): chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return KEK{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Keyring is the backend. keys[0] wraps new data keys; every key opens
// what it wrapped.
type Keyring struct {
	st   *store.Store
	keys []KEK
}

// New returns the keyring over st with current KEK and, during a
// rotation, the previous ones.
func New(st *store.Store, current KEK, previous ...KEK) *Keyring {
	return &Keyring{st: st, keys: append([]KEK{current}, previous...)}
}

// Name implements backend.Backend.
func (*Keyring) Name() string { return "keyring" }

// Check opens one sealed value with the keys: a keyring started with the
// wrong key fails here, with a message naming the key ids, not at the
// first read.
func (k *Keyring) Check(ctx context.Context) error {
	ids := map[string]bool{}
	for _, kk := range k.keys {
		ids[kk.id] = true
	}
	rows, err := k.st.Read().Client().SealedValue.Query().Unique(true).Select(entsealed.FieldKekID).Strings(ctx)
	if err != nil {
		return err
	}
	for _, id := range rows {
		if !ids[id] {
			return fmt.Errorf("the keyring's values are sealed under key %s, which this process was not given (it has %s): start it with the --keyring-key that sealed them",
				id, strings.Join(k.ids(), ", "))
		}
	}
	// The ids match: prove the key opens a value (an id is a hash; a
	// match makes a wrong key unlikely, this makes it impossible).
	row, err := k.st.Read().Client().SealedValue.Query().First(ctx)
	if ent.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := k.open(row); err != nil {
		return fmt.Errorf("the keyring key does not open the values sealed under it: %w", err)
	}
	return nil
}

func (k *Keyring) ids() []string {
	out := make([]string, len(k.keys))
	for i, kk := range k.keys {
		out[i] = kk.id
	}
	return out
}

// associated binds a seal to the organization, the value's name and its
// version; purpose tells the value's seal from its data key's.
func associated(purpose, org, key string, version int64) []byte {
	b := make([]byte, 0, 64+len(org)+len(key))
	b = append(b, "pylee keyring v1\x00"...)
	b = append(b, purpose...)
	b = append(b, 0)
	b = append(b, org...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(version))
}

func seal(aead cipher.AEAD, plain, ad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, ad), nil
}

func unseal(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
}

// ErrTampered is returned for a sealed value that does not open: moved,
// altered, or sealed under a key this process does not have.
var ErrTampered = errors.New("a sealed value does not open: it was altered or moved, or its key is missing")

func (k *Keyring) kek(id string) (KEK, bool) {
	for _, kk := range k.keys {
		if kk.id == id {
			return kk, true
		}
	}
	return KEK{}, false
}

// open returns the value of a row.
func (k *Keyring) open(r *ent.SealedValue) ([]byte, error) {
	kek, ok := k.kek(r.KekID)
	if !ok {
		return nil, fmt.Errorf("%s version %d: sealed under key %s: %w", r.Key, r.Version, r.KekID, ErrTampered)
	}
	dek, err := unseal(kek.aead, r.WrappedKey, associated("data key", r.Organization, r.Key, r.Version))
	if err != nil {
		return nil, fmt.Errorf("%s version %d: %w", r.Key, r.Version, ErrTampered)
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	v, err := unseal(aead, r.Ciphertext, associated("value", r.Organization, r.Key, r.Version))
	if err != nil {
		return nil, fmt.Errorf("%s version %d: %w", r.Key, r.Version, ErrTampered)
	}
	return v, nil
}

func txOf(st *store.Store, tx backend.Tx) *store.Tx {
	if t, ok := tx.(*store.Tx); ok && t != nil {
		return t
	}
	return st.Read()
}

// versionsOf returns key's rows, newest first, without their sealed
// bytes.
func versionsOf(ctx context.Context, t *store.Tx, key backend.Key) ([]*ent.SealedValue, error) {
	return t.Client().SealedValue.Query().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org)).
		Order(ent.Desc(entsealed.FieldVersion)).
		Select(entsealed.FieldVersion, entsealed.FieldFingerprint, entsealed.FieldCreator, entsealed.FieldCreateTime).All(ctx)
}

// MaxVersions is how many versions of a value the keyring keeps: a write
// beyond it drops the oldest (Vault's KV v2 keeps 10 by default).
const MaxVersions = 100

func toMeta(key backend.Key, r *ent.SealedValue, first *ent.SealedValue) backend.Meta {
	m := backend.Meta{Key: key, Version: r.Version, Fingerprint: r.Fingerprint, Creator: r.Creator, UpdateTime: r.CreateTime.UTC(), CreateTime: r.CreateTime.UTC()}
	if first != nil {
		m.CreateTime = first.CreateTime.UTC()
	}
	return m
}

// Put implements backend.Backend.
func (k *Keyring) Put(ctx context.Context, tx backend.Tx, key backend.Key, value []byte, cas int64, w backend.Write) (backend.Meta, error) {
	if len(value) > backend.MaxValueBytes {
		return backend.Meta{}, fmt.Errorf("%w: %w", backend.ErrTooLarge, errs.ErrInvalidArgument)
	}
	t := txOf(k.st, tx)
	if err := t.LockOrganization(ctx, key.Org); err != nil {
		return backend.Meta{}, err
	}
	rows, err := t.Client().SealedValue.Query().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org)).
		Order(ent.Desc(entsealed.FieldVersion)).Select(entsealed.FieldVersion, entsealed.FieldCreateTime).All(ctx)
	if err != nil {
		return backend.Meta{}, err
	}
	now := t.Now()
	var current int64
	created := now
	if len(rows) > 0 {
		current, created = rows[0].Version, rows[len(rows)-1].CreateTime.UTC()
	}
	if cas != backend.Any && cas != current {
		return backend.Meta{}, fmt.Errorf("%s is at version %d, not %d: %w", key, current, cas, errs.ErrEtagMismatch)
	}
	version := current + 1
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return backend.Meta{}, err
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return backend.Meta{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return backend.Meta{}, err
	}
	ct, err := seal(aead, value, associated("value", key.Org, key.String(), version))
	if err != nil {
		return backend.Meta{}, err
	}
	wrapped, err := seal(k.keys[0].aead, dek, associated("data key", key.Org, key.String(), version))
	if err != nil {
		return backend.Meta{}, err
	}
	err = t.Client().SealedValue.Create().SetOrganization(key.Org).SetKey(key.String()).SetScope(key.Scope).SetKind(int(key.Kind)).
		SetName(key.Name).SetVersion(version).SetCiphertext(ct).SetWrappedKey(wrapped).SetKekID(k.keys[0].id).
		SetFingerprint(w.Fingerprint).SetCreator(w.Creator).SetCreateTime(now).Exec(ctx)
	if ent.IsConstraintError(err) {
		return backend.Meta{}, fmt.Errorf("%s version %d was written meanwhile: %w", key, version, errs.ErrEtagMismatch)
	}
	if err != nil {
		return backend.Meta{}, err
	}
	if version > MaxVersions {
		if _, err := t.Client().SealedValue.Delete().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org),
			entsealed.VersionLTE(version-MaxVersions)).Exec(ctx); err != nil {
			return backend.Meta{}, err
		}
	}
	return backend.Meta{Key: key, Version: version, Fingerprint: w.Fingerprint, Creator: w.Creator, UpdateTime: now, CreateTime: created}, nil
}

// Get implements backend.Backend. It reads the one row it opens, and the
// first version's creation time.
func (k *Keyring) Get(ctx context.Context, tx backend.Tx, key backend.Key, version int64) ([]byte, backend.Meta, error) {
	t := txOf(k.st, tx)
	q := t.Client().SealedValue.Query().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org))
	if version != 0 {
		q.Where(entsealed.Version(version))
	}
	r, err := q.Order(ent.Desc(entsealed.FieldVersion)).First(ctx)
	if ent.IsNotFound(err) {
		if version != 0 {
			return nil, backend.Meta{}, fmt.Errorf("%s version %d: %w", key, version, errs.ErrNotFound)
		}
		return nil, backend.Meta{}, fmt.Errorf("%s: %w", key, errs.ErrNotFound)
	}
	if err != nil {
		return nil, backend.Meta{}, err
	}
	first, err := t.Client().SealedValue.Query().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org)).
		Order(ent.Asc(entsealed.FieldVersion)).Select(entsealed.FieldCreateTime).First(ctx)
	if err != nil {
		return nil, backend.Meta{}, err
	}
	v, err := k.open(r)
	if err != nil {
		return nil, backend.Meta{}, err
	}
	return v, toMeta(key, r, first), nil
}

// List implements backend.Backend.
func (k *Keyring) List(ctx context.Context, tx backend.Tx, scope string, kind backend.Kind) ([]backend.Meta, error) {
	rows, err := txOf(k.st, tx).Client().SealedValue.Query().Where(entsealed.Scope(scope), entsealed.Kind(int(kind))).
		Order(ent.Asc(entsealed.FieldName), ent.Desc(entsealed.FieldVersion)).
		Select(entsealed.FieldOrganization, entsealed.FieldName, entsealed.FieldVersion, entsealed.FieldFingerprint,
			entsealed.FieldCreator, entsealed.FieldCreateTime).All(ctx)
	if err != nil {
		return nil, err
	}
	var out []backend.Meta
	for i, r := range rows {
		key := backend.Key{Org: r.Organization, Scope: scope, Kind: kind, Name: r.Name}
		if i > 0 && rows[i-1].Name == r.Name {
			out[len(out)-1].CreateTime = r.CreateTime.UTC() // older: the first version is last
			continue
		}
		out = append(out, toMeta(key, r, nil))
	}
	return out, nil
}

// Versions implements backend.Backend.
func (k *Keyring) Versions(ctx context.Context, tx backend.Tx, key backend.Key) ([]backend.Meta, error) {
	rows, err := versionsOf(ctx, txOf(k.st, tx), key)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: %w", key, errs.ErrNotFound)
	}
	out := make([]backend.Meta, len(rows))
	for i, r := range rows {
		out[i] = toMeta(key, r, rows[len(rows)-1])
	}
	return out, nil
}

// Delete implements backend.Backend.
func (k *Keyring) Delete(ctx context.Context, tx backend.Tx, key backend.Key) error {
	t := txOf(k.st, tx)
	if err := t.LockOrganization(ctx, key.Org); err != nil {
		return err
	}
	n, err := t.Client().SealedValue.Delete().Where(entsealed.Key(key.String()), entsealed.Organization(key.Org)).Exec(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", key, errs.ErrNotFound)
	}
	return nil
}

// DeleteScope implements backend.Backend.
func (k *Keyring) DeleteScope(ctx context.Context, tx backend.Tx, scope string) (int, error) {
	t := txOf(k.st, tx)
	keys, err := t.Client().SealedValue.Query().Where(entsealed.Scope(scope)).Unique(true).Select(entsealed.FieldKey).Strings(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := t.Client().SealedValue.Delete().Where(entsealed.Scope(scope)).Exec(ctx); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// Rewrap seals every data key not yet under the current KEK under it, in
// batches of one transaction each, and returns how many it re-wrapped.
// Values stay readable throughout: a process holding both keys opens
// either wrapping.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := k.st.Tx(ctx, func(t *store.Tx) error {
			rows, err := t.Client().SealedValue.Query().Where(entsealed.KekIDNEQ(k.keys[0].id)).Limit(200).All(ctx)
			if err != nil {
				return err
			}
			for _, r := range rows {
				old, ok := k.kek(r.KekID)
				if !ok {
					return fmt.Errorf("%s version %d is sealed under key %s, which was not given", r.Key, r.Version, r.KekID)
				}
				ad := associated("data key", r.Organization, r.Key, r.Version)
				dek, err := unseal(old.aead, r.WrappedKey, ad)
				if err != nil {
					return fmt.Errorf("%s version %d: %w", r.Key, r.Version, ErrTampered)
				}
				wrapped, err := seal(k.keys[0].aead, dek, ad)
				if err != nil {
					return err
				}
				if err := t.Client().SealedValue.UpdateOne(r).SetWrappedKey(wrapped).SetKekID(k.keys[0].id).Exec(ctx); err != nil {
					return err
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// PurgeTree implements backend.TreePurger: every value at scope and below.
func (k *Keyring) PurgeTree(ctx context.Context, tx backend.Tx, scope string) (int, error) {
	t := txOf(k.st, tx)
	keys, err := t.Client().SealedValue.Query().Where(entsealed.Or(entsealed.Scope(scope), entsealed.ScopeHasPrefix(scope+"/"))).
		Unique(true).Select(entsealed.FieldKey).Strings(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := t.Client().SealedValue.Delete().Where(entsealed.Or(entsealed.Scope(scope), entsealed.ScopeHasPrefix(scope+"/"))).Exec(ctx); err != nil {
		return 0, err
	}
	return len(keys), nil
}
