package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

// ServicePrincipal is the identity Pylee's services use for calls they make
// on their own behalf (the audit relay, token verification).
var ServicePrincipal = Principal{Name: "services/pylee", Kind: KindService, DisplayName: "Pylee services"}

// ServiceToken authenticates the per-deployment service credential, shared
// by every target of one installation.
type ServiceToken struct {
	Token config.Secret
}

// Authenticate implements Authenticator.
func (s ServiceToken) Authenticate(_ context.Context, cred config.Secret) (Principal, error) {
	if s.Token.IsZero() || subtle.ConstantTimeCompare([]byte(cred.Reveal()), []byte(s.Token.Reveal())) != 1 {
		return Principal{}, fmt.Errorf("not the service credential: %w", errs.ErrUnauthenticated)
	}
	return ServicePrincipal, nil
}

// Multi tries authenticators in order; the first that does not answer
// ErrUnauthenticated decides.
type Multi []Authenticator

// Authenticate implements Authenticator.
func (m Multi) Authenticate(ctx context.Context, cred config.Secret) (Principal, error) {
	err := fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
	for _, a := range m {
		p, e := a.Authenticate(ctx, cred)
		if e == nil {
			return p, nil
		}
		if !errors.Is(e, errs.ErrUnauthenticated) {
			return Principal{}, e
		}
		err = e
	}
	return Principal{}, err
}

// ServiceOnlyPermissions are the permissions only services hold.
var ServiceOnlyPermissions = map[string]bool{"audit.append": true, "tokens.verify": true, "registry.purge": true, "bindings.purge": true}
