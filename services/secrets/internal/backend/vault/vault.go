// Package vault is the secrets backend on HashiCorp Vault's KV version 2
// engine, the production choice: each Pylee version of a value is a Vault
// version, and every write is a check-and-set.
//
// Layout: `<mount>/data/<prefix>/<scope>/<secrets|variables>/<NAME>`, for
// example secret/data/pylee/orgs/acme/registries/prod/secrets/GITHUB_TOKEN.
// A version's data holds the value in base64 (field "value", so binary
// values survive JSON) and, beside it, the fingerprint and creator of that
// version; the key's creation time is its metadata's created_time.
//
// Vault keeps as many versions as the mount's (or the key's) max_versions
// says, 10 by default: older versions are not found any more.
package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
)

// Config says where Vault is and how to log in. Either Token or RoleID and
// SecretID (AppRole) are set. TLS settings come from Vault's usual
// environment variables (VAULT_CACERT, VAULT_CLIENT_CERT, ...); VAULT_ADDR,
// VAULT_TOKEN and VAULT_NAMESPACE are not read, the fields below are.
type Config struct {
	// Addr is Vault's address, such as https://vault.internal:8200.
	Addr string
	// Token is a Vault token. It is not renewed: the operator gives one
	// that lives long enough (or a periodic token renewed by an agent).
	Token config.Secret
	// RoleID and SecretID log in with AppRole at auth/<AppRoleMount>/login.
	// The token that login returns is replaced by a new login when Vault
	// refuses it (it expired).
	RoleID, SecretID config.Secret
	// AppRoleMount is where AppRole is enabled; "approle" when empty.
	AppRoleMount string
	// Namespace is the Vault Enterprise namespace; none when empty.
	Namespace string
	// Mount is the KV v2 engine's path; "secret" when empty.
	Mount string
	// Prefix is the folder under the mount that Pylee owns; "pylee" when
	// empty.
	Prefix string
	// Timeout bounds one request to Vault; 10 s when zero.
	Timeout time.Duration
}

// Backend keeps values in Vault KV v2. It is safe for concurrent use.
//
// Every method ignores its Tx: that is the secrets service's database
// transaction, and Vault is not part of it. A write reaches Vault at once
// and stays even if the transaction later rolls back; the service then
// has no record of that version, and the next write supersedes it.
type Backend struct {
	client  *api.Client
	kv      *api.KVv2
	mount   string
	prefix  string
	addr    string
	approle *approle // nil with a static token
}

type approle struct {
	client           *api.Client // carries no token, so a stale one is never sent with a login
	path             string
	roleID, secretID config.Secret
	mu               sync.Mutex // one login at a time
}

const (
	fieldValue       = "value"
	fieldFingerprint = "fingerprint"
	fieldCreator     = "creator"
	// anyAttempts bounds the read-then-write rounds of a Put with cas Any
	// that keeps losing to other writers.
	anyAttempts = 50
	casMismatch = "check-and-set parameter did not match"
)

