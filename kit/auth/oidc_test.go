package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

// idp is an identity provider on loopback: a JWKS endpoint whose keys the
// test controls, and a signer.
type idp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey // kid -> key served
}

func newIDP(t *testing.T) *idp {
	p := &idp{keys: map[string]*rsa.PrivateKey{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		var set jose.JSONWebKeySet
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) addKey(t *testing.T, kid string) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.keys[kid] = k
	p.mu.Unlock()
	return k
}

func (p *idp) removeKey(kid string) {
	p.mu.Lock()
	delete(p.keys, kid)
	p.mu.Unlock()
}

const testIssuer = "https://idp.example.test"

func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": testIssuer, "aud": "pylee", "sub": "u-123", "email": "Jane@Acme.test", "name": "Jane",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "groups": []string{"acme/platform", "orgs/acme/teams/sre", "everyone"}}
	if mod != nil {
		mod(c)
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestOIDC(t *testing.T) {
	p := newIDP(t)
	key := p.addKey(t, "k1")
	a := NewOIDC(OIDCConfig{Issuer: testIssuer, Audience: "pylee", JWKSURL: p.srv.URL})
	ctx := context.Background()

	// Valid.
	pr, err := a.Authenticate(ctx, config.NewSecret(sign(t, key, "k1", claims(nil))))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Name != "users/jane@acme.test" || pr.Kind != KindUser || pr.DisplayName != "Jane" ||
		strings.Join(pr.Groups, ",") != "orgs/acme/teams/platform,orgs/acme/teams/sre" {
		t.Fatalf("principal = %+v", pr)
	}

	// Rotation: the IdP adds a key and signs with it; the old one goes.
	key2 := p.addKey(t, "k2")
	p.removeKey("k1")
	if _, err := a.Authenticate(ctx, config.NewSecret(sign(t, key2, "k2", claims(nil)))); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key2.PublicKey)
	valid := sign(t, key2, "k2", claims(nil))
	parts := strings.Split(valid, ".")
	hsHeader := b64([]byte(`{"alg":"HS256","kid":"k2","typ":"JWT"}`))
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsHeader + "." + parts[1]))
	tampered := []byte(parts[2])
	tampered[10] ^= 'A' ^ 'B'

	bad := map[string]string{
		"expired":           sign(t, key2, "k2", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })),
		"not yet valid":     sign(t, key2, "k2", claims(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })),
		"wrong audience":    sign(t, key2, "k2", claims(func(c map[string]any) { c["aud"] = "someone-else" })),
		"wrong issuer":      sign(t, key2, "k2", claims(func(c map[string]any) { c["iss"] = "https://evil.test" })),
		"alg none":          b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		"HS256 with pubkey": hsHeader + "." + parts[1] + "." + b64(mac.Sum(nil)),
		"unknown kid":       sign(t, other, "k9", claims(nil)),
		"removed kid":       sign(t, key, "k1", claims(nil)),
		"tampered sig":      parts[0] + "." + parts[1] + "." + string(tampered),
		"tampered payload":  parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","aud":"pylee","sub":"admin","exp":9999999999}`)) + "." + parts[2],
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := a.Authenticate(ctx, config.NewSecret(tok))
			if !errors.Is(err, errs.ErrUnauthenticated) {
				t.Fatalf("err = %v, want unauthenticated", err)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatal("the error repeats the token")
			}
		})
	}
	// API tokens are not its business.
	if _, err := a.Authenticate(ctx, config.NewSecret("pyl_abc")); !errors.Is(err, errs.ErrUnauthenticated) {
		t.Fatal(err)
	}
}

func TestGroupTeam(t *testing.T) {
	for in, want := range map[string]string{"acme/platform": "orgs/acme/teams/platform", "orgs/acme/teams/sre": "orgs/acme/teams/sre",
		"everyone": "", "a/b/c": "", "/x": ""} {
		if got := groupTeam(in); got != want {
			t.Errorf("groupTeam(%q) = %q, want %q", in, got, want)
		}
	}
}
