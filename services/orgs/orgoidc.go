package orgs

import (
	"context"
	"fmt"
	"sync"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// OrgOIDC authenticates JWTs issued by organizations' own identity
// providers (Organization.oidc). The token's issuer chooses the
// organizations to try; a user so authenticated is limited to that
// organization.
type OrgOIDC struct {
	store store.Store

	mu        sync.Mutex
	verifiers map[string]*auth.OIDC // by organization and configuration
}

// NewOrgOIDC returns the authenticator over st.
func NewOrgOIDC(st store.Store) *OrgOIDC {
	return &OrgOIDC{store: st, verifiers: map[string]*auth.OIDC{}}
}

func (o *OrgOIDC) verifier(org store.Organization) *auth.OIDC {
	cfg := auth.OIDCConfig{Issuer: org.OIDC["issuer"], Audience: org.OIDC["audience"], JWKSURL: org.OIDC["jwks_uri"],
		GroupsClaim: org.OIDC["groups_claim"], Org: org.ID}
	key := fmt.Sprintf("%+v", cfg)
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.verifiers[key]
	if !ok {
		if len(o.verifiers) > 10_000 {
			o.verifiers = map[string]*auth.OIDC{}
		}
		v = auth.NewOIDC(cfg)
		o.verifiers[key] = v
	}
	return v
}

// Authenticate implements auth.Authenticator.
func (o *OrgOIDC) Authenticate(ctx context.Context, cred config.Secret) (auth.Principal, error) {
	raw := cred.Reveal()
	unknown := errTokenNotValid
	if !auth.LooksLikeJWT(raw) {
		return auth.Principal{}, unknown
	}
	iss := auth.UnverifiedIssuer(raw)
	if iss == "" {
		return auth.Principal{}, unknown
	}
	orgs, err := o.store.OrganizationsByIssuer(ctx, iss)
	if err != nil {
		return auth.Principal{}, err
	}
	for _, org := range orgs {
		if p, err := o.verifier(org).Authenticate(ctx, cred); err == nil {
			return p, nil
		}
	}
	return auth.Principal{}, unknown
}

// errTokenNotValid refuses a token no organization's identity provider
// issued; made once, not per request.
var errTokenNotValid = fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
