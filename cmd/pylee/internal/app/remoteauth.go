package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs"
)

// remoteTokens verifies API tokens through the orgs service, for a process
// that does not run it. Wrapped in auth.Cache, so the orgs service sees at
// most one call per token per TTL.
type remoteTokens struct {
	client       orgsv1.OrgsServiceClient
	serviceToken config.Secret
}

// Authenticate implements auth.Authenticator.
func (r remoteTokens) Authenticate(ctx context.Context, cred config.Secret) (auth.Principal, error) {
	ctx = auth.Outgoing(ctx, r.serviceToken)
	resp, err := r.client.VerifyToken(ctx, &orgsv1.VerifyTokenRequest{Token: cred.Reveal()})
	switch status.Code(err) {
	case codes.OK:
		return auth.Principal{Name: resp.GetPrincipal(), Kind: auth.Kind(resp.GetKind()), DisplayName: resp.GetDisplayName(),
			Groups: resp.GetGroups(), Org: resp.GetOrganization()}, nil
	case codes.Unauthenticated, codes.InvalidArgument:
		return auth.Principal{}, fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
	default:
		return auth.Principal{}, fmt.Errorf("verify token with the orgs service: %w", errs.ErrUnavailable)
	}
}

// remoteAuthorizer asks the orgs service's Check for a process that does
// not run it, caching answers for orgs.DecisionTTL: the bound on how stale
// a decision may be.
type remoteAuthorizer struct {
	client       orgsv1.AccessServiceClient
	serviceToken config.Secret
	mu           sync.Mutex
	cache        map[[4]string]remoteAnswer
}

type remoteAnswer struct {
	allowed, member bool
	expires         time.Time
}

func newRemoteAuthorizer(c orgsv1.AccessServiceClient, tok config.Secret) *remoteAuthorizer {
	return &remoteAuthorizer{client: c, serviceToken: tok, cache: map[[4]string]remoteAnswer{}}
}

// Authorize implements auth.Authorizer.
func (r *remoteAuthorizer) Authorize(ctx context.Context, p auth.Principal, permission, resource string) error {
	if p.Kind == auth.KindService {
		return nil
	}
	if auth.ServiceOnlyPermissions[permission] {
		return fmt.Errorf("%s is for service identities only: %w", permission, errs.ErrPermissionDenied)
	}
	// The organization limit of the credential, as orgs.Engine applies it:
	// another organization's resources do not even show they exist.
	if p.OutsideOrg(resource) && !orgs.SelfPermission(permission) {
		if strings.HasPrefix(resource, "orgs/") {
			return fmt.Errorf("%q: %w", resource, errs.ErrNotFound)
		}
		return fmt.Errorf("this credential is limited to orgs/%s: %w", p.Org, errs.ErrPermissionDenied)
	}
	key := [4]string{p.Name, permission, resource, strings.Join(p.Groups, ",")}
	now := time.Now()
	r.mu.Lock()
	a, ok := r.cache[key]
	r.mu.Unlock()
	if !ok || now.After(a.expires) {
		cctx := auth.Outgoing(ctx, r.serviceToken)
		resp, err := r.client.Check(cctx, &orgsv1.CheckRequest{Principal: p.Name, Permission: permission, Resource: resource, Groups: p.Groups})
		if err != nil {
			return fmt.Errorf("check access with the orgs service: %w", errs.ErrUnavailable)
		}
		a = remoteAnswer{allowed: resp.GetAllowed(), member: resp.GetMember(), expires: now.Add(orgs.DecisionTTL)}
		r.mu.Lock()
		if len(r.cache) > 100_000 {
			r.cache = map[[4]string]remoteAnswer{}
		}
		r.cache[key] = a
		r.mu.Unlock()
	}
	if !a.allowed {
		if !a.member {
			return fmt.Errorf("%q: %w", resource, errs.ErrNotFound)
		}
		return fmt.Errorf("%s lacks %s on %q: %w", p.Name, permission, resource, errs.ErrPermissionDenied)
	}
	return nil
}

// Invalidate drops every cached answer: an organization was deleted, and
// what was allowed under it no longer is.
func (r *remoteAuthorizer) Invalidate() {
	r.mu.Lock()
	r.cache = map[[4]string]remoteAnswer{}
	r.mu.Unlock()
}

// serviceOnly lets service identities through and nobody else: the
// authorizer of a process with no source of access decisions.
type serviceOnly struct{}

func (serviceOnly) Authorize(_ context.Context, p auth.Principal, permission, _ string) error {
	if p.Kind == auth.KindService {
		return nil
	}
	return fmt.Errorf("%s: this process cannot decide access for users (give --orgs-addr): %w", permission, errs.ErrPermissionDenied)
}
