package main

import (
	"path/filepath"
	"testing"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
)

// TestEachTargetStartsAlone: every target runs as its own process given
// the others' addresses (which need not answer yet: connections are made
// when first used), and stops cleanly on SIGTERM.
func TestEachTargetStartsAlone(t *testing.T) {
	dir := t.TempDir()
	others := []string{}
	for _, target := range app.Targets {
		others = append(others, "--"+target+"-addr", freeAddr(t))
	}
	for _, target := range app.Targets {
		t.Run(target, func(t *testing.T) {
			httpAddr := freeAddr(t)
			args := append([]string{"serve", "--target=" + target, "--migrate", "--grpc-addr", freeAddr(t), "--http-addr", httpAddr,
				"--data-dir", filepath.Join(dir, target), "--log-format", "json", "--log-level", "warn"}, others...)
			p := startProc(t, httpAddr, filepath.Join(dir, target+".log"), args...)
			p.stop()
		})
	}
}
