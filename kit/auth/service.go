package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

// ServicePrefix starts the name of a service identity: each target calls
// the others as `services/<target>`.
const ServicePrefix = "services/"

// serviceTokenPrefix starts a service identity's token:
// `pyls_<target>.<hex HMAC>`.
const serviceTokenPrefix = "pyls_"

// ServiceIdentity is the principal of one or more targets (a process whose
// client certificate names several): named after the first, with every
// target's identity in Groups.
func ServiceIdentity(targets ...string) Principal {
	p := Principal{Kind: KindService}
	for _, t := range targets {
		p.Groups = append(p.Groups, ServicePrefix+t)
	}
	if len(targets) > 0 {
		p.Name = ServicePrefix + targets[0]
		p.DisplayName = "Pylee " + strings.Join(targets, ", ")
	}
	return p
}

// ServiceTargets are the targets a service principal speaks for; none for
// any other principal.
func ServiceTargets(p Principal) []string {
	if p.Kind != KindService {
		return nil
	}
	var out []string
	for _, g := range append([]string{p.Name}, p.Groups...) {
		if t, ok := strings.CutPrefix(g, ServicePrefix); ok && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// ServiceTokenFor is the token target calls other targets with, derived
// from the installation's service secret: HMAC-SHA256 keyed with it over
// the target's name. Every target of an installation derives the same
// tokens from the same secret; none is stored.
func ServiceTokenFor(secret config.Secret, target string) config.Secret {
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write([]byte("pylee.service-identity.v1\x00" + target))
	return config.NewSecret(serviceTokenPrefix + target + "." + hex.EncodeToString(mac.Sum(nil)))
}

// ServiceTokens authenticates the tokens of the installation's service
// identities (ServiceTokenFor), each as `services/<target>`.
type ServiceTokens struct {
	Secret config.Secret
}

// Authenticate implements Authenticator.
func (s ServiceTokens) Authenticate(_ context.Context, cred config.Secret) (Principal, error) {
	v := cred.Reveal()
	rest, ok := strings.CutPrefix(v, serviceTokenPrefix)
	target, _, found := strings.Cut(rest, ".")
	if !ok || !found || target == "" || s.Secret.IsZero() {
		return Principal{}, errNotServiceCredential
	}
	if subtle.ConstantTimeCompare([]byte(v), []byte(ServiceTokenFor(s.Secret, target).Reveal())) != 1 {
		return Principal{}, fmt.Errorf("not a valid service credential: %w", errs.ErrUnauthenticated)
	}
	return ServiceIdentity(target), nil
}

// MayCall reports whether service principal p may call what rule lists in
// services (target names, or "*" for every target).
func MayCall(p Principal, services []string) bool {
	for _, t := range ServiceTargets(p) {
		if slices.Contains(services, t) || slices.Contains(services, "*") {
			return true
		}
	}
	return false
}

// Multi tries authenticators in order; the first that does not answer
// ErrUnauthenticated decides.
type Multi []Authenticator

// Authenticate implements Authenticator.
func (m Multi) Authenticate(ctx context.Context, cred config.Secret) (Principal, error) {
	err := errTokenNotValid
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

// The refusals every request that is not of their kind meets: made once,
// not per request.
var (
	errTokenNotValid        = fmt.Errorf("the token is not valid: %w", errs.ErrUnauthenticated)
	errNotServiceCredential = fmt.Errorf("not a service credential: %w", errs.ErrUnauthenticated)
)

// ServiceOnlyPermissions are the permissions only services hold.
var ServiceOnlyPermissions = map[string]bool{"audit.append": true, "tokens.verify": true, "registry.purge": true, "bindings.purge": true, "secrets.purge": true,
	"secrets.resolve": true, "deployments.resolve": true, "deployments.report": true, "versions.record_tools": true}

// Outgoing returns ctx carrying token as the bearer credential of the gRPC
// calls made with it. A zero token adds none: targets that authenticate
// each other by certificate (mTLS) call with no bearer at all.
func Outgoing(ctx context.Context, token config.Secret) context.Context {
	if token.IsZero() {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token.Reveal())
}
