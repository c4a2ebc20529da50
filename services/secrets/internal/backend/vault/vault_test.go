package vault_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/backendtest"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/vault"
)

// devServer is one `vault server -dev` (in-memory storage, unsealed, KV v2
// at secret/) for the whole test binary, started by the first test that
// needs it and stopped by TestMain.
type devServer struct {
	addr, token string
	dir         string // its HOME and log
	cmd         *exec.Cmd
	done        chan struct{} // closed when it exited
}

var (
	serverOnce sync.Once
	server     *devServer
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.stop()
	}
	os.Exit(code)
}

// vaultBinary is $PYLEE_VAULT_BIN or <repo>/tools/bin/vault, which
// tools/vault/build.sh builds.
func vaultBinary() string {
	if p := os.Getenv("PYLEE_VAULT_BIN"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0) // <repo>/services/secrets/internal/backend/vault/
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "..", "tools", "bin", "vault")
}

// dev returns the running dev server, starting it the first time. Without
// a Vault binary the test is skipped, unless CI=true: CI must run it.
func dev(t *testing.T) *devServer {
	t.Helper()
	bin := vaultBinary()
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no Vault binary at %s: run tools/vault/build.sh or set PYLEE_VAULT_BIN", bin)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	serverOnce.Do(func() { server, serverErr = start(bin) })
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return server
}

func start(bin string) (*devServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pylee-vault-")
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "vault.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	s := &devServer{addr: fmt.Sprintf("http://127.0.0.1:%d", port), token: "root-" + randomHex(), dir: dir, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "server", "-dev", "-dev-root-token-id="+s.token, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port))
	// A HOME of its own, so the token file the dev server writes lands
	// here, and none of the developer's VAULT_* variables.
	s.cmd.Env = append(withoutVaultEnv(), "HOME="+dir)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(s.addr + "/v1/sys/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			log := s.log()
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("vault dev server exited:\n%s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := s.log()
			s.stop()
			return nil, fmt.Errorf("vault dev server not healthy after 60 s:\n%s", log)
		}
	}
}

func (s *devServer) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "vault.log"))
	return string(b)
}

// stop asks Vault to shut down, and kills it if it does not in 10 s.
func (s *devServer) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = os.RemoveAll(s.dir)
}

func withoutVaultEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// root is a client with the dev server's root token, for setting Vault up.
func (s *devServer) root(t *testing.T) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.token)
	return c
}

