package cli

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"acme", "acme"},
		{"Café ☕ 日本 👩‍💻", "Café ☕ 日本 👩\\u200d💻"}, // a ZWJ is a format character too
		{`C:\path`, `C:\path`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`},                     // OSC: set the window title
		{"\x1b]52;c;cGF5bG9hZA==\x07", `\x1b]52;c;cGF5bG9hZA==\x07`}, // OSC 52: write the clipboard
		{"a\x00b\x7fc", `a\x00b\x7fc`},
		{"\u009b31m", `\u009b31m`}, // C1 CSI
		{"\u0085", `\u0085`},
		{"abc\u202edcba", `abc\u202edcba`}, // right-to-left override
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"tag\U000E0041", `tag\U000e0041`},
		{"line\u2028sep", `line\u2028sep`},
		{"col1\tcol2\nrow2\r", `col1\tcol2\nrow2\r`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"\ufffe", `\ufffe`},
	} {
		got := printable(c.in)
		if got != c.want {
			t.Errorf("printable(%q) = %q, want %q", c.in, got, c.want)
		}
		assertSafe(t, "printable", got, "")
	}
	if got := printableText("a\n\tb\x1b\r"); got != "a\n\tb\\x1b\\r" {
		t.Errorf("printableText = %q", got)
	}
}

// assertSafe fails if s holds a rune that must not reach a terminal, other
// than those in allowed.
func assertSafe(t *testing.T, what, s, allowed string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s: not UTF-8: %q", what, s)
	}
	for _, r := range s {
		if unsafeRune(r) && !strings.ContainsRune(allowed, r) {
			t.Errorf("%s: raw %U in %q", what, r, s)
		}
	}
}

// hostile is an organization whose every text field tries something.
func hostile() *orgsv1.Organization {
	return &orgsv1.Organization{
		Name:        "orgs/acme",
		DisplayName: "\x1b]0;pwned\x07Acme\x1b[2J",
		Description: "safe \u202egnp.exe",
		Overview:    "# Acme\n\u009b31mred\u200b\U000E0041\x7f\u0085\u2028\ufeff\\\"end",
		Etag:        "plain",
	}
}

func capture(output string, m func(g *globals) error) string {
	var out bytes.Buffer
	g := &globals{output: output, stdout: &out, stderr: &out}
	if err := m(g); err != nil {
		return "error: " + err.Error()
	}
	return out.String()
}

func TestOutputEscapesServerDataInEveryFormat(t *testing.T) {
	o := hostile()
	table := capture("table", func(g *globals) error { return g.printOrg(o) })
	assertSafe(t, "table", table, "\n")
	if !strings.Contains(table, `\x1b]0;pwned\x07Acme\x1b[2J`) || !strings.Contains(table, `safe \u202egnp.exe`) {
		t.Errorf("table does not show the escapes:\n%s", table)
	}
	if lines := strings.Count(table, "\n"); lines != 2 {
		t.Errorf("table has %d lines, want 2:\n%s", lines, table)
	}

	// JSON and YAML escape in their own syntax: a parser reads the very
	// values the server sent.
	js := capture("json", func(g *globals) error { return g.printOrg(o) })
	assertSafe(t, "json", js, "\n")
	var fromJSON map[string]any
	if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, js)
	}
	ym := capture("yaml", func(g *globals) error { return g.printOrg(o) })
	assertSafe(t, "yaml", ym, "\n")
	j, err := yaml.YAMLToJSON([]byte(ym))
	if err != nil {
		t.Fatalf("yaml output does not parse: %v\n%s", err, ym)
	}
	var fromYAML map[string]any
	if err := json.Unmarshal(j, &fromYAML); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"displayName": o.DisplayName, "description": o.Description, "overview": o.Overview, "etag": o.Etag} {
		if fromJSON[field] != want {
			t.Errorf("json %s = %q, want %q", field, fromJSON[field], want)
		}
		if fromYAML[field] != want {
			t.Errorf("yaml %s = %q, want %q", field, fromYAML[field], want)
		}
	}
	if !strings.Contains(ym, "etag: plain") || !strings.Contains(ym, "name: orgs/acme") {
		t.Errorf("yaml changed the style of safe values:\n%s", ym)
	}
}

func TestYAMLEscapesMapKeys(t *testing.T) {
	y, err := safeYAML([]byte(`{"labels": {"k\u202ey": "v\u001b", "plain": "x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	assertSafe(t, "yaml", string(y), "\n")
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if string(j) != `{"labels":{"k`+"\u202e"+`y":"v\u001b","plain":"x"}}` {
		t.Errorf("round trip = %s from\n%s", j, y)
	}
}

func TestEscapeJSONKeepsTheDocument(t *testing.T) {
	in := "{\n  \"a\": \"x\u202ey\u009b\U000E0041\",\n\t\"b\": 1\r\n}"
	out := escapeJSON([]byte(in))
	assertSafe(t, "escapeJSON", string(out), "\n\t\r")
	var a, b map[string]any
	if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal(out, &b) != nil || a["a"] != b["a"] || b["b"] != float64(1) {
		t.Fatalf("escapeJSON changed the document: %s", out)
	}
	if !strings.Contains(string(out), `x\u202ey\u009b\udb40\udc41`) {
		t.Errorf("escapeJSON = %s", out)
	}
}

// Enum values are spelt as the API spells them, in every format.
func TestEnumSpellingIsTheSameInEveryFormat(t *testing.T) {
	a := &registryv1.Approval{Name: "orgs/acme/registries/production/approvals/1", Kind: registryv1.Approval_KIND_PIN,
		State: registryv1.Approval_STATE_PENDING, MinApprovals: 2, Entry: "orgs/acme/registries/production/entries/github", Version: "1.2.0"}
	v := &registryv1.ServerVersion{Name: "orgs/acme/servers/github/versions/1.2.0", Version: "1.2.0", Status: registryv1.ServerVersion_STATUS_ACTIVE}
	r := &registryv1.Registry{Name: "orgs/acme/registries/production", Effective: &registryv1.RegistrySettings{
		ToolPolicy: registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY, RolloutPolicy: &registryv1.RolloutPolicy{Strategy: registryv1.RolloutPolicy_STRATEGY_CANARY}}}
	for _, c := range []struct {
		print func(g *globals) error
		want  map[string]string // JSON field: value
	}{
		{func(g *globals) error { return g.printMessage(a, printApproval(a)) }, map[string]string{"kind": "KIND_PIN", "state": "STATE_PENDING"}},
		{func(g *globals) error { return g.printMessage(v, printVersion(v)) }, map[string]string{"status": "STATUS_ACTIVE"}},
		{func(g *globals) error { return g.printMessage(r, printRegistry(r)) }, map[string]string{"toolPolicy": "TOOL_POLICY_READ_ONLY", "strategy": "STRATEGY_CANARY"}},
	} {
		table, js, ym := capture("table", c.print), capture("json", c.print), capture("yaml", c.print)
		js = regexp.MustCompile(`":\s+`).ReplaceAllString(js, `": `) // protojson varies its spacing
		for field, want := range c.want {
			if !strings.Contains(js, `"`+field+`": "`+want+`"`) {
				t.Errorf("json lacks %s %s:\n%s", field, want, js)
			}
			if !strings.Contains(ym, field+": "+want) {
				t.Errorf("yaml lacks %s %s:\n%s", field, want, ym)
			}
			if !strings.Contains(table, want) {
				t.Errorf("table lacks %s:\n%s", want, table)
			}
		}
	}
}

func TestEnumFlagTakesShortAndAPINames(t *testing.T) {
	for _, in := range []string{"pending", "PENDING", "STATE_PENDING", "state_pending"} {
		if n, err := enumFlag("state", "STATE_", in, registryv1.Approval_State_value); err != nil || registryv1.Approval_State(n) != registryv1.Approval_STATE_PENDING {
			t.Errorf("%q: %v %v", in, n, err)
		}
	}
	if n, err := enumFlag("tool-policy", "TOOL_POLICY_", "read-only", registryv1.ToolPolicy_value); err != nil || registryv1.ToolPolicy(n) != registryv1.ToolPolicy_TOOL_POLICY_READ_ONLY {
		t.Errorf("read-only: %v %v", n, err)
	}
	for _, bad := range []string{"bogus", "unspecified", "STATE_UNSPECIFIED", ""} {
		if _, err := enumFlag("state", "STATE_", bad, registryv1.Approval_State_value); err == nil || !strings.Contains(err.Error(), "pending") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTableCellsCannotBreakColumns(t *testing.T) {
	var out bytes.Buffer
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', 0)
	row(w, "A", "B")
	row(w, "x\ty\nz", "w")
	w.Flush()
	if strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), `x\ty\nz`) {
		t.Fatalf("table = %q", out.String())
	}
}
