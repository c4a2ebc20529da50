// Package app assembles a Pylee process from targets (services), the way
// one binary runs as a monolith (`pylee up`) or as one service of a split
// deployment (`pylee serve --target=orgs`).
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/datadir"
	"github.com/pyleeai/pylee/kit/module"
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
	module.Settings
	// Targets are the services to run; "all" means every one.
	Targets []string
	// GRPCAddr and HTTPAddr are listen addresses; port 0 picks one.
	GRPCAddr string
	HTTPAddr string
	// DatabaseURL is empty for SQLite files in DataDir, or postgres://…
	// (each service then keeps its own schema in that database).
	DatabaseURL string
	// Addrs are the gRPC addresses of targets this process does not run,
	// by target (--<target>-addr).
	Addrs map[string]string
	// PageTokenKey seals list page tokens; replicas must share it. Empty
	// means a key kept in DataDir.
	PageTokenKey    config.Secret
	ShutdownTimeout time.Duration
	// ReadTimeout bounds how long an HTTP client may take to send a request.
	ReadTimeout time.Duration
	// ServiceToken is the credential targets use with each other; every
	// target of an installation must share it. Empty means one kept in
	// DataDir.
	ServiceToken config.Secret
	// TLS: --tls-cert and --tls-key serve both listeners over TLS; with
	// --tls-ca the targets authenticate each other by client certificate
	// (mTLS) and service tokens are not accepted.
	TLS server.TLSFiles
	// TrustedProxies are the peers whose X-Forwarded-For is believed for
	// the client address of logs and audit events (--trusted-proxies).
	TrustedProxies []netip.Prefix
	// RelayPoll is how often the audit relay looks for undelivered events
	// when not woken by a write.
	RelayPoll time.Duration
}

// Modules are every target a process can run, each declared by its
// service package. Adding a service is one line here.
var Modules = []module.Module{
	orgs.Module(), registry.Module(), secrets.Module(), deploy.Module(), audit.Module(), gateway.Module(),
}

// Targets lists every target's name.
var Targets = func() []string {
	out := make([]string, len(Modules))
	for i, m := range Modules {
		out[i] = m.Name
	}
	return out
}()

// TokenFile is the bootstrap admin token's file in the data directory.
func TokenFile(dataDir string) string { return orgs.TokenFile(dataDir) }

