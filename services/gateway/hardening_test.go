package gateway

import (
	"strings"
	"testing"

	_ "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

func TestRoutesAllowed(t *testing.T) {
	rs := routesOf(restServices...)
	if len(rs) < 20 {
		t.Fatalf("found %d HTTP rules; the services declare far more", len(rs))
	}
	tests := []struct {
		path string
		want string
	}{
		{"/v1/orgs", "GET, POST"},
		{"/v1/orgs/acme", "DELETE, GET, PATCH"},
		{"/v1/tokens:verify", "POST"},
		{"/v1/invitations:accept", "POST"},
		{"/v1/orgs/acme/servers/github/versions/1.2.0", "GET"},
		{"/v1/nothing/here", ""},
		{"/v1/orgs/acme:verify", ""},
	}
	for _, tt := range tests {
		got := strings.Join(rs.allowed(tt.path), ", ")
		if !strings.Contains(got, tt.want) || (tt.want == "" && got != "") {
			t.Errorf("allowed(%s) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"object", `{"displayName":"x"}`, true},
		{"whitespace after", "{\"a\":1}\n\t ", true},
		{"brackets in strings", `{"a":"[[[[{{{{"}`, true},
		{"trailing word", `{"displayName":"x"} trailing`, false},
		{"second value", `{"displayName":"x"}{"a":1}`, false},
		{"invalid utf-8", "{\"displayName\":\"\xff\"}", false},
		{"deep", strings.Repeat("[", 65) + strings.Repeat("]", 65), false},
		{"at the limit", strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
		{"truncated", `{"a":`, false},
	}
	for _, tt := range tests {
		err := CheckJSON([]byte(tt.body), MaxJSONDepth)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckJSON = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "body") {
			t.Errorf("%s: error %q does not name the body", tt.name, err)
		}
	}
}