var (
	pathSegment = regexp.MustCompile(`^[A-Za-z0-9_.@+-]+$`) // '@' and '+': users named by e-mail
	nameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// New connects to Vault as cfg says, logging in with AppRole if that is
// how it authenticates.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Addr == "" {
		return nil, errors.New("vault: the address is not set")
	}
	if cfg.Token.IsZero() == (cfg.RoleID.IsZero() || cfg.SecretID.IsZero()) {
		return nil, errors.New("vault: set either a token or an AppRole role id and secret id")
	}
	b := &Backend{mount: or(cfg.Mount, "secret"), prefix: or(cfg.Prefix, "pylee"), addr: cfg.Addr}
	b.mount = strings.Trim(b.mount, "/")
	b.prefix = strings.Trim(b.prefix, "/")
	for _, p := range []string{b.mount, b.prefix} {
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("vault: mount and prefix: %w", err)
		}
	}
	var err error
	if b.client, err = newClient(cfg); err != nil {
		return nil, err
	}
	b.kv = b.client.KVv2(b.mount)
	if !cfg.Token.IsZero() {
		b.client.SetToken(cfg.Token.Reveal())
		return b, nil
	}
	b.approle = &approle{path: "auth/" + strings.Trim(or(cfg.AppRoleMount, "approle"), "/") + "/login",
		roleID: cfg.RoleID, secretID: cfg.SecretID}
	if b.approle.client, err = newClient(cfg); err != nil {
		return nil, err
	}
	if err := b.login(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func newClient(cfg Config) (*api.Client, error) {
	c := api.DefaultConfig()
	if c.Error != nil {
		return nil, fmt.Errorf("vault: client configuration: %w", c.Error)
	}
	c.Address, c.AgentAddress = cfg.Addr, ""
	c.Timeout = cfg.Timeout
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	client, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	client.ClearToken() // NewClient takes VAULT_TOKEN from the environment
	client.ClearNamespace()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return client, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// login logs in with AppRole and makes the new token the client's.
func (b *Backend) login(ctx context.Context) error {
	s, err := b.approle.client.Logical().WriteWithContext(ctx, b.approle.path, map[string]any{
		"role_id": b.approle.roleID.Reveal(), "secret_id": b.approle.secretID.Reveal()})
	if err != nil {
		return b.wrap(ctx, "vault: AppRole login", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return errors.New("vault: AppRole login returned no token")
	}
	b.client.SetToken(s.Auth.ClientToken)
	return nil
}

// call runs op and, when Vault refuses an AppRole token (it expired), logs
// in again and runs op once more. A static token is not retried.
func (b *Backend) call(ctx context.Context, op func() error) error {
	token := b.client.Token()
	err := op()
	var re *api.ResponseError
	if err == nil || b.approle == nil || !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		return err
	}
	b.approle.mu.Lock()
	if b.client.Token() == token { // nobody logged in again meanwhile
		err = b.login(ctx)
	} else {
		err = nil
	}
	b.approle.mu.Unlock()
	if err != nil {
		return err
	}
	return op()
}

// wrap turns an error of the Vault client into one that wraps a kit/errs
// sentinel where one applies. Its text names the operation, the key path
// and Vault's own message, never a value or a token: values travel only in
// request bodies, which no error repeats.
func (b *Backend) wrap(ctx context.Context, what string, err error) error {
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		msg := strings.Join(re.Errors, "; ")
		if re.RawError { // not Vault's JSON: maybe a proxy's page, keep it out
			msg = "an answer that is not Vault's"
		}
		switch {
		case re.StatusCode == http.StatusBadRequest && strings.Contains(msg, casMismatch):
			return fmt.Errorf("%s: %w", what, errs.ErrEtagMismatch)
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("%s: vault answered %d (%s): %w", what, re.StatusCode, msg, errs.ErrUnavailable)
		default:
			return fmt.Errorf("%s: vault answered %d (%s)", what, re.StatusCode, msg)
		}
	case ctx.Err() != nil: // the caller gave up, Vault did not fail
		return fmt.Errorf("%s: %w", what, ctx.Err())
	default: // refused, reset, timed out (the client's own timeout), TLS
		return fmt.Errorf("%s: vault at %s cannot be reached: %w: %w", what, b.addr, errs.ErrUnavailable, err)
	}
}

// Name implements backend.Backend.
func (*Backend) Name() string { return "vault" }

// Check makes sure Vault answers, the token is accepted and the mount is
// a KV version 2 engine, so a misconfiguration shows at start.
func (b *Backend) Check(ctx context.Context) error {
	var s *api.Secret
	err := b.call(ctx, func() (err error) {
		s, err = b.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+b.mount)
		return err
	})
	if err != nil {
		return b.wrap(ctx, "vault: check the mount "+b.mount, err)
	}
	if s == nil || s.Data["type"] != "kv" {
		return fmt.Errorf("vault: %s is not a KV engine (or the token may not use it)", b.mount)
	}
	if opts, _ := s.Data["options"].(map[string]any); opts == nil || opts["version"] != "2" {
		return fmt.Errorf("vault: %s is a KV engine of version 1, not 2", b.mount)
	}
	return nil
}

func checkPath(p string) error {
	for _, seg := range strings.Split(p, "/") {
		if !pathSegment.MatchString(seg) || seg == "." || seg == ".." {
			return fmt.Errorf("%q is not a path of plain segments: %w", p, errs.ErrInvalidArgument)
		}
	}
	return nil
}

// scopePath checks scope and returns its folder under the mount.
func (b *Backend) scopePath(scope string, kind backend.Kind) (string, error) {
	if !strings.HasPrefix(scope, "orgs/") {
		return "", fmt.Errorf("scope %q is not an organization's: %w", scope, errs.ErrInvalidArgument)
	}
	if err := checkPath(scope); err != nil {
		return "", err
	}
	if kind != backend.Secret && kind != backend.Variable {
		return "", fmt.Errorf("kind %d: %w", kind, errs.ErrInvalidArgument)
	}
	return b.prefix + "/" + scope + "/" + kind.Collection(), nil
}