// open returns a backend on the dev server under a prefix of its own, so
// tests do not see each other's keys.
func open(t *testing.T, s *devServer) *vault.Backend {
	t.Helper()
	b, err := vault.New(t.Context(), vault.Config{Addr: s.addr, Token: config.NewSecret(s.token), Prefix: "pylee-test-" + randomHex()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noTx is the unit of work of a backend outside the service's database.
func noTx(_ context.Context, fn func(tx backend.Tx) error) error { return fn(nil) }

func TestConformance(t *testing.T) {
	s := dev(t)
	backendtest.Run(t, func(t *testing.T) (backend.Backend, func(context.Context, func(backend.Tx) error) error) {
		return open(t, s), noTx
	})
}

func TestCheck(t *testing.T) {
	s := dev(t)
	if err := open(t, s).Check(t.Context()); err != nil {
		t.Fatalf("Check on the dev server's secret/: %v", err)
	}
	b, err := vault.New(t.Context(), vault.Config{Addr: s.addr, Token: config.NewSecret(s.token), Mount: "cubbyhole"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t.Context()); err == nil {
		t.Fatal("Check accepted cubbyhole/, which is not KV v2")
	}
}

// TestLayout pins where values are kept: operators write Vault policies
// and backups against these paths.
func TestLayout(t *testing.T) {
	s := dev(t)
	prefix := "pylee-layout-" + randomHex()
	b, err := vault.New(t.Context(), vault.Config{Addr: s.addr, Token: config.NewSecret(s.token), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	key := backend.Key{Org: "acme", Scope: "orgs/acme/registries/prod", Kind: backend.Secret, Name: "GITHUB_TOKEN"}
	if _, err := b.Put(t.Context(), nil, key, []byte{0, 1, 2}, 0, backend.Write{Fingerprint: "fp", Creator: "users/alice"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.root(t).Logical().ReadWithContext(t.Context(), "secret/data/"+prefix+"/orgs/acme/registries/prod/secrets/GITHUB_TOKEN")
	if err != nil || got == nil {
		t.Fatalf("read the raw version: %v, %v", got, err)
	}
	data, _ := got.Data["data"].(map[string]any)
	if data["value"] != "AAEC" || data["fingerprint"] != "fp" || data["creator"] != "users/alice" {
		t.Fatalf("raw data = %v", data)
	}
}

func TestUnreachable(t *testing.T) {
	port, err := freePort() // closed as soon as it is found
	if err != nil {
		t.Fatal(err)
	}
	const token, value = "s.token-never-printed", "value-never-printed"
	b, err := vault.New(t.Context(), vault.Config{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Token: config.NewSecret(token), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := backend.Key{Org: "acme", Scope: "orgs/acme", Kind: backend.Secret, Name: "X"}
	_, err = b.Put(t.Context(), nil, key, []byte(value), backend.Any, backend.Write{Fingerprint: "fp", Creator: "users/u"})
	if !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("Put with Vault down: got %v, want ErrUnavailable", err)
	}
	if msg := err.Error(); strings.Contains(msg, value) || strings.Contains(msg, token) {
		t.Fatalf("the error shows the value or the token: %s", msg)
	}
	if _, _, err := b.Get(t.Context(), nil, key, 0); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("Get with Vault down: got %v, want ErrUnavailable", err)
	}
}

// TestErrorsHideValues checks the errors Vault itself returns.
func TestErrorsHideValues(t *testing.T) {
	s := dev(t)
	b := open(t, s)
	key := backend.Key{Org: "acme", Scope: "orgs/acme", Kind: backend.Secret, Name: "X"}
	const value = "value-never-printed"
	w := backend.Write{Fingerprint: "fp", Creator: "users/u"}
	if _, err := b.Put(t.Context(), nil, key, []byte(value), 0, w); err != nil {
		t.Fatal(err)
	}
	_, err := b.Put(t.Context(), nil, key, []byte(value), 0, w)
	if !errors.Is(err, errs.ErrEtagMismatch) || strings.Contains(err.Error(), value) || strings.Contains(err.Error(), s.token) {
		t.Fatalf("check-and-set conflict: %v", err)
	}
	// A token without rights: Vault refuses, and the error shows neither.
	bad, err := vault.New(t.Context(), vault.Config{Addr: s.addr, Token: config.NewSecret("s.not-a-real-token")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Put(t.Context(), nil, key, []byte(value), backend.Any, w)
	if err == nil || strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "s.not-a-real-token") {
		t.Fatalf("Put with a refused token: %v", err)
	}
}

func TestAppRole(t *testing.T) {
	s := dev(t)
	root := s.root(t)
	ctx := t.Context()
	mount := "approle-" + randomHex()[:8]
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	prefix := "pylee-approle-" + randomHex()
	policy := fmt.Sprintf(`
path "secret/data/%[1]s/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/%[1]s/*" { capabilities = ["read", "list", "delete"] }
`, prefix)
	if err := root.Sys().PutPolicyWithContext(ctx, prefix, policy); err != nil {
		t.Fatal(err)
	}
	// Tokens that expire within the test show that the backend logs in again.
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/pylee", map[string]any{
		"token_policies": []string{prefix}, "token_ttl": "2s", "token_max_ttl": "2s"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().ReadWithContext(ctx, "auth/"+mount+"/role/pylee/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/pylee/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vault.Config{Addr: s.addr, RoleID: config.NewSecret(rid.Data["role_id"].(string)),
		SecretID: config.NewSecret(sid.Data["secret_id"].(string)), AppRoleMount: mount, Prefix: prefix}
	b, err := vault.New(ctx, cfg)
	if err != nil {
		t.Fatalf("AppRole login: %v", err)
	}
	key := backend.Key{Org: "acme", Scope: "orgs/acme/registries/prod", Kind: backend.Secret, Name: "TOKEN"}
	w := backend.Write{Fingerprint: "fp", Creator: "users/u"}
	if _, err := b.Put(ctx, nil, key, []byte("one"), 0, w); err != nil {
		t.Fatalf("Put: %v", err)
	}
	time.Sleep(2500 * time.Millisecond) // the login's token expires
	if m, err := b.Put(ctx, nil, key, []byte("two"), 1, w); err != nil || m.Version != 2 {
		t.Fatalf("Put after the token expired: %+v, %v", m, err)
	}
	v, m, err := b.Get(ctx, nil, key, 0)
	if err != nil || string(v) != "two" || m.Version != 2 {
		t.Fatalf("Get: %q %+v %v", v, m, err)
	}
	if list, err := b.List(ctx, nil, key.Scope, key.Kind); err != nil || len(list) != 1 {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if err := b.Delete(ctx, nil, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	cfg.SecretID = config.NewSecret("not-the-secret-id")
	_, err = vault.New(ctx, cfg)
	if err == nil || strings.Contains(err.Error(), "not-the-secret-id") {
		t.Fatalf("login with a wrong secret id: %v", err)
	}
}
