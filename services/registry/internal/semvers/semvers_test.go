package semvers

import (
	"testing"

	"github.com/Masterminds/semver/v3"
)

// The precedence examples of SemVer 2.0.0 §11, each lower than the next.
var ascending = []string{
	"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
	"1.0.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0",
}

func mustParse(t testing.TB, s string) *semver.Version {
	t.Helper()
	v, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return v
}

func TestPrecedence(t *testing.T) {
	for i := range ascending {
		for j := range ascending {
			a, b := mustParse(t, ascending[i]), mustParse(t, ascending[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ascending[i], ascending[j], got, want)
			}
		}
	}
	// Build metadata does not take part in precedence (§10).
	if Compare(mustParse(t, "1.0.0+20130313144700"), mustParse(t, "1.0.0+exp.sha.5114f85")) != 0 {
		t.Error("build metadata changed precedence")
	}
	if Compare(mustParse(t, "1.0.0-beta+exp.sha.5114f85"), mustParse(t, "1.0.0-beta")) != 0 {
		t.Error("build metadata changed the precedence of a prerelease")
	}
	var vs []*semver.Version
	for i := len(ascending) - 1; i >= 0; i-- {
		vs = append(vs, mustParse(t, ascending[(i*7)%len(ascending)]))
	}
	SortDesc(vs)
	for i := 1; i < len(vs); i++ {
		if vs[i].GreaterThan(vs[i-1]) {
			t.Fatalf("SortDesc: %s before %s", vs[i-1], vs[i])
		}
	}
}

func TestStrictParse(t *testing.T) {
	for _, bad := range []string{"", "1", "1.0", "v1.0.0", "01.0.0", "1.01.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1.0.0-a..b",
		"1.0.0 ", " 1.0.0", "^1.0.0", "1.x", "latest", "1.0.0-alpha_beta"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for _, good := range []string{"0.0.0", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0-alpha+001", "1.0.0+21AF26D3----117B344092BD"} {
		mustParse(t, good)
	}
}

func TestLatest(t *testing.T) {
	vs := []*semver.Version{mustParse(t, "1.0.0"), mustParse(t, "1.2.0"), mustParse(t, "2.0.0-rc.1"), mustParse(t, "1.10.0")}
	if l := Latest(vs); l.String() != "1.10.0" {
		t.Errorf("Latest = %s, want 1.10.0 (a prerelease is never latest)", l)
	}
	if Latest([]*semver.Version{mustParse(t, "1.0.0-rc.1")}) != nil {
		t.Error("only prereleases: want no latest")
	}
}

func TestRanges(t *testing.T) {
	vs := []*semver.Version{}
	for _, s := range []string{"1.0.0", "1.2.0", "1.2.5", "1.3.0-rc.1", "1.9.0", "2.0.0-beta.1", "2.0.0", "2.1.0"} {
		vs = append(vs, mustParse(t, s))
	}
	tests := []struct{ rng, want string }{
		{"^1.2", "1.9.0"},
		{"~1.2.0", "1.2.5"},
		{">=1.0.0 <2.0.0", "1.9.0"},
		{"1.x", "1.9.0"},
		{"^2", "2.1.0"},
		{"=1.2.0", "1.2.0"},
		{"<1.2.0", "1.0.0"},
		// A prerelease only when the range names one.
		{"~1.3.0-0", "1.3.0-rc.1"},
		{">=2.0.0-0 <2.0.0", "2.0.0-beta.1"},
		{"^3", ""},
	}
	for _, tc := range tests {
		r, err := ParseRange(tc.rng)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", tc.rng, err)
		}
		got := ""
		if h := r.Highest(vs); h != nil {
			got = h.String()
		}
		if got != tc.want {
			t.Errorf("%q picks %q, want %q", tc.rng, got, tc.want)
		}
	}
	r, _ := ParseRange("^1.2")
	if r.Matches(mustParse(t, "1.3.0-rc.1")) {
		t.Error("^1.2 matched a prerelease")
	}
	for _, bad := range []string{"", "not a range", "^^1", ">=1.0.0 <"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

func TestSuggest(t *testing.T) {
	vs := func(ss ...string) []*semver.Version {
		var out []*semver.Version
		for _, s := range ss {
			out = append(out, mustParse(t, s))
		}
		return out
	}
	tests := []struct {
		have      []*semver.Version
		bump, pre string
		want      string
	}{
		{nil, "patch", "", "1.0.0"},
		{nil, "minor", "rc", "1.0.0-rc.1"},
		{vs("1.2.3"), "patch", "", "1.2.4"},
		{vs("1.2.3", "1.0.0"), "minor", "", "1.3.0"},
		{vs("1.2.3"), "major", "", "2.0.0"},
		{vs("1.2.3"), "minor", "rc", "1.3.0-rc.1"},
		{vs("1.2.3", "1.3.0-rc.1"), "minor", "rc", "1.3.0-rc.2"},
		{vs("1.2.3", "1.3.0-rc.2"), "minor", "", "1.3.0"},
		{vs("1.2.3", "1.3.0-rc.2"), "major", "", "2.0.0"},
		{vs("1.2.3+build.9"), "patch", "", "1.2.4"},
	}
	for _, tc := range tests {
		got, _, err := Suggest(tc.have, tc.bump, tc.pre)
		if err != nil || got != tc.want {
			t.Errorf("Suggest(%v, %s, %q) = %q, %v; want %q", tc.have, tc.bump, tc.pre, got, err, tc.want)
		}
	}
	if _, _, err := Suggest(nil, "huge", ""); err == nil {
		t.Error("bad bump accepted")
	}
	if _, _, err := Suggest(nil, "minor", "rc.1"); err == nil {
		t.Error("dotted prerelease accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range append(ascending, "1.0.0+build", "v1", "1.0.0-0.3.7") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		// Strict: what parses prints back the same, and compares equal.
		if v.Original() != s || v.String() != s {
			t.Fatalf("Parse(%q) prints %q", s, v.String())
		}
		again, err := Parse(v.String())
		if err != nil || Compare(v, again) != 0 {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"^1.2", "~1.2.0", ">=1.0.0 <2.0.0", "1.x", "~1.3.0-0", "^1 || ^2", "*"} {
		f.Add(s, "1.2.3")
	}
	f.Fuzz(func(t *testing.T, rng, version string) {
		r, err := ParseRange(rng)
		if err != nil {
			return
		}
		v, err := Parse(version)
		if err != nil {
			return
		}
		// Matching never panics, and Highest agrees with Matches.
		m := r.Matches(v)
		if h := r.Highest([]*semver.Version{v}); (h != nil) != m {
			t.Fatalf("%q on %q: Matches %v, Highest %v", rng, version, m, h)
		}
	})
}
