// Package app assembles a Pylee process from targets (services), the way
// one binary runs as a monolith (`pylee up`) or as one service of a split
// deployment (`pylee serve --target=orgs`).
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/datadir"
	"github.com/pyleeai/pylee/kit/outbox"
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
	// ReadTimeout bounds how long an HTTP client may take to send a request.
	ReadTimeout time.Duration
	// AuthCacheTTL bounds how long a revoked token keeps working.
	AuthCacheTTL time.Duration
	// AuditAddr is the gRPC address of the audit service when this process
	// does not run it; empty means this process's own listener.
	AuditAddr string
	// RegistryAddr is the gRPC address of the registry service for a
	// gateway that does not run it.
	RegistryAddr string
	// ServiceToken is the credential targets use with each other; every
	// target of an installation must share it. Empty means one kept in
	// DataDir.
	ServiceToken config.Secret
	// AuditSigningKey is the base64 Ed25519 seed that signs audit
	// checkpoints. Empty means one kept in DataDir.
	AuditSigningKey config.Secret
	// CheckpointInterval bounds the time between audit checkpoints.
	CheckpointInterval time.Duration
	// RelayPoll is how often the audit relay looks for undelivered events
	// when not woken by a write.
	RelayPoll time.Duration
	// DeniedWindow is how long refusals of unauthenticated callers are
	// counted before one event per source and reason records them (1 min).
	DeniedWindow time.Duration
	// OIDC, when its Issuer is set, accepts JWTs of that identity provider
	// installation-wide.
	OIDC auth.OIDCConfig
}

// Targets lists every target in start order: services before the edge.
var Targets = []string{orgs.Target, registry.Target, secrets.Target, deploy.Target, audit.Target, gateway.Target}

// TokenFile is the bootstrap admin token's file in the data directory.
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// App is a running process.
type App struct {
	cfg      Config
	log      *zap.Logger
	srv      *server.Server
	targets  []string
	conns    map[string]*grpc.ClientConn
	authn    auth.Multi
	authz    auth.Authorizer
	oidc     auth.Authenticator
	svcToken config.Secret

	bgFuncs  []func(context.Context)
	bgCancel context.CancelFunc
	bgDone   sync.WaitGroup
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
	lock, err := datadir.Acquire(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 10 * time.Second
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = audit.CheckpointInterval
	}
	a := &App{cfg: cfg, log: log, targets: targets, conns: map[string]*grpc.ClientConn{}}
	a.srv = server.New(server.Config{
		GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout, ReadTimeout: cfg.ReadTimeout,
	}, log)
	// The first cleanup registered runs last: the lock outlives every store.
	a.srv.AddCleanup("data directory lock", func(context.Context) error { return lock.Release() })
	if err := a.srv.Listen(); err != nil {
		_ = lock.Release()
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.srv.AbortListen()
			_ = lock.Release()
		}
	}()
	if a.svcToken, err = a.secretFile(cfg.ServiceToken, "service.token"); err != nil {
		return nil, err
	}
	a.authn = auth.Multi{auth.ServiceToken{Token: a.svcToken}}
	if cfg.OIDC.Issuer != "" {
		if cfg.OIDC.Audience == "" {
			return nil, errors.New("--oidc-audience is required with --oidc-issuer")
		}
		a.oidc = auth.NewOIDC(cfg.OIDC)
		a.authn = append(a.authn, a.oidc)
	}
	a.srv.AddCleanup("grpc connections", func(context.Context) error {
		for _, c := range a.conns {
			c.Close()
		}
		return nil
	})
	for _, t := range targets {
		if err := a.initTarget(ctx, t); err != nil {
			a.srv.RunCleanups(ctx)
			return nil, fmt.Errorf("%s: %w", t, err)
		}
	}
	if !a.has(orgs.Target) && a.cfg.OrgsAddr != "" {
		conn, err := a.dial(a.cfg.OrgsAddr)
		if err != nil {
			return nil, err
		}
		remote := remoteTokens{client: orgsv1.NewOrgsServiceClient(conn), serviceToken: a.svcToken}
		a.authn = append(a.authn, auth.NewCache(remote, cfg.AuthCacheTTL, 10_000))
		a.authz = newRemoteAuthorizer(orgsv1.NewAccessServiceClient(conn), a.svcToken)
	}
	if a.authz == nil {
		// No decision source: only service identities get through.
		a.authz = serviceOnly{}
	}
	a.srv.SetAuth(a.authn, a.authz)
	// Registered last, so it runs first at shutdown: background work stops
	// before the stores it uses are closed.
	a.srv.AddCleanup("background", func(context.Context) error {
		if a.bgCancel != nil {
			a.bgCancel()
		}
		a.bgDone.Wait()
		return nil
	})
	ok = true
	return a, nil
}

