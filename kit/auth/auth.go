// Package auth defines who a caller is (Principal), how a credential becomes
// one (Authenticator), and how a decision is asked for (Authorizer). The
// server's interceptors use these interfaces, so the identity and access
// model can grow without touching the services.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

// Kind is the kind of a principal.
type Kind string

// Principal kinds.
const (
	KindUser           Kind = "user"
	KindServiceAccount Kind = "service-account"
	KindService        Kind = "service"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name is the principal's resource name: `users/{id}`,
	// `orgs/{org}/serviceAccounts/{sa}`, or `services/{target}`.
	Name        string
	Kind        Kind
	DisplayName string
	// Groups are teams (`orgs/{org}/teams/{team}`) the credential itself
	// says the principal belongs to, e.g. from an OIDC groups claim.
	Groups []string
	// Org, when set, limits the credential to one organization: it came
	// from that organization's own identity provider.
	Org string
}

// OutsideOrg reports whether resource is beyond what p's credential may
// reach: p is limited to one organization and resource is not in it.
func (p Principal) OutsideOrg(resource string) bool {
	if p.Org == "" {
		return false
	}
	return resource != "orgs/"+p.Org && !strings.HasPrefix(resource, "orgs/"+p.Org+"/")
}

// Authenticator turns a presented credential into a principal. It returns an
// error wrapping errs.ErrUnauthenticated when the credential is unknown,
// expired or revoked.
type Authenticator interface {
	Authenticate(ctx context.Context, credential config.Secret) (Principal, error)
}

// Authorizer decides whether p may use permission on resource (a resource
// name; empty is the installation). It returns nil when allowed and an error
// wrapping errs.ErrPermissionDenied when not.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, permission, resource string) error
}

// DenyAll refuses every call: the authorizer of a server until its process
// sets one, so nothing is allowed by default.
type DenyAll struct{}

// Authorize refuses.
func (DenyAll) Authorize(_ context.Context, _ Principal, permission, _ string) error {
	return fmt.Errorf("%s: this server has no source of access decisions: %w", permission, errs.ErrPermissionDenied)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of an authenticated call.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenPrefix starts every Pylee API token, so scanners can spot leaked ones.
const TokenPrefix = "pyl_"

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewAPIToken returns a new random API token (256 bits) and its hash, the
// only form in which it is stored.
func NewAPIToken() (config.Secret, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return config.Secret{}, nil, fmt.Errorf("random: %w", err)
	}
	tok := config.NewSecret(TokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(b[:])))
	return tok, HashToken(tok), nil
}

// HashToken is the stored form of an API token. The token has 256 bits of
// entropy, so a plain SHA-256 cannot be reversed by guessing.
func HashToken(tok config.Secret) []byte {
	sum := sha256.Sum256([]byte(tok.Reveal()))
	return sum[:]
}

// ParseBearer extracts the credential from an Authorization header value.
func ParseBearer(header string) (config.Secret, error) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(cred) == "" {
		return config.Secret{}, fmt.Errorf("authorization must be %q: %w", "Bearer <token>", errs.ErrUnauthenticated)
	}
	return config.NewSecret(strings.TrimSpace(cred)), nil
}

// ManyAuthorizer decides one permission on many resources at once, for a
// list filtered item by item: each answer is what Authorize would answer
// for that resource, but the source of decisions may read what they share
// (the caller's teams, its bindings in the organization) once.
type ManyAuthorizer interface {
	AuthorizeMany(ctx context.Context, p Principal, permission string, resources []string) ([]error, error)
}

// AuthorizeMany is z's AuthorizeMany when it has one, else Authorize on
// each resource. The second result is an error that is no decision (the
// source of decisions failed).
func AuthorizeMany(ctx context.Context, z Authorizer, p Principal, permission string, resources []string) ([]error, error) {
	if m, ok := z.(ManyAuthorizer); ok {
		return m.AuthorizeMany(ctx, p, permission, resources)
	}
	out := make([]error, len(resources))
	for i, r := range resources {
		out[i] = z.Authorize(ctx, p, permission, r)
	}
	return out, nil
}
