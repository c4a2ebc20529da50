package audit

import "testing"

func FuzzParseEventFilter(f *testing.F) {
	for _, s := range []string{`actor = "users/a"`, `action : "orgs." AND outcome = "ok"`, `event_time >= "2026-01-01T00:00:00Z"`,
		`resource : "a AND b"`, `outcome = "x"`, `a AND`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseEventFilter(s) // must not panic on any input
	})
}
