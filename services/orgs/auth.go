package orgs

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs/internal/access"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// BootstrapPrincipal owns the bootstrap admin token.
const BootstrapPrincipal = "users/admin"

// touchInterval bounds how often a token's last-use time is written.
const touchInterval = time.Minute

// TokenAuthenticator verifies API tokens against the orgs store.
type TokenAuthenticator struct {
	store store.Store
	now   func() time.Time
}

// NewTokenAuthenticator returns an authenticator over st.
func NewTokenAuthenticator(st store.Store) *TokenAuthenticator {
	return &TokenAuthenticator{store: st, now: time.Now}
}

// Authenticate implements auth.Authenticator.
func (a *TokenAuthenticator) Authenticate(ctx context.Context, cred config.Secret) (auth.Principal, error) {
	unknown := fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
	hash := auth.HashToken(cred)
	t, err := a.store.APITokenByHash(ctx, hash)
	if errors.Is(err, errs.ErrNotFound) {
		return auth.Principal{}, unknown
	}
	if err != nil {
		return auth.Principal{}, err
	}
	// The lookup matched on the hash; compare again in constant time so the
	// decision itself never depends on where two values first differ.
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		return auth.Principal{}, unknown
	}
	now := a.now()
	if t.ExpireTime != nil && !now.Before(*t.ExpireTime) {
		return auth.Principal{}, fmt.Errorf("the token has expired: %w", errs.ErrUnauthenticated)
	}
	if t.LastUseTime == nil || now.Sub(*t.LastUseTime) > touchInterval {
		// Best effort: a failed write must not fail the call.
		_ = a.store.TouchAPIToken(ctx, t.ID, now.UTC())
	}
	kind := auth.KindUser
	if strings.Contains(t.Principal, "/serviceAccounts/") {
		kind = auth.KindServiceAccount
	}
	return auth.Principal{Name: t.Principal, Kind: kind, DisplayName: t.DisplayName}, nil
}

// Bootstrap creates the bootstrap admin token on a first start, when the
// store holds no token yet, and writes it to path with mode 0600. It returns
// false when tokens exist already: the file is written once.
func Bootstrap(ctx context.Context, st store.Store, path string) (bool, error) {
	n, err := st.CountAPITokens(ctx)
	if err != nil {
		return false, fmt.Errorf("count tokens: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	tok, hash, err := auth.NewAPIToken()
	if err != nil {
		return false, err
	}
	if err := writeTokenFile(path, tok); err != nil {
		return false, err
	}
	// The bootstrap admin owns the installation: every organization, and
	// creating them.
	_, err = st.CreateBinding(ctx, store.Binding{Name: "bindings/bootstrap", Resource: "", Organization: "",
		Role: access.RoleInstallationOwner.Name, Principal: BootstrapPrincipal, Creator: BootstrapPrincipal}, nil)
	if err != nil && !errors.Is(err, errs.ErrAlreadyExists) {
		_ = os.Remove(path)
		return false, fmt.Errorf("bind bootstrap admin: %w", err)
	}
	err = st.CreateAPIToken(ctx, store.APIToken{
		ID: uuid.NewString(), Hash: hash, Principal: BootstrapPrincipal,
		DisplayName: "bootstrap admin token", CreateTime: time.Now().UTC().Truncate(time.Microsecond),
	}, nil)
	if err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("store bootstrap token: %w", err)
	}
	return true, nil
}

// writeTokenFile writes tok to path, readable by its owner only. A file left
// from an earlier database is replaced: its token is valid nowhere.
func writeTokenFile(path string, tok config.Secret) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("token directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".admin.token-*")
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("token file: %w", err)
	}
	if _, err := tmp.WriteString(tok.Reveal() + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	return nil
}
