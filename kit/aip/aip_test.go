package aip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/pyleeai/pylee/kit/auth"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/typepb"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"acme", true}, {"a-1", true}, {"abc", true}, {strings.Repeat("a", 63), true},
		{"ab", false}, {strings.Repeat("a", 64), false}, {"1abc", false}, {"-abc", false},
		{"Acme", false}, {"ac_me", false}, {"ac.me", false}, {"acme/x", false}, {"", false}, {"acmé", false},
	}
	for _, tt := range tests {
		if err := ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestPattern(t *testing.T) {
	p := MustPattern("orgs/{org}/servers/{server}")
	tests := []struct {
		name string
		want []string
		ok   bool
	}{
		{"orgs/acme/servers/github", []string{"acme", "github"}, true},
		{"orgs/acme/servers", nil, false},
		{"orgs/acme/servers/github/x", nil, false},
		{"orgs//servers/github", nil, false},
		{"org/acme/servers/github", nil, false},
		{"orgs/ACME/servers/github", nil, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		got, err := p.Parse(tt.name)
		if (err == nil) != tt.ok || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("Parse(%q) = %v, %v; want %v ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
	}
	if got := p.Format("acme", "github"); got != "orgs/acme/servers/github" {
		t.Errorf("Format = %q", got)
	}
	v := MustPattern("orgs/{org}/servers/{server}/versions/{version}")
	if got, err := v.ParseLoose("orgs/acme/servers/gh/versions/1.2.0-rc.1+b5"); err != nil || got[2] != "1.2.0-rc.1+b5" {
		t.Errorf("ParseLoose = %v, %v", got, err)
	}
}

func TestPageTokens(t *testing.T) {
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Name: "users/alice"})
	codec := NewPageTokens([]byte("key-1"))
	q := Query("orgs", `display_name = "a"`)
	tok := codec.Encode(ctx, q, "acme-secret-id")
	if cur, err := codec.Decode(ctx, q, tok); err != nil || cur != "acme-secret-id" {
		t.Fatalf("Decode = %q, %v", cur, err)
	}
	if cur, err := codec.Decode(ctx, q, ""); err != nil || cur != "" {
		t.Fatalf("empty token = %q, %v", cur, err)
	}
	// The token reveals nothing of the position it carries.
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	if bytes.Contains(raw, []byte("acme")) || strings.Contains(tok, "acme") {
		t.Fatalf("token %q carries the cursor in the clear", tok)
	}
	// Another query, another caller, no caller, another key, an edited
	// token: all refused.
	if _, err := codec.Decode(ctx, Query("orgs", ""), tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("other query: %v", err)
	}
	bob := auth.WithPrincipal(context.Background(), auth.Principal{Name: "users/bob"})
	if _, err := codec.Decode(bob, q, tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("other caller: %v", err)
	}
	if _, err := codec.Decode(context.Background(), q, tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("no caller: %v", err)
	}
	if _, err := NewPageTokens([]byte("key-2")).Decode(ctx, q, tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("other key: %v", err)
	}
	edited := []byte(tok)
	edited[len(edited)/2] ^= 1
	if _, err := codec.Decode(ctx, q, string(edited)); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("edited token: %v", err)
	}
	if _, err := codec.Decode(ctx, q, strings.Repeat("A", 5000)); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("huge token: %v", err)
	}
	if Query("ab", "c")[0] == Query("a", "bc")[0] && string(Query("ab", "c")) == string(Query("a", "bc")) {
		t.Error("query digest is ambiguous")
	}
}

func TestPageSize(t *testing.T) {
	for _, tt := range []struct {
		in   int32
		want int
		ok   bool
	}{{0, 50, true}, {10, 10, true}, {1000, 1000, true}, {5000, 1000, true}, {-1, 0, false}} {
		got, err := PageSize(tt.in, 50, 1000)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("PageSize(%d) = %d, %v", tt.in, got, err)
		}
	}
}

