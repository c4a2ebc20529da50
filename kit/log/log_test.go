package log

import "testing"

func TestNew(t *testing.T) {
	for _, f := range []string{"json", "console"} {
		if _, err := New(f, "info"); err != nil {
			t.Errorf("New(%s): %v", f, err)
		}
	}
	if _, err := New("xml", "info"); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := New("json", "loud"); err == nil {
		t.Error("unknown level accepted")
	}
}
