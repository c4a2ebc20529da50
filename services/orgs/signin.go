package orgs

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// RecordSignIns wraps an authenticator of external identities (OIDC) so
// that a user's first sign-in creates its user record (and an audit
// event). Users already seen by this process are not looked up again.
func RecordSignIns(next auth.Authenticator, st store.Store, log *zap.Logger) auth.Authenticator {
	return &signIns{next: next, store: st, log: log, seen: map[string]bool{}}
}

type signIns struct {
	next  auth.Authenticator
	store store.Store
	log   *zap.Logger
	mu    sync.Mutex
	seen  map[string]bool
}

func (s *signIns) Authenticate(ctx context.Context, cred config.Secret) (auth.Principal, error) {
	p, err := s.next.Authenticate(ctx, cred)
	if err != nil {
		return p, err
	}
	return s.record(ctx, p), nil
}

// audienceAuthenticator checks tokens issued for one resource (auth.OIDC).
type audienceAuthenticator interface {
	AuthenticateAudience(ctx context.Context, cred config.Secret, audience string) (auth.Principal, error)
}

// AuthenticateAudience verifies a token issued for one resource (an MCP
// URL of the gateway, RFC 8707) with the wrapped authenticator, and
// records the user's first sign-in as Authenticate does: a user whose
// first contact is an MCP client is a user like any other.
func (s *signIns) AuthenticateAudience(ctx context.Context, cred config.Secret, audience string) (auth.Principal, error) {
	a, ok := s.next.(audienceAuthenticator)
	if !ok {
		return auth.Principal{}, fmt.Errorf("tokens for a resource are not accepted: %w", errs.ErrUnauthenticated)
	}
	p, err := a.AuthenticateAudience(ctx, cred, audience)
	if err != nil {
		return p, err
	}
	return s.record(ctx, p), nil
}

// Unwrap is the authenticator whose sign-ins are recorded.
func (s *signIns) Unwrap() auth.Authenticator { return s.next }

// record creates the user record of p's first sign-in.
func (s *signIns) record(ctx context.Context, p auth.Principal) auth.Principal {
	if p.Kind != auth.KindUser || !strings.HasPrefix(p.Name, "users/") {
		return p
	}
	s.mu.Lock()
	seen := s.seen[p.Name]
	s.mu.Unlock()
	if seen {
		return p
	}
	id := strings.TrimPrefix(p.Name, "users/")
	email := ""
	if strings.Contains(id, "@") {
		email = id
	}
	ev := outbox.NewEvent(auth.WithPrincipal(ctx, p), "-", "orgs.user.create", p.Name)
	if _, err := s.store.EnsureUser(ctx, store.User{ID: id, Email: email, DisplayName: p.DisplayName}, ev); err != nil {
		// Signing in must not fail because the record could not be written.
		s.log.Warn("record first sign-in", zap.String("user", p.Name), zap.Error(err))
		return p
	}
	s.mu.Lock()
	if len(s.seen) > 100_000 {
		s.seen = map[string]bool{}
	}
	s.seen[p.Name] = true
	s.mu.Unlock()
	return p
}
