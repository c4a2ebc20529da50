package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestDeclaredRulesREST: a request refused by a rule its proto declares
// (buf.validate) gets over REST what a hand-written rule gives: 400 with
// INVALID_ARGUMENT and a BadRequest naming the field by its proto path.
func TestDeclaredRulesREST(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	fields := func(r restResp) string {
		var out []string
		details, _ := r.body["details"].([]any)
		for _, d := range details {
			d, _ := d.(map[string]any)
			vs, _ := d["fieldViolations"].([]any)
			for _, v := range vs {
				v, _ := v.(map[string]any)
				out = append(out, fmt.Sprint(v["field"]))
			}
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct{ method, path, body, field string }{
		{"POST", "/v1/orgs?organization_id=emoji", `{"displayName":"` + strings.Repeat("🚀", 201) + `"}`, "organization.display_name"},
		{"POST", "/v1/orgs?organization_id=ab", `{}`, "organization_id"},
		{"GET", "/v1/orgs?page_size=-1", "", "page_size"},
		{"POST", "/v1/orgs/acme/registries?registry_id=r", `{"toolPolicy":5}`, "registry.tool_policy"},
		// A hand-written rule, for comparison.
		{"GET", "/v1/orgs?filter=colour%3D%22red%22", "", "filter"},
	} {
		r := u.expect(t, tt.method, tt.path, u.token, tt.body, 400)
		if r.body["code"] != float64(3) || fields(r) != tt.field {
			t.Errorf("%s %s: %v, want code 3 naming %s", tt.method, tt.path, r.body, tt.field)
		}
	}
	u.expect(t, "POST", "/v1/orgs?organization_id=emoji", u.token, `{"displayName":"`+strings.Repeat("🚀", 200)+`"}`, 200)
}
