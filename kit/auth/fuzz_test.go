package auth

import (
	"strings"
	"testing"
)

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer pyl_x", "bearer   t", "Basic x", "", "Bearer", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cred, err := ParseBearer(h)
		if err != nil {
			return
		}
		// Whatever is accepted is the non-empty, trimmed rest of the header.
		if c := cred.Reveal(); c == "" || c != strings.TrimSpace(c) || !strings.Contains(h, c) {
			t.Fatalf("ParseBearer(%q) = %q", h, c)
		}
	})
}

func FuzzUnverifiedIssuer(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.sig")
	f.Add("a.b.c")
	f.Add("...")
	f.Fuzz(func(t *testing.T, raw string) {
		_ = UnverifiedIssuer(raw) // must not panic on any input
		_ = LooksLikeJWT(raw)
	})
}
