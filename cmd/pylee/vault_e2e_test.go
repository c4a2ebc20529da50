package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vaultDev is a real Vault dev server for a test (tools/vault/build.sh
// builds the binary; $PYLEE_VAULT_BIN overrides it). Without one the test
// is skipped, unless CI=true: CI runs it.
type vaultDev struct{ addr, token string }

func startVault(t *testing.T) vaultDev {
	t.Helper()
	bin := os.Getenv("PYLEE_VAULT_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "tools", "bin", "vault")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no Vault binary at %s: run tools/vault/build.sh or set PYLEE_VAULT_BIN", bin)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	v := vaultDev{addr: "http://" + freeAddr(t), token: "root-" + hex.EncodeToString(raw)}
	dir := t.TempDir()
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+v.token, "-dev-listen-address="+strings.TrimPrefix(v.addr, "http://"))
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VAULT_") {
			env = append(env, e)
		}
	}
	cmd.Env, cmd.Dir = append(env, "HOME="+dir), dir
	log, err := os.Create(filepath.Join(dir, "vault.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	for deadline := time.Now().Add(60 * time.Second); ; {
		if resp, err := http.Get(v.addr + "/v1/sys/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "vault.log"))
			t.Fatalf("vault dev server exited: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("vault dev server not ready in 60 s")
		}
	}
}
