package log

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

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

func TestNewToJSON(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewTo(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines = %q", lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m["msg"] != "shown" || m["time"] == nil {
		t.Fatalf("line = %s, %v", lines[0], err)
	}
}
