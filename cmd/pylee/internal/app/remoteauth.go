package app

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
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
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.serviceToken.Reveal())
	resp, err := r.client.VerifyToken(ctx, &orgsv1.VerifyTokenRequest{Token: cred.Reveal()})
	switch status.Code(err) {
	case codes.OK:
		return auth.Principal{Name: resp.GetPrincipal(), Kind: auth.Kind(resp.GetKind()), DisplayName: resp.GetDisplayName()}, nil
	case codes.Unauthenticated, codes.InvalidArgument:
		return auth.Principal{}, fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
	default:
		return auth.Principal{}, fmt.Errorf("verify token with the orgs service: %w", errs.ErrUnavailable)
	}
}
