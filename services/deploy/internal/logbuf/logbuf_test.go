package logbuf

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestRedactsAcrossWritesAndBounds(t *testing.T) {
	b := New(3, 40)
	b.SetSecrets([]string{"s3cr3t", "s3cr3t-long"})
	// A secret split across two writes is still redacted whole.
	fmt.Fprint(b, "key=s3c")
	fmt.Fprint(b, "r3t-long and s3cr3t\nline2\n")
	fmt.Fprint(b, "line3\nline4\n"+strings.Repeat("x", 100)+"\n")
	got, dropped := b.Tail(0)
	want := []string{"line3", "line4", strings.Repeat("x", 40) + "…"}
	if !reflect.DeepEqual(got, want) || dropped != 2 {
		t.Fatalf("tail = %q dropped %d; want %q dropped 2", got, dropped, want)
	}
	b2 := New(10, 100)
	b2.SetSecrets([]string{"s3cr3t", "s3cr3t-long"})
	fmt.Fprint(b2, "key=s3c")
	fmt.Fprint(b2, "r3t-long and s3cr3t\n")
	if got, _ := b2.Tail(1); got[0] != "key=[REDACTED] and [REDACTED]" {
		t.Fatalf("redacted line = %q", got[0])
	}
	if got, dropped := b2.Tail(5); len(got) != 1 || dropped != 0 {
		t.Fatalf("tail(5) of one line = %q, %d", got, dropped)
	}
}
