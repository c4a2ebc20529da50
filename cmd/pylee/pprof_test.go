package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestPprofLoopbackOnly: PYLEE_PPROF_ADDR serves profiles on a loopback
// address and refuses any other.
func TestPprofLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "10.1.2.3:6060", "example.com:6060", "nonsense"} {
		if _, err := servePprof(addr); err == nil {
			t.Errorf("servePprof(%q) accepted a non-loopback address", addr)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv, err := servePprof(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "pylee") {
		t.Fatalf("cmdline: %d %q", resp.StatusCode, b)
	}
}
