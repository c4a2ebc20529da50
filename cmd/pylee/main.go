// Command pylee runs Pylee's services (`pylee up`, `pylee serve`) and is
// its command-line client.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
)

func main() {
	if addr := os.Getenv("PYLEE_PPROF_ADDR"); addr != "" {
		if _, err := servePprof(addr); err != nil {
			fmt.Fprintln(os.Stderr, "pylee: PYLEE_PPROF_ADDR:", err)
			os.Exit(2)
		}
	}
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// servePprof serves Go's profiles (/debug/pprof/) on addr, a loopback
// address only: profiles show what the process does, so they are for the
// operator on the machine, never on a service's own listeners.
// `make bench-official -profile DIR` uses it.
func servePprof(addr string) (*http.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%q is not a loopback address (127.0.0.1:PORT or [::1]:PORT)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
