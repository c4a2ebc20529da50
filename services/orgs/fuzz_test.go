package orgs

import "testing"

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`display_name = "Acme"`, `display_name : "ac"`, `display_name="a b"`, `x = "y"`, `display_name = "\"`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter(s)
		if err != nil {
			return
		}
		if flt.equals != nil && flt.contains != "" {
			t.Fatalf("parseFilter(%q) set both an exact and a substring match", s)
		}
	})
}
