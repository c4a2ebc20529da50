package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

// OIDCConfig configures verification of JWTs from an identity provider.
type OIDCConfig struct {
	// Issuer is the `iss` every token must carry.
	Issuer string
	// Audience is the `aud` every token must include.
	Audience string
	// JWKSURL is where the signing keys are; empty means the issuer's
	// discovery document says.
	JWKSURL string
	// GroupsClaim names the claim listing the user's groups (default
	// "groups"); groups `orgs/{org}/teams/{team}` or `{org}/{team}` are the
	// Pylee teams the user is a member of for that request.
	GroupsClaim string
	// Org, when set, makes this an organization's own identity provider:
	// its users are limited to that organization, and plain group names
	// (`platform`) are its teams; groups naming other organizations are
	// ignored.
	Org string
}

// OIDC authenticates JWTs: signature against the issuer's JWKS (fetched,
// cached, refetched when a token names an unknown key, so rotation needs no
// restart), issuer, audience, expiry and not-before, with asymmetric
// algorithms only (no `none`, no HMAC). The JOSE work is go-oidc's.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	// anyAud verifies everything but the audience, which
	// AuthenticateAudience checks itself (RFC 8707 resources).
	anyAud *oidc.IDTokenVerifier
}

// NewOIDC returns an authenticator for cfg. Discovery, when needed, happens
// on first use and is retried until it succeeds, so an unreachable identity
// provider does not stop Pylee from starting.
func NewOIDC(cfg OIDCConfig) *OIDC {
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	return &OIDC{cfg: cfg}
}

var supportedAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.EdDSA}

func (o *OIDC) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	conf := &oidc.Config{ClientID: o.cfg.Audience, SupportedSigningAlgs: supportedAlgs}
	anyAud := &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: supportedAlgs}
	// Keys are fetched with a background context: the key set outlives
	// the request that first needed it.
	if o.cfg.JWKSURL != "" {
		keys := oidc.NewRemoteKeySet(context.Background(), o.cfg.JWKSURL)
		o.verifier = oidc.NewVerifier(o.cfg.Issuer, keys, conf)
		o.anyAud = oidc.NewVerifier(o.cfg.Issuer, keys, anyAud)
		return o.verifier, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, nil), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery for %s: %w", o.cfg.Issuer, errs.ErrUnavailable)
	}
	o.verifier, o.anyAud = p.Verifier(conf), p.Verifier(anyAud)
	return o.verifier, nil
}

// AuthenticateAudience authenticates a JWT issued for one resource (RFC
// 8707): its `aud` must include audience, such as an MCP server's URL;
// the installation's own audience does not do. Everything else is checked
// as by Authenticate.
func (o *OIDC) AuthenticateAudience(ctx context.Context, cred config.Secret, audience string) (Principal, error) {
	raw := cred.Reveal()
	if !looksLikeJWT(raw) {
		return Principal{}, fmt.Errorf("not a JWT: %w", errs.ErrUnauthenticated)
	}
	if _, err := o.getVerifier(ctx); err != nil {
		return Principal{}, err
	}
	o.mu.Lock()
	v := o.anyAud
	o.mu.Unlock()
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return Principal{}, fmt.Errorf("the JWT is not valid: %s: %w", strings.TrimPrefix(err.Error(), "oidc: "), errs.ErrUnauthenticated)
	}
	if !slices.Contains(tok.Audience, audience) {
		return Principal{}, fmt.Errorf("the JWT is not for %s (its audience is %v): %w", audience, tok.Audience, errs.ErrUnauthenticated)
	}
	return o.principal(tok)
}

// looksLikeJWT tells JWTs from Pylee's API tokens without parsing.
func looksLikeJWT(s string) bool {
	return !strings.HasPrefix(s, TokenPrefix) && strings.Count(s, ".") == 2
}

// Authenticate implements Authenticator.
func (o *OIDC) Authenticate(ctx context.Context, cred config.Secret) (Principal, error) {
	raw := cred.Reveal()
	if !looksLikeJWT(raw) {
		return Principal{}, fmt.Errorf("not a JWT: %w", errs.ErrUnauthenticated)
	}
	v, err := o.getVerifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		// go-oidc's reasons (expired, audience, signature) are safe to say
		// and help an operator; they never contain the token.
		return Principal{}, fmt.Errorf("the JWT is not valid: %s: %w", strings.TrimPrefix(err.Error(), "oidc: "), errs.ErrUnauthenticated)
	}
	return o.principal(tok)
}

// principal is the user a verified token names.
func (o *OIDC) principal(tok *oidc.IDToken) (Principal, error) {
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("the JWT's claims are unreadable: %w", errs.ErrUnauthenticated)
	}
	email, _ := claims["email"].(string)
	name, _ := claims["name"].(string)
	id := tok.Subject
	if email != "" {
		id = strings.ToLower(email)
	}
	if id == "" || strings.ContainsAny(id, "/ ") {
		id = "sub-" + strings.NewReplacer("/", "_", " ", "_").Replace(tok.Subject)
	}
	if name == "" {
		name = email
	}
	p := Principal{Name: "users/" + id, Kind: KindUser, DisplayName: name, Org: o.cfg.Org}
	if gs, ok := claims[o.cfg.GroupsClaim].([]any); ok {
		for _, g := range gs {
			gstr := fmt.Sprint(g)
			if o.cfg.Org != "" && !strings.Contains(gstr, "/") && gstr != "" {
				gstr = o.cfg.Org + "/" + gstr
			}
			team := groupTeam(gstr)
			if team != "" && !p.OutsideOrg(team) {
				p.Groups = append(p.Groups, team)
			}
		}
	}
	return p, nil
}

// groupTeam maps a group to a team name, or "" when it names none.
func groupTeam(g string) string {
	if strings.HasPrefix(g, "orgs/") && strings.Count(g, "/") == 3 && strings.Contains(g, "/teams/") {
		return g
	}
	if org, team, ok := strings.Cut(g, "/"); ok && org != "" && team != "" && !strings.Contains(team, "/") {
		return "orgs/" + org + "/teams/" + team
	}
	return ""
}

// UnverifiedIssuer reads the `iss` claim of a JWT without verifying it, to
// choose the identity provider that must verify it. Nothing else of the
// token is trusted before verification.
func UnverifiedIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}

// LooksLikeJWT tells JWTs from Pylee's API tokens without parsing.
func LooksLikeJWT(s string) bool { return looksLikeJWT(s) }