// path checks key and returns its path under the mount.
func (b *Backend) path(key backend.Key) (string, error) {
	dir, err := b.scopePath(key.Scope, key.Kind)
	if err != nil {
		return "", err
	}
	if !nameRE.MatchString(key.Name) {
		return "", fmt.Errorf("%q is not a NAME: %w", key.Name, errs.ErrInvalidArgument)
	}
	if orgOf(key.Scope) != key.Org {
		return "", fmt.Errorf("%s is not in organization %q: %w", key, key.Org, errs.ErrInvalidArgument)
	}
	return dir + "/" + key.Name, nil
}

func orgOf(scope string) string {
	org, _, _ := strings.Cut(strings.TrimPrefix(scope, "orgs/"), "/")
	return org
}

// metadata returns the key's metadata, nil if it is not set.
func (b *Backend) metadata(ctx context.Context, key backend.Key, p string) (*api.KVMetadata, error) {
	var md *api.KVMetadata
	err := b.call(ctx, func() (err error) { md, err = b.kv.GetMetadata(ctx, p); return err })
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("vault: read the metadata of %s", key), err)
	}
	return md, nil
}

// version reads one version, nil if it is not there (never was, pruned,
// deleted or destroyed).
func (b *Backend) version(ctx context.Context, key backend.Key, p string, version int64) (*api.KVSecret, error) {
	var s *api.KVSecret
	err := b.call(ctx, func() (err error) { s, err = b.kv.GetVersion(ctx, p, int(version)); return err })
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("vault: read %s version %d", key, version), err)
	}
	if s.Data == nil || s.VersionMetadata == nil || !live(*s.VersionMetadata) {
		return nil, nil
	}
	return s, nil
}

func live(v api.KVVersionMetadata) bool { return v.DeletionTime.IsZero() && !v.Destroyed }

// decode reads a version's data; the value only if withValue.
func decode(key backend.Key, s *api.KVSecret, created time.Time, withValue bool) ([]byte, backend.Meta, error) {
	str := func(f string) string { v, _ := s.Data[f].(string); return v }
	m := backend.Meta{Key: key, Version: int64(s.VersionMetadata.Version), Fingerprint: str(fieldFingerprint),
		Creator: str(fieldCreator), UpdateTime: s.VersionMetadata.CreatedTime.UTC(), CreateTime: created.UTC()}
	encoded, ok := s.Data[fieldValue].(string)
	if !ok {
		return nil, backend.Meta{}, fmt.Errorf("vault: %s version %d was not written by Pylee (no %q field)", key, m.Version, fieldValue)
	}
	if !withValue {
		return nil, m, nil
	}
	v, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, backend.Meta{}, fmt.Errorf("vault: %s version %d: the value is not base64", key, m.Version)
	}
	return v, m, nil
}