func TestUpdatePaths(t *testing.T) {
	// typepb.Field has top-level string fields name, type_url, json_name.
	updatable := []string{"name", "json_name"}
	msg := &typepb.Field{Name: "n"}
	tests := []struct {
		mask []string
		want string
		ok   bool
	}{
		{[]string{"name"}, "name", true},
		{[]string{"*"}, "name,json_name", true},
		{nil, "name", true},
		{[]string{"type_url"}, "", false},
		{[]string{"*", "name"}, "", false},
		{[]string{"name", "name"}, "name", true},
	}
	for _, tt := range tests {
		var mask *fieldmaskpb.FieldMask
		if tt.mask != nil {
			mask = &fieldmaskpb.FieldMask{Paths: tt.mask}
		}
		got, err := UpdatePaths(mask, msg, updatable)
		if (err == nil) != tt.ok || strings.Join(got, ",") != tt.want {
			t.Errorf("UpdatePaths(%v) = %v, %v", tt.mask, got, err)
		}
	}
	if _, err := UpdatePaths(nil, &typepb.Field{}, updatable); err == nil {
		t.Error("empty mask on an empty message must fail")
	}
	dst := &typepb.Field{Name: "old", JsonName: "old", TypeUrl: "keep"}
	ApplyPaths(dst, &typepb.Field{Name: "new"}, []string{"name", "json_name"})
	if dst.Name != "new" || dst.JsonName != "" || dst.TypeUrl != "keep" {
		t.Errorf("ApplyPaths = %v", dst)
	}
}

func TestETag(t *testing.T) {
	a, b := ETag("orgs/acme", 1), ETag("orgs/acme", 2)
	if a == b || a != ETag("orgs/acme", 1) || a == ETag("orgs/acmf", 1) {
		t.Fatal("etags must be deterministic and differ by name and revision")
	}
	if !ETagMatches("", a) || !ETagMatches(a, a) || ETagMatches(b, a) {
		t.Fatal("ETagMatches")
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		s         string
		max       int
		multiline bool
		ok        bool
	}{
		{"Acme", 10, false, true},
		{strings.Repeat("🚀", 100), 100, false, true}, // 400 bytes, 100 characters
		{strings.Repeat("🚀", 101), 100, false, false},
		{"a\x00b", 10, false, false},
		{"\x1b[31mred", 20, false, false},
		{"\x1b]0;title\a", 20, false, false},
		{"line\nline", 20, false, false},
		{"line\nline", 20, true, true},
		{"\x1b[2J", 20, true, false},
		{"bad \xff", 20, false, false},
		{"\u0085next line", 20, false, false},
	}
	for _, tt := range tests {
		if err := CheckText(tt.s, tt.max, tt.multiline); (err == nil) != tt.ok {
			t.Errorf("CheckText(%q, %d, %v) = %v, want ok=%v", tt.s, tt.max, tt.multiline, err, tt.ok)
		}
		// Within the length, CheckPrintable decides alone.
		if len([]rune(tt.s)) <= tt.max {
			if err := CheckPrintable(tt.s, tt.multiline); (err == nil) != tt.ok {
				t.Errorf("CheckPrintable(%q, %v) = %v, want ok=%v", tt.s, tt.multiline, err, tt.ok)
			}
		}
	}
}

func TestUpdatePathsJSONNames(t *testing.T) {
	// typepb.Field: json_name's JSON name is jsonName.
	for _, path := range []string{"json_name", "jsonName"} {
		got, err := UpdatePaths(&fieldmaskpb.FieldMask{Paths: []string{path}}, &typepb.Field{}, []string{"name", "json_name"})
		if err != nil || len(got) != 1 || got[0] != "json_name" {
			t.Errorf("UpdatePaths(%q) = %v, %v", path, got, err)
		}
	}
	if _, err := UpdatePaths(&fieldmaskpb.FieldMask{Paths: []string{"typeUrl"}}, &typepb.Field{}, []string{"name"}); err == nil {
		t.Error("a JSON name of a field that is not updatable was accepted")
	}
}
