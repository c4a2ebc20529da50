package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
)

func TestNewAPIToken(t *testing.T) {
	tok, hash, err := NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Reveal(), TokenPrefix) || len(tok.Reveal()) != len(TokenPrefix)+52 {
		t.Fatalf("token shape: %d chars", len(tok.Reveal()))
	}
	if string(hash) != string(HashToken(tok)) || len(hash) != 32 {
		t.Fatal("hash mismatch")
	}
	tok2, _, _ := NewAPIToken()
	if tok2.Reveal() == tok.Reveal() {
		t.Fatal("tokens repeat")
	}
}

func TestParseBearer(t *testing.T) {
	for _, tt := range []struct {
		h, want string
		ok      bool
	}{
		{"Bearer pyl_x", "pyl_x", true}, {"bearer  pyl_x ", "pyl_x", true},
		{"", "", false}, {"Bearer", "", false}, {"Bearer ", "", false}, {"Basic abc", "", false}, {"pyl_x", "", false},
	} {
		got, err := ParseBearer(tt.h)
		if (err == nil) != tt.ok || got.Reveal() != tt.want {
			t.Errorf("ParseBearer(%q) = %q, %v", tt.h, got.Reveal(), err)
		}
		if err != nil && !errors.Is(err, errs.ErrUnauthenticated) {
			t.Errorf("error %v is not unauthenticated", err)
		}
	}
}

type countingAuthn struct {
	calls int
	valid map[string]Principal
}

func (c *countingAuthn) Authenticate(_ context.Context, cred config.Secret) (Principal, error) {
	c.calls++
	p, ok := c.valid[cred.Reveal()]
	if !ok {
		return Principal{}, fmt.Errorf("unknown token: %w", errs.ErrUnauthenticated)
	}
	return p, nil
}

func TestCache(t *testing.T) {
	next := &countingAuthn{valid: map[string]Principal{"a": {Name: "users/a"}, "b": {Name: "users/b"}}}
	c := NewCache(next, time.Second, 1)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if p, err := c.Authenticate(ctx, config.NewSecret("a")); err != nil || p.Name != "users/a" {
			t.Fatal(p, err)
		}
	}
	if next.calls != 1 {
		t.Fatalf("calls = %d, want 1", next.calls)
	}
	// Failures are not cached.
	for i := 0; i < 2; i++ {
		if _, err := c.Authenticate(ctx, config.NewSecret("x")); !errors.Is(err, errs.ErrUnauthenticated) {
			t.Fatal(err)
		}
	}
	if next.calls != 3 {
		t.Fatalf("calls = %d, want 3", next.calls)
	}
	// Expiry: a revoked token stops working after the TTL.
	delete(next.valid, "a")
	now = now.Add(2 * time.Second)
	if _, err := c.Authenticate(ctx, config.NewSecret("a")); err == nil {
		t.Fatal("expired entry still answered")
	}
	// The bound on size holds.
	_, _ = c.Authenticate(ctx, config.NewSecret("b"))
	if len(c.entries) > 1 {
		t.Fatalf("cache grew to %d", len(c.entries))
	}
}

func TestServiceTokensAndMulti(t *testing.T) {
	ctx := context.Background()
	secret := config.NewSecret("installation-service-secret-0123456789")
	svc := ServiceTokens{Secret: secret}
	users := &countingAuthn{valid: map[string]Principal{"pyl_user": {Name: "users/u", Kind: KindUser}}}
	m := Multi{svc, users}
	reg := ServiceTokenFor(secret, "registry")
	p, err := m.Authenticate(ctx, reg)
	if err != nil || p.Kind != KindService || p.Name != "services/registry" {
		t.Fatalf("registry's token = %v, %v", p, err)
	}
	if !MayCall(p, []string{"registry"}) || !MayCall(p, []string{"*"}) || MayCall(p, []string{"orgs"}) || MayCall(p, nil) {
		t.Fatal("MayCall does not follow the rule's services")
	}
	if MayCall(Principal{Name: "services/registry", Kind: KindUser}, []string{"registry"}) {
		t.Fatal("a user named like a service may call as one")
	}
	// Each target's token is its own: another target's name with this MAC,
	// another secret, the raw secret, garbage: refused.
	forged := config.NewSecret(strings.Replace(reg.Reveal(), "pyls_registry.", "pyls_gateway.", 1))
	other := ServiceTokenFor(config.NewSecret("another-installation-secret-0123456"), "registry")
	for _, c := range []config.Secret{forged, other, secret, config.NewSecret("pyls_"), config.NewSecret("pyls_registry.")} {
		if _, err := svc.Authenticate(ctx, c); !errors.Is(err, errs.ErrUnauthenticated) {
			t.Errorf("%q accepted: %v", c.Reveal(), err)
		}
	}
	if _, err := (ServiceTokens{}).Authenticate(ctx, ServiceTokenFor(config.Secret{}, "registry")); err == nil {
		t.Fatal("a token of an empty secret accepted")
	}
	if p, err := m.Authenticate(ctx, config.NewSecret("pyl_user")); err != nil || p.Name != "users/u" {
		t.Fatalf("user = %v, %v", p, err)
	}
	if _, err := m.Authenticate(ctx, config.NewSecret("pyl_other")); !errors.Is(err, errs.ErrUnauthenticated) {
		t.Fatalf("other = %v", err)
	}
	// A certificate naming two targets speaks for both.
	if got := ServiceTargets(ServiceIdentity("orgs", "gateway")); len(got) != 2 || got[1] != "gateway" {
		t.Fatalf("ServiceTargets = %v", got)
	}
	// Nothing is allowed by default, service identities included.
	for _, p := range []Principal{{Kind: KindUser, Name: "users/u"}, ServiceIdentity("orgs")} {
		if err := (DenyAll{}).Authorize(ctx, p, "orgs.get", "orgs/a"); !errors.Is(err, errs.ErrPermissionDenied) {
			t.Fatalf("DenyAll allowed %v: %v", p, err)
		}
	}
}
