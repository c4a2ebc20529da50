package aip

import (
	"context"
	"strings"
	"testing"
)

func FuzzPatternParse(f *testing.F) {
	for _, s := range []string{"orgs/acme/servers/github", "orgs//servers/x", "orgs/a/servers/b/c", "", "/", "orgs/acme/servers/git\x00hub"} {
		f.Add(s)
	}
	p := MustPattern("orgs/{org}/servers/{server}")
	f.Fuzz(func(t *testing.T, name string) {
		vals, err := p.Parse(name)
		if err != nil {
			return
		}
		// Whatever parses must format back to itself and hold only valid ids.
		if got := p.Format(vals...); got != name {
			t.Fatalf("Format(Parse(%q)) = %q", name, got)
		}
		for _, v := range vals {
			if ValidateSegmentID(v) != nil || strings.Contains(v, "/") {
				t.Fatalf("Parse(%q) accepted id %q", name, v)
			}
		}
	})
}

func FuzzPageTokenDecode(f *testing.F) {
	codec := NewPageTokens([]byte("fuzz-key"))
	q := Query("orgs", "")
	ctx := context.Background()
	f.Add(codec.Encode(ctx, q, "acme"))
	f.Add("")
	f.Add("AAAA")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, token string) {
		cur, err := codec.Decode(ctx, q, token)
		if err != nil {
			return
		}
		// A token that decodes must be one this codec issued for this query.
		if token != "" && codec.Encode(ctx, q, cur) != token {
			t.Fatalf("Decode accepted %q which the codec did not issue", token)
		}
	})
}
