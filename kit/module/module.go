// Package module declares the targets a Pylee process can run. Each
// service package declares one Module (its name, the targets it needs,
// how it starts); a process assembles itself from a list of them, resolves
// their start order from what they need, and gives every target the same
// address flag and environment variable (--<name>-addr, PYLEE_<NAME>_ADDR),
// the way Grafana Mimir's modules work.
package module

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
)

// Module is one target.
type Module struct {
	// Name is the target: `pylee serve --target=<name>`; processes that do
	// not run it reach it at `--<name>-addr` (PYLEE_<NAME>_ADDR).
	Name string
	// Needs lists the targets this one cannot work without: each runs in
	// the same process, where it starts first, or is given by its address.
	Needs []string
	// Init sets the target up in p: opens its store, registers its RPCs and
	// routes, starts its background work through p. Nil for a target that
	// serves nothing yet.
	Init func(ctx context.Context, p Process) error
	// Migrations, when the target keeps a database (Process.DatabaseURL of
	// its name), are its versioned migrations: `pylee migrate` applies
	// them, and a process applies them before Init when Settings.Migrate
	// is set, or else refuses to run the target on a database that is
	// behind them.
	Migrations *db.Migrations
}

// AddrFlag is the flag naming where target listens for gRPC.
func AddrFlag(target string) string { return target + "-addr" }

// ErrUnreachable is returned by Process.Conn for a target that neither
// runs in the process nor has an address.
var ErrUnreachable = errors.New("target neither runs in this process nor has an address")

// Process is what a module gets of the process it runs in.
type Process interface {
	// Log is the process's logger, named for the module.
	Log() *zap.Logger
	// Server is the process's gRPC and HTTP server.
	Server() *server.Server
	// Settings are the process's settings.
	Settings() Settings
	// DatabaseURL is the database of service name: its own SQLite file in
	// the data directory, or its schema of --database-url.
	DatabaseURL(name string) string
	// Runs reports whether target runs in this process.
	Runs(target string) bool
	// Conn is the (shared) connection to target: this process's own
	// listener when it runs here, else its address; ErrUnreachable when
	// neither.
	Conn(target string) (*grpc.ClientConn, error)
	// UserConn is a connection to target for calls made on behalf of a
	// client, carrying the client's credential: it never presents the
	// process's certificate (mTLS), so a call without a credential is
	// anonymous, never the process's service identity.
	// When target runs in this process the connection calls it without a
	// network hop, through the same interceptor chain (server.InProcess).
	UserConn(target string) (grpc.ClientConnInterface, error)
	// ServiceToken is the credential this process calls other targets
	// with, as its service identity.
	ServiceToken() config.Secret
	// PageTokens seal list page tokens with the installation's key.
	PageTokens() *aip.PageTokens
	// AuditRelay delivers the outbox in db to the audit service, from Run
	// until shutdown.
	AuditRelay(db *sql.DB, dialect string) (*outbox.Relay, error)
	// Background runs fn from Run until shutdown.
	Background(fn func(context.Context))
	// Authenticators are the process's credential checks, in order; a
	// module may add to them or wrap one.
	Authenticators() *auth.Multi
	// SetAuthorizer makes z the process's source of access decisions.
	SetAuthorizer(z auth.Authorizer)
	// Authorizer decides with whatever the process's authorizer is when it
	// is called (it is known only once every module is set up).
	Authorizer() auth.Authorizer
	// DecisionsChanged drops access decisions the process cached (an
	// organization went away, and what was allowed under it is not).
	DecisionsChanged()
}

// Settings are the settings every module may read.
type Settings struct {
	// DataDir holds SQLite files, keys and the bootstrap token.
	DataDir string
	// MaxBodyBytes bounds a REST request body.
	MaxBodyBytes int64
	// AuthCacheTTL bounds how long a revoked token keeps working.
	AuthCacheTTL time.Duration
	// DeniedWindow is how long refusals of unauthenticated callers are
	// counted before one event per source and reason records them.
	DeniedWindow time.Duration
	// CheckpointInterval bounds the time between audit checkpoints.
	CheckpointInterval time.Duration
	// AuditSigningKey is the base64 Ed25519 seed that signs audit
	// checkpoints. Empty means one kept in DataDir.
	AuditSigningKey config.Secret
	// OIDC, when its Issuer is set, accepts JWTs of that identity provider
	// installation-wide.
	OIDC auth.OIDCConfig
	// InstallationOIDC is the authenticator of OIDC (nil without an
	// issuer), so the orgs module can record first sign-ins through it.
	InstallationOIDC auth.Authenticator
	// Migrate applies the targets' pending migrations at start; without
	// it a target whose database is behind does not start.
	Migrate bool
	// Secrets configures where the secrets service keeps values.
	Secrets SecretsSettings
	// Deploy configures the deploy service's runtimes.
	Deploy DeploySettings
	// MCPListPoll is how often an aggregated MCP session's stream checks
	// what its caller may use, to send list_changed (0: 5 s).
	MCPListPoll time.Duration
	// MCPWriteStall bounds how long a write to an MCP client may block
	// before the client is cut off (0: 30 s).
	MCPWriteStall time.Duration
	// MCPSessionIdle ends MCP sessions unused this long, in the deploy
	// service's bridges, and stops counting them against sessions per
	// caller in the gateway (0: 30 min).
	MCPSessionIdle time.Duration
}

// DeploySettings configure the deploy service.
type DeploySettings struct {
	// AllowCommand enables the command runtime: a version whose
	// server.json names an executable in _meta runs it on this host. For
	// development and tests; off by default, since whoever publishes a
	// version would choose what runs.
	AllowCommand bool
	// DockerHost is the Docker engine of oci packages (default
	// DOCKER_HOST, or the local socket).
	DockerHost string
	// WarmFor keeps a replaced version running for an instant rollback.
	WarmFor time.Duration
	// UserIdle stops a per-user instance unused this long.
	UserIdle time.Duration
	// Discover is how often registries are listed; HealthInterval how
	// often each instance is checked.
	Discover, HealthInterval time.Duration
}

// SecretsSettings choose and configure the secrets backend.
type SecretsSettings struct {
	// Backend is "keyring" (the default) or "vault".
	Backend string
	// KeyringKey is the base64 key-encryption key of the keyring; empty
	// means one kept in DataDir. KeyringPreviousKey, during a rotation,
	// opens what the previous key sealed.
	KeyringKey, KeyringPreviousKey config.Secret
	// Vault is the Vault KV v2 backend's configuration.
	VaultAddr, VaultNamespace, VaultMount, VaultPrefix string
	VaultToken, VaultRoleID, VaultSecretID             config.Secret
}

// Order returns the modules named in targets in start order: every module
// after the modules it needs that run in the same process, otherwise in
// the order of all. It refuses unknown names and cycles.
func Order(all []Module, targets []string) ([]Module, error) {
	byName := map[string]Module{}
	for _, m := range all {
		byName[m.Name] = m
	}
	for _, t := range targets {
		if _, ok := byName[t]; !ok {
			return nil, fmt.Errorf("unknown target %q", t)
		}
	}
	var out []Module
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("targets need each other: %s", strings.Join(append(path, name), " -> "))
		case 2:
			return nil
		}
		state[name] = 1
		for _, n := range byName[name].Needs {
			if slices.Contains(targets, n) {
				if err := visit(n, append(path, name)); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		out = append(out, byName[name])
		return nil
	}
	for _, m := range all {
		if slices.Contains(targets, m.Name) {
			if err := visit(m.Name, nil); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