// App is a running process.
type App struct {
	cfg        Config
	log        *zap.Logger
	srv        *server.Server
	targets    []string
	conns      map[string]*grpc.ClientConn
	authn      auth.Multi
	authz      auth.Authorizer
	svcToken   config.Secret
	pageTokens *aip.PageTokens
	// clientTLS is how this process dials other targets (nil: plaintext).
	clientTLS *tls.Config

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
// known) and sets up every target, in the order their needs give. Run
// serves it.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*App, error) {
	targets, err := ResolveTargets(cfg.Targets)
	if err != nil {
		return nil, err
	}
	mods, err := module.Order(Modules, targets)
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
	if err := prepareSchemas(ctx, cfg, mods, log); err != nil {
		_ = lock.Release()
		return nil, err
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 10 * time.Second
	}
	grpcTLS, httpTLS, clientTLS, err := cfg.TLS.Load()
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	a := &App{cfg: cfg, log: log, targets: targets, conns: map[string]*grpc.ClientConn{}, clientTLS: clientTLS}
	a.srv = server.New(server.Config{
		GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout, ReadTimeout: cfg.ReadTimeout,
		GRPCTLS: grpcTLS, HTTPTLS: httpTLS, TrustedProxies: cfg.TrustedProxies,
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
	key, err := a.secretFile(cfg.PageTokenKey, "page-token.key")
	if err != nil {
		return nil, err
	}
	a.pageTokens = aip.NewPageTokens([]byte(key.Reveal()))
	a.authn = auth.Multi{}
	if !cfg.TLS.Mutual() {
		// With mTLS, service identities come from client certificates
		// only: a token derived from a shared secret is not accepted.
		a.authn = append(a.authn, auth.ServiceTokens{Secret: a.svcToken})
	}
	if cfg.OIDC.Issuer != "" {
		if cfg.OIDC.Audience == "" {
			return nil, errors.New("--oidc-audience is required with --oidc-issuer")
		}
		a.cfg.InstallationOIDC = auth.NewOIDC(cfg.OIDC)
		a.authn = append(a.authn, a.cfg.InstallationOIDC)
	}
	a.srv.AddCleanup("grpc connections", func(context.Context) error {
		for _, c := range a.conns {
			c.Close()
		}
		return nil
	})
	_, statErr := os.Stat(TokenFile(cfg.DataDir))
	for _, m := range mods {
		if m.Init == nil {
			a.log.Debug("target serves nothing yet", zap.String("target", m.Name))
			continue
		}
		if err := m.Init(ctx, process{a: a, name: m.Name}); err != nil {
			a.srv.RunCleanups(ctx)
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	if _, err := os.Stat(TokenFile(cfg.DataDir)); err == nil && statErr != nil {
		a.TokenCreated = true
	}
	if a.authz == nil {
		if conn, err := a.conn(orgs.Target); err == nil {
			// No orgs service here: tokens and decisions come from it.
			// It is asked as the process's first target.
			token := process{a: a, name: targets[0]}.ServiceToken()
			remote := remoteTokens{client: orgsv1.NewOrgsServiceClient(conn), serviceToken: token}
			a.authn = append(a.authn, auth.NewCache(remote, cfg.AuthCacheTTL, 10_000))
			a.authz = newRemoteAuthorizer(orgsv1.NewAccessServiceClient(conn), token)
		} else {
			// No decision source: only service identities get through.
			a.authz = serviceOnly{}
		}
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

// conn is the (shared) connection to target: this process's own listener
// when it runs it, else its configured address. With mTLS it presents the
// process's certificate: calls on it without a bearer are the process's
// own service identity.
func (a *App) conn(target string) (*grpc.ClientConn, error) {
	return a.dialTarget(target, a.clientTLS, "")
}

// userConn is a connection to target for calls made on behalf of a client
// (the REST facade, the official API, the export): it never presents the
// process's certificate, so a request without a credential stays
// anonymous instead of becoming the gateway's service identity.
func (a *App) userConn(target string) (*grpc.ClientConn, error) {
	var cfg *tls.Config
	if a.clientTLS != nil {
		cfg = a.clientTLS.Clone()
		cfg.Certificates = nil
	}
	return a.dialTarget(target, cfg, "user ")
}

func (a *App) dialTarget(target string, clientTLS *tls.Config, kind string) (*grpc.ClientConn, error) {
	addr := a.cfg.Addrs[target]
	if slices.Contains(a.targets, target) {
		addr = a.srv.GRPCAddr()
	}
	if addr == "" {
		return nil, fmt.Errorf("%s (--%s): %w", target, module.AddrFlag(target), module.ErrUnreachable)
	}
	if c, ok := a.conns[kind+addr]; ok {
		return c, nil
	}
	// Reconnect within seconds of a peer's restart: gRPC's default backoff
	// grows to two minutes, which would keep a restarted target unreachable
	// long after it is back.
	creds := insecure.NewCredentials()
	if clientTLS != nil {
		creds = credentials.NewTLS(clientTLS)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", target, addr, err)
	}
	a.conns[kind+addr] = c
	return c, nil
}

// process is what one module sees of the App (module.Process).
type process struct {
	a    *App
	name string
}

func (p process) Log() *zap.Logger          { return p.a.log.Named(p.name) }
func (p process) Server() *server.Server    { return p.a.srv }
func (p process) Settings() module.Settings { return p.a.cfg.Settings }
func (p process) Runs(target string) bool   { return slices.Contains(p.a.targets, target) }
func (p process) UserConn(target string) (grpc.ClientConnInterface, error) {
	conn, err := p.a.userConn(target)
	if err != nil || !slices.Contains(p.a.targets, target) {
		return conn, err
	}
	// In this process: no hop (streams still take the loopback listener).
	return p.a.srv.InProcess(conn), nil
}
func (p process) Conn(target string) (*grpc.ClientConn, error) { return p.a.conn(target) }

// ServiceToken implements module.Process: none with mTLS, where the
// client certificate is the identity.
func (p process) ServiceToken() config.Secret {
	if p.a.cfg.TLS.Mutual() {
		return config.Secret{}
	}
	return auth.ServiceTokenFor(p.a.svcToken, p.name)
}
func (p process) PageTokens() *aip.PageTokens         { return p.a.pageTokens }
func (p process) Background(fn func(context.Context)) { p.a.bgFuncs = append(p.a.bgFuncs, fn) }
func (p process) Authenticators() *auth.Multi         { return &p.a.authn }
func (p process) SetAuthorizer(z auth.Authorizer)     { p.a.authz = z }
func (p process) Authorizer() auth.Authorizer         { return appAuthorizer{p.a} }

// DatabaseURL implements module.Process.
func (p process) DatabaseURL(name string) string { return databaseURL(p.a.cfg, name) }

// AuditRelay implements module.Process.
func (p process) AuditRelay(db *sql.DB, dialect string) (*outbox.Relay, error) {
	conn, err := p.a.conn(audit.Target)
	if err != nil {
		return nil, err
	}
	sink := outbox.AuditSink{Client: auditv1.NewAuditServiceClient(conn), Token: p.ServiceToken()}
	relay := outbox.NewRelay(db, dialect, sink, outbox.RelayConfig{Poll: p.a.cfg.RelayPoll}, p.a.log.Named("relay"))
	p.Background(relay.Run)
	return relay, nil
}

// DecisionsChanged implements module.Process.
func (p process) DecisionsChanged() {
	if ra, ok := p.a.authz.(*remoteAuthorizer); ok {
		ra.Invalidate()
	}
}

// appAuthorizer is the process's authorizer, known only once every target
// is set up.
type appAuthorizer struct{ a *App }

func (z appAuthorizer) Authorize(ctx context.Context, p auth.Principal, permission, resource string) error {
	return z.a.authz.Authorize(ctx, p, permission, resource)
}

// AuthorizeMany implements auth.ManyAuthorizer.
func (z appAuthorizer) AuthorizeMany(ctx context.Context, p auth.Principal, permission string, resources []string) ([]error, error) {
	return auth.AuthorizeMany(ctx, z.a.authz, p, permission, resources)
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