// background registers fn to run from Run until shutdown.
func (a *App) background(fn func(context.Context)) { a.bgFuncs = append(a.bgFuncs, fn) }

// dial returns the (shared) client connection to addr.
func (a *App) dial(addr string) (*grpc.ClientConn, error) {
	if c, ok := a.conns[addr]; ok {
		return c, nil
	}
	// Reconnect within seconds of a peer's restart: gRPC's default backoff
	// grows to two minutes, which would keep a restarted target unreachable
	// long after it is back.
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	a.conns[addr] = c
	return c, nil
}

// serviceAddr is where this process reaches target: itself when it runs
// it, else the configured address ("" when neither).
func (a *App) serviceAddr(target, configured string) string {
	if a.has(target) {
		return a.srv.GRPCAddr()
	}
	return configured
}

func (a *App) has(t string) bool { return slices.Contains(a.targets, t) }

func (a *App) initTarget(ctx context.Context, t string) error {
	switch t {
	case orgs.Target:
		return a.initOrgs(ctx)
	case gateway.Target:
		return a.initGateway(ctx)
	case audit.Target:
		return a.initAudit(ctx)
	case registry.Target:
		return a.initRegistry(ctx)
	case secrets.Target, deploy.Target:
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
	relay, err := a.auditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	engine := orgs.NewEngine(st)
	pageTokens := aip.NewPageTokens(key)
	svc := orgs.New(st, engine, pageTokens, relay.Notify)
	accessSvc := orgs.NewAccessService(st, engine, pageTokens, relay.Notify)
	if addr := a.serviceAddr(registry.Target, a.cfg.RegistryAddr); addr != "" {
		conn, err := a.dial(addr)
		if err != nil {
			return err
		}
		svc.PurgeWith(registryPurger(registryv1.NewRegistryServiceClient(conn), a.svcToken))
		accessSvc.CheckResourcesWith(registryResources(registryv1.NewRegistryServiceClient(conn), a.svcToken))
	} else {
		a.log.Warn("no --registry-addr: deleting an organization will not delete its registry data, and bindings on registries and servers are refused")
	}
	svc.Register(a.srv)
	accessSvc.Register(a.srv)
	agg := outbox.NewDeniedAggregator(orgs.RecordEvent(st, relay.Notify), a.cfg.DeniedWindow, a.log.Named("denied"))
	a.background(agg.Run)
	a.srv.SetDeniedRecorder(orgs.DeniedRecorder(st, agg, relay.Notify, a.log))
	a.authz = engine
	// Organizations' own identity providers.
	a.authn = append(a.authn, orgs.RecordSignIns(orgs.NewOrgOIDC(st), st, relay.Notify, a.log))
	if a.oidc != nil {
		// First sign-ins through the identity provider create their users.
		for i, au := range a.authn {
			if au == a.oidc {
				a.authn[i] = orgs.RecordSignIns(a.oidc, st, relay.Notify, a.log)
			}
		}
	}
	a.authn = append(a.authn, auth.NewCache(orgs.NewTokenAuthenticator(st), a.cfg.AuthCacheTTL, 10_000))
	return nil
}

// registryPurger deletes an organization's registry data as this process's
// service identity.
func registryPurger(c registryv1.RegistryServiceClient, token config.Secret) orgs.Purger {
	return func(ctx context.Context, org string) error {
		ctx = asService(ctx, token)
		_, err := c.PurgeOrganization(ctx, &registryv1.PurgeOrganizationRequest{Name: "orgs/" + org})
		return err
	}
}

// auditRelay starts (from Run) the relay that delivers a service's outbox
// to the audit service.
func (a *App) auditRelay(db *sql.DB, dialect string) (*outbox.Relay, error) {
	addr := a.serviceAddr(audit.Target, a.cfg.AuditAddr)
	if addr == "" {
		return nil, errors.New("the audit service is neither a target of this process nor given by --audit-addr")
	}
	conn, err := a.dial(addr)
	if err != nil {
		return nil, err
	}
	sink := outbox.AuditSink{Client: auditv1.NewAuditServiceClient(conn), Token: a.svcToken}
	relay := outbox.NewRelay(db, dialect, sink, outbox.RelayConfig{Poll: a.cfg.RelayPoll}, a.log.Named("relay"))
	a.background(relay.Run)
	return relay, nil
}

func (a *App) initRegistry(ctx context.Context) error {
	st, err := registry.OpenStore(ctx, a.databaseURL(registry.Target))
	if err != nil {
		return err
	}
	a.srv.AddCleanup("registry store", func(context.Context) error { return st.Close() })
	key, err := a.pageTokenKey()
	if err != nil {
		return err
	}
	relay, err := a.auditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	svc := registry.New(st, aip.NewPageTokens(key), appAuthorizer{a}, relay.Notify)
	if addr := a.serviceAddr(orgs.Target, a.cfg.OrgsAddr); addr != "" {
		conn, err := a.dial(addr)
		if err != nil {
			return err
		}
		svc.UseOrgs(orgsDirectory{client: orgsv1.NewAccessServiceClient(conn), token: a.svcToken})
	} else {
		a.log.Warn("no --orgs-addr: owner teams are refused and deleting a server or registry leaves its role bindings")
	}
	// The orgs service purges an organization before and after deleting
	// it; a process that asks orgs for decisions then drops its cached
	// answers, so nothing allowed under the organization stays allowed
	// here (other replicas: at most orgs.DecisionTTL).
	svc.AfterPurge(func(string) {
		if ra, ok := a.authz.(*remoteAuthorizer); ok {
			ra.Invalidate()
		}
	})
	svc.Register(a.srv)
	return nil
}

// appAuthorizer is the process's authorizer, known only once every target
// is set up.
type appAuthorizer struct{ a *App }

func (z appAuthorizer) Authorize(ctx context.Context, p auth.Principal, permission, resource string) error {
	return z.a.authz.Authorize(ctx, p, permission, resource)
}

func (a *App) initAudit(ctx context.Context) error {
	st, err := audit.OpenStore(ctx, a.databaseURL(audit.Target))
	if err != nil {
		return err
	}
	a.srv.AddCleanup("audit store", func(context.Context) error { return st.Close() })
	key, err := audit.LoadOrCreateKey(a.cfg.AuditSigningKey.Reveal(), filepath.Join(a.cfg.DataDir, "audit-signing.key"))
	if err != nil {
		return err
	}
	pageKey, err := a.pageTokenKey()
	if err != nil {
		return err
	}
	svc := audit.New(st, key, aip.NewPageTokens(pageKey), a.log.Named("audit")).UseAuthorizer(appAuthorizer{a})
	svc.Register(a.srv)
	if !a.has(orgs.Target) {
		// Without the orgs outbox in this process, refusals go straight to the log.
		agg := outbox.NewDeniedAggregator(svc.RecordEvent, a.cfg.DeniedWindow, a.log.Named("denied"))
		a.background(agg.Run)
		a.srv.SetDeniedRecorder(svc.DeniedRecorder(agg))
	}
	a.background(func(ctx context.Context) { svc.RunCheckpointer(ctx, a.cfg.CheckpointInterval) })
	return nil
}

func (a *App) initGateway(ctx context.Context) error {
	addr := a.serviceAddr(orgs.Target, a.cfg.OrgsAddr)
	if addr == "" {
		return errors.New("the orgs service is neither a target of this process nor given by --orgs-addr")
	}
	var b gateway.Backends
	var err error
	if b.Orgs, err = a.dial(addr); err != nil {
		return err
	}
	if addr := a.serviceAddr(audit.Target, a.cfg.AuditAddr); addr != "" {
		if b.Audit, err = a.dial(addr); err != nil {
			return err
		}
	}
	if addr := a.serviceAddr(registry.Target, a.cfg.RegistryAddr); addr != "" {
		if b.Registry, err = a.dial(addr); err != nil {
			return err
		}
	}
	rest, err := gateway.NewREST(ctx, b, gateway.RESTConfig{MaxBodyBytes: a.cfg.MaxBodyBytes})
	if err != nil {
		return err
	}
	a.srv.Handle("/v1/", rest)
	if b.Registry != nil {
		a.srv.Handle(gateway.OfficialPrefix, gateway.NewOfficial(b.Registry))
	}
	return nil
}

// pageTokenKey is the configured key, or one kept in the data directory.
func (a *App) pageTokenKey() ([]byte, error) {
	k, err := a.secretFile(a.cfg.PageTokenKey, "page-token.key")
	return []byte(k.Reveal()), err
}

// secretFile returns configured when set, else the secret kept in the data
// directory's file name, created (random, mode 0600) on first use.
func (a *App) secretFile(configured config.Secret, name string) (config.Secret, error) {
	if !configured.IsZero() {
		return configured, nil
	}
	path := filepath.Join(a.cfg.DataDir, name)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return config.NewSecret(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return config.Secret{}, err
	}
	v := "pyl_" + hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return config.Secret{}, fmt.Errorf("%s: %w", name, err)
	}
	return config.NewSecret(v), nil
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

// Run starts the background work, serves until ctx is done and then shuts
// down cleanly.
func (a *App) Run(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.Background())
	a.bgCancel = cancel
	for _, fn := range a.bgFuncs {
		a.bgDone.Add(1)
		go func() {
			defer a.bgDone.Done()
			fn(bg)
		}()
	}
	return a.srv.Run(ctx)
}

// Services lists the gRPC services this process serves, sorted.
func (a *App) Services() []string {
	var out []string
	for name := range a.srv.GRPC().GetServiceInfo() {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
