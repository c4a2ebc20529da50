package secrets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/vault"
)

// BenchmarkResolve measures Resolve on the keyring (SQLite) with 20
// values over four scopes: answered from the resolution cache (hit), and
// read again from the backend (cold: the cache marked stale before every
// call, as a write would), with its audit event each time.
func BenchmarkResolve(b *testing.B) {
	b.Run("keyring", func(b *testing.B) { benchResolve(b, newBenchService(b)) })
	b.Run("vault", func(b *testing.B) {
		addr, token := startVault(b)
		vb, err := vault.New(context.Background(), vault.Config{Addr: addr, Token: config.NewSecret(token)})
		if err != nil {
			b.Fatal(err)
		}
		s := newBenchService(b)
		s.backend = vb
		benchResolve(b, s)
	})
}

func benchResolve(b *testing.B, s *Service) {
	ctx := context.Background()
	for i := range 20 {
		scope := []string{"orgs/acme", "orgs/acme/registries/prod", "orgs/acme/servers/gh", "orgs/acme/users/u1"}[i%4]
		key := backend.Key{Org: "acme", Scope: scope, Kind: backend.Kind(1 + i%2), Name: fmt.Sprintf("NAME_%d", i)}
		if _, err := s.set(ctx, "bench.set", key, []byte("value"), backend.Any, nil); err != nil {
			b.Fatal(err)
		}
	}
	req := &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/prod", Server: "orgs/acme/servers/gh", User: "users/u1"}
	for _, mode := range []string{"hit", "cold"} {
		b.Run(mode, func(b *testing.B) {
			durs := make([]time.Duration, 0, b.N)
			for b.Loop() {
				if mode == "cold" {
					s.resolved.changed()
					s.resolved.mu.Lock()
					s.resolved.byKey = map[[3]string]*resolution{}
					s.resolved.mu.Unlock()
				}
				start := time.Now()
				resp, err := s.Resolve(ctx, req)
				if err != nil || len(resp.GetValues()) != 20 {
					b.Fatalf("%d values, %v", len(resp.GetValues()), err)
				}
				durs = append(durs, time.Since(start))
			}
			sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resolves/s")
		})
	}
}

// startVault starts a Vault dev server (tools/bin/vault, or
// $PYLEE_VAULT_BIN) for a benchmark, or skips it without one.
func startVault(b testing.TB) (addr, token string) {
	b.Helper()
	bin := os.Getenv("PYLEE_VAULT_BIN")
	if bin == "" {
		_, file, _, _ := runtime.Caller(0)
		bin = filepath.Join(filepath.Dir(file), "..", "..", "tools", "bin", "vault")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("no Vault binary: run tools/vault/build.sh")
		}
		b.Skip("no Vault binary: run tools/vault/build.sh")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	token = "root-" + hex.EncodeToString(raw)
	dir := b.TempDir()
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+token, "-dev-listen-address="+listen)
	cmd.Env, cmd.Dir = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}, dir
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "http://" + listen
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(addr + "/v1/sys/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, token
			}
		}
	}
	b.Fatal("vault dev server not ready")
	return "", ""
}