func notFound(key backend.Key, version int64) error {
	if version > 0 {
		return fmt.Errorf("%s version %d: %w", key, version, errs.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", key, errs.ErrNotFound)
}

// Put implements backend.Backend. Every write carries Vault's cas option:
// with cas Any it is the current version just read, and a conflict with
// another writer reads and tries again.
func (b *Backend) Put(ctx context.Context, _ backend.Tx, key backend.Key, value []byte, cas int64, w backend.Write) (backend.Meta, error) {
	if len(value) > backend.MaxValueBytes {
		return backend.Meta{}, fmt.Errorf("%w: %w", backend.ErrTooLarge, errs.ErrInvalidArgument)
	}
	if cas < backend.Any {
		return backend.Meta{}, fmt.Errorf("check-and-set version %d: %w", cas, errs.ErrInvalidArgument)
	}
	p, err := b.path(key)
	if err != nil {
		return backend.Meta{}, err
	}
	data := map[string]any{fieldValue: base64.StdEncoding.EncodeToString(value), fieldFingerprint: w.Fingerprint, fieldCreator: w.Creator}
	for attempt := 1; ; attempt++ {
		m, err := b.put(ctx, key, p, data, cas)
		if cas != backend.Any || !errors.Is(err, errs.ErrEtagMismatch) || attempt == anyAttempts {
			return m, err
		}
		// Let the writer that won finish before reading again; the jitter
		// keeps the losers from meeting once more.
		pause := time.Duration(rand.IntN(5*attempt)+1) * time.Millisecond //nolint:gosec // jitter, not a secret
		select {
		case <-ctx.Done():
			return backend.Meta{}, ctx.Err()
		case <-time.After(pause):
		}
	}
}

func (b *Backend) put(ctx context.Context, key backend.Key, p string, data map[string]any, cas int64) (backend.Meta, error) {
	expect, created := cas, time.Time{}
	if cas != 0 { // 0 needs no read: Vault's cas=0 is "only if not set"
		md, err := b.metadata(ctx, key, p)
		if err != nil {
			return backend.Meta{}, err
		}
		var current int64
		if md != nil {
			current, created = int64(md.CurrentVersion), md.CreatedTime
		}
		if cas == backend.Any {
			expect = current
		} else if current != cas {
			return backend.Meta{}, fmt.Errorf("%s is at version %d, not %d: %w", key, current, cas, errs.ErrEtagMismatch)
		}
	}
	var s *api.KVSecret
	err := b.call(ctx, func() (err error) { s, err = b.kv.Put(ctx, p, data, api.WithCheckAndSet(int(expect))); return err })
	if err != nil {
		return backend.Meta{}, b.wrap(ctx, fmt.Sprintf("vault: write %s expecting version %d", key, expect), err)
	}
	if s == nil || s.VersionMetadata == nil {
		return backend.Meta{}, fmt.Errorf("vault: write %s: no version in the answer", key)
	}
	m := backend.Meta{Key: key, Version: int64(s.VersionMetadata.Version), Fingerprint: data[fieldFingerprint].(string),
		Creator: data[fieldCreator].(string), UpdateTime: s.VersionMetadata.CreatedTime.UTC(), CreateTime: created.UTC()}
	if m.Version == 1 || created.IsZero() {
		m.CreateTime = m.UpdateTime
	}
	return m, nil
}

// Get implements backend.Backend: the metadata (for the current version
// and the key's creation time), then the version.
func (b *Backend) Get(ctx context.Context, _ backend.Tx, key backend.Key, version int64) ([]byte, backend.Meta, error) {
	return b.get(ctx, key, version, true)
}

func (b *Backend) get(ctx context.Context, key backend.Key, version int64, withValue bool) ([]byte, backend.Meta, error) {
	if version < 0 {
		return nil, backend.Meta{}, fmt.Errorf("version %d: %w", version, errs.ErrInvalidArgument)
	}
	p, err := b.path(key)
	if err != nil {
		return nil, backend.Meta{}, err
	}
	md, err := b.metadata(ctx, key, p)
	if err != nil {
		return nil, backend.Meta{}, err
	}
	if md == nil {
		return nil, backend.Meta{}, notFound(key, 0)
	}
	if version == 0 {
		version = int64(md.CurrentVersion)
	}
	if vm, ok := md.Versions[strconv.FormatInt(version, 10)]; !ok || !live(vm) {
		return nil, backend.Meta{}, notFound(key, version)
	}
	s, err := b.version(ctx, key, p, version)
	if err != nil {
		return nil, backend.Meta{}, err
	}
	if s == nil { // deleted since the metadata was read
		return nil, backend.Meta{}, notFound(key, version)
	}
	return decode(key, s, md.CreatedTime, withValue)
}

// List implements backend.Backend. It costs 1 + 2n requests for n keys
// (a LIST, then each key's metadata and current version, which holds the
// fingerprint and creator): fine for the tens of values a scope has.
func (b *Backend) List(ctx context.Context, _ backend.Tx, scope string, kind backend.Kind) ([]backend.Meta, error) {
	names, err := b.names(ctx, scope, kind)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Meta, 0, len(names))
	for _, name := range names {
		_, m, err := b.get(ctx, backend.Key{Org: orgOf(scope), Scope: scope, Kind: kind, Name: name}, 0, false)
		if errors.Is(err, errs.ErrNotFound) {
			continue // deleted since the LIST
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// names lists the NAMEs of kind at scope, sorted.
func (b *Backend) names(ctx context.Context, scope string, kind backend.Kind) ([]string, error) {
	dir, err := b.scopePath(scope, kind)
	if err != nil {
		return nil, err
	}
	var s *api.Secret
	err = b.call(ctx, func() (err error) {
		s, err = b.client.Logical().ListWithContext(ctx, b.mount+"/metadata/"+dir+"/")
		return err
	})
	if err != nil {
		return nil, b.wrap(ctx, fmt.Sprintf("vault: list %s/%s", scope, kind.Collection()), err)
	}
	if s == nil { // nothing there
		return nil, nil
	}
	keys, _ := s.Data["keys"].([]any)
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		// A folder ("X/") is not Pylee's; names that are not NAMEs neither.
		if name, _ := k.(string); nameRE.MatchString(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Versions implements backend.Backend: the metadata lists the versions,
// and each version's data holds its fingerprint and creator.
func (b *Backend) Versions(ctx context.Context, _ backend.Tx, key backend.Key) ([]backend.Meta, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	md, err := b.metadata(ctx, key, p)
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, notFound(key, 0)
	}
	var numbers []int64
	for _, vm := range md.Versions {
		if live(vm) {
			numbers = append(numbers, int64(vm.Version))
		}
	}
	slices.Sort(numbers)
	slices.Reverse(numbers)
	out := make([]backend.Meta, 0, len(numbers))
	for _, n := range numbers {
		s, err := b.version(ctx, key, p, n)
		if err != nil {
			return nil, err
		}
		if s == nil {
			continue // deleted since the metadata was read
		}
		_, m, err := decode(key, s, md.CreatedTime, false)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, notFound(key, 0)
	}
	return out, nil
}

// Delete implements backend.Backend: deleting the metadata removes every
// version, and Vault then counts from 1 again. Vault deletes a missing key
// without complaint, so the metadata is read first; of two concurrent
// Deletes, both may succeed.
func (b *Backend) Delete(ctx context.Context, _ backend.Tx, key backend.Key) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	md, err := b.metadata(ctx, key, p)
	if err != nil {
		return err
	}
	if md == nil {
		return notFound(key, 0)
	}
	return b.deleteMetadata(ctx, key, p)
}

func (b *Backend) deleteMetadata(ctx context.Context, key backend.Key, p string) error {
	if err := b.call(ctx, func() error { return b.kv.DeleteMetadata(ctx, p) }); err != nil {
		return b.wrap(ctx, fmt.Sprintf("vault: delete %s", key), err)
	}
	return nil
}

// DeleteScope implements backend.Backend: it lists the scope's secrets and
// variables and deletes each. The scopes below it (an organization's
// registries, servers and users) are folders of their own that it does
// not touch. If Vault fails midway, the keys deleted so far stay deleted.
func (b *Backend) DeleteScope(ctx context.Context, _ backend.Tx, scope string) (int, error) {
	n := 0
	for _, kind := range []backend.Kind{backend.Secret, backend.Variable} {
		names, err := b.names(ctx, scope, kind)
		if err != nil {
			return n, err
		}
		for _, name := range names {
			key := backend.Key{Org: orgOf(scope), Scope: scope, Kind: kind, Name: name}
			p, err := b.path(key)
			if err != nil {
				return n, err
			}
			if err := b.deleteMetadata(ctx, key, p); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

var _ backend.Backend = (*Backend)(nil)

// PurgeTree implements backend.TreePurger: it walks the folders under the
// scope (at most a scope's depth, secrets and variables folders) and
// deletes every key's metadata, with all its versions.
func (b *Backend) PurgeTree(ctx context.Context, _ backend.Tx, scope string) (int, error) {
	if !strings.HasPrefix(scope, "orgs/") {
		return 0, fmt.Errorf("scope %q is not an organization's: %w", scope, errs.ErrInvalidArgument)
	}
	if err := checkPath(scope); err != nil {
		return 0, err
	}
	n := 0
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > 8 {
			return nil // deeper than any scope: not Pylee's
		}
		var s *api.Secret
		err := b.call(ctx, func() (err error) {
			s, err = b.client.Logical().ListWithContext(ctx, b.mount+"/metadata/"+dir+"/")
			return err
		})
		if err != nil {
			return b.wrap(ctx, "vault: list "+strings.TrimPrefix(dir, b.prefix+"/"), err)
		}
		if s == nil {
			return nil
		}
		keys, _ := s.Data["keys"].([]any)
		leaf := strings.HasSuffix(dir, "/secrets") || strings.HasSuffix(dir, "/variables")
		for _, k := range keys {
			name, _ := k.(string)
			switch {
			case strings.HasSuffix(name, "/"):
				if err := walk(dir+"/"+strings.TrimSuffix(name, "/"), depth+1); err != nil {
					return err
				}
			case leaf && nameRE.MatchString(name):
				p := dir + "/" + name
				if err := b.call(ctx, func() error { return b.kv.DeleteMetadata(ctx, p) }); err != nil {
					return b.wrap(ctx, "vault: delete under "+scope, err)
				}
				n++
			}
		}
		return nil
	}
	return n, walk(b.prefix+"/"+scope, 0)
}
