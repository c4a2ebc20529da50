package jsonlimit

import (
	"strings"
	"testing"
)

func TestDepth(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`1`, 0}, {`{}`, 1}, {`{"a":[{"b":[]}]}`, 4}, {`{"a":"[[[{{{"}`, 1}, {`{"a":"\"[["}`, 1},
		{strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000), 5000},
	}
	for _, tt := range tests {
		if got := Depth([]byte(tt.in)); got != tt.want {
			t.Errorf("Depth(%.30s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
