// Package app assembles a Pylee process from targets (services), the way
// one binary runs as a monolith (`pylee up`) or as one service of a split
// deployment (`pylee serve --target=orgs`).
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/audit"
	"github.com/pyleeai/pylee/services/deploy"
	"github.com/pyleeai/pylee/services/gateway"
	"github.com/pyleeai/pylee/services/orgs"
	"github.com/pyleeai/pylee/services/registry"
	"github.com/pyleeai/pylee/services/secrets"
)

// Config is what a process needs to run its targets.
type Config struct {
	// Targets are the services to run; "all" means every one.
	Targets []string
	// GRPCAddr and HTTPAddr are listen addresses; port 0 picks one.
	GRPCAddr string
	HTTPAddr string
	// DataDir holds SQLite files, keys and the bootstrap token.
	DataDir string
	// DatabaseURL is empty for SQLite files in DataDir, or postgres://…
	// (each service then keeps its own schema in that database).
	DatabaseURL string
	// OrgsAddr is the gRPC address of the orgs service when this process
	// does not run it; empty means this process's own listener.
	OrgsAddr string
	// PageTokenKey signs list page tokens; replicas must share it. Empty
	// means a key kept in DataDir.
	PageTokenKey    config.Secret
	MaxBodyBytes    int64
	ShutdownTimeout time.Duration
	// AuthCacheTTL bounds how long a revoked token keeps working.
	AuthCacheTTL time.Duration
}

// Targets lists every target in start order: services before the edge.
var Targets = []string{orgs.Target, registry.Target, secrets.Target, deploy.Target, audit.Target, gateway.Target}

// TokenFile is the bootstrap admin token's file in the data directory.
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// App is a running process.
type App struct {
	cfg     Config
	log     *zap.Logger
	srv     *server.Server
	targets []string
	// TokenCreated is true when this start created the bootstrap token.
	TokenCreated bool
}

// ResolveTargets expands "all" and checks names.
func ResolveTargets(in []string) ([]string, error) {
	set := map[string]bool{}
	for _, t := range in {
		for _, name := range strings.Split(t, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "":
			case name == "all":
				for _, n := range Targets {
					set[n] = true
				}
			case slices.Contains(Targets, name):
				set[name] = true
			default:
				return nil, fmt.Errorf("unknown target %q (targets: all, %s)", name, strings.Join(Targets, ", "))
			}
		}
	}
	var out []string
	for _, n := range Targets {
		if set[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no target given")
	}
	return out, nil
}

// New builds the process: it binds both listeners (so their addresses are
// known) and initialises every target. Run serves it.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*App, error) {
	targets, err := ResolveTargets(cfg.Targets)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 10 * time.Second
	}
	a := &App{cfg: cfg, log: log, targets: targets}
	a.srv = server.New(server.Config{
		GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout,
	}, log)
	if err := a.srv.Listen(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.srv.AbortListen()
		}
	}()
	for _, t := range targets {
		if err := a.initTarget(ctx, t); err != nil {
			a.srv.RunCleanups(ctx)
			return nil, fmt.Errorf("%s: %w", t, err)
		}
	}
	ok = true
	return a, nil
}

func (a *App) has(t string) bool { return slices.Contains(a.targets, t) }

func (a *App) initTarget(ctx context.Context, t string) error {
	switch t {
	case orgs.Target:
		return a.initOrgs(ctx)
	case gateway.Target:
		return a.initGateway(ctx)
	case registry.Target, secrets.Target, deploy.Target, audit.Target:
		a.log.Debug("target has no RPCs yet", zap.String("target", t))
		return nil
	}
	return fmt.Errorf("unknown target")
}

// databaseURL is the database of one service.
func (a *App) databaseURL(service string) string {
	if a.cfg.DatabaseURL != "" {
		return a.cfg.DatabaseURL
	}
	return "sqlite:" + filepath.Join(a.cfg.DataDir, service+".db")
}

func (a *App) initOrgs(ctx context.Context) error {
	st, err := orgs.OpenStore(ctx, a.databaseURL(orgs.Target))
	if err != nil {
		return err
	}
	a.srv.AddCleanup("orgs store", func(context.Context) error { return st.Close() })
	created, err := orgs.Bootstrap(ctx, st, TokenFile(a.cfg.DataDir))
	if err != nil {
		return err
	}
	a.TokenCreated = created
	key, err := a.pageTokenKey()
	if err != nil {
		return err
	}
	orgs.New(st, aip.NewPageTokens(key)).Register(a.srv)
	a.srv.SetAuth(auth.NewCache(orgs.NewTokenAuthenticator(st), a.cfg.AuthCacheTTL, 10_000), auth.AllowAuthenticated{})
	return nil
}

func (a *App) initGateway(ctx context.Context) error {
	addr := a.cfg.OrgsAddr
	if addr == "" {
		if !a.has(orgs.Target) {
			return errors.New("the orgs service is neither a target of this process nor given by --orgs-addr")
		}
		addr = a.srv.GRPCAddr()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial orgs at %s: %w", addr, err)
	}
	a.srv.AddCleanup("orgs connection", func(context.Context) error { return conn.Close() })
	rest, err := gateway.NewREST(ctx, gateway.Backends{Orgs: conn}, gateway.RESTConfig{MaxBodyBytes: a.cfg.MaxBodyBytes})
	if err != nil {
		return err
	}
	a.srv.Handle("/v1/", rest)
	return nil
}

// pageTokenKey is the configured key, or one kept in the data directory.
func (a *App) pageTokenKey() ([]byte, error) {
	if !a.cfg.PageTokenKey.IsZero() {
		return []byte(a.cfg.PageTokenKey.Reveal()), nil
	}
	path := filepath.Join(a.cfg.DataDir, "page-token.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	return key, nil
}

// GRPCAddr is the bound gRPC address.
func (a *App) GRPCAddr() string { return a.srv.GRPCAddr() }

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string { return a.srv.HTTPAddr() }

// Targets are the targets this process runs.
func (a *App) Targets() []string { return a.targets }

// Server is the process's server, for tests that inspect it.
func (a *App) Server() *server.Server { return a.srv }

// DataDir is the absolute data directory.
func (a *App) DataDir() string { return a.cfg.DataDir }

// Run serves until ctx is done and then shuts down cleanly.
func (a *App) Run(ctx context.Context) error { return a.srv.Run(ctx) }

// Services lists the gRPC services this process serves, sorted.
func (a *App) Services() []string {
	var out []string
	for name := range a.srv.GRPC().GetServiceInfo() {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
