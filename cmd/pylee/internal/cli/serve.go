package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/log"
	"github.com/pyleeai/pylee/kit/module"
)

const defaultDataDir = ".pylee"

type serveFlags struct {
	cfg       app.Config
	addrs     map[string]*string // --<target>-addr of every target
	targets   string
	logFormat string
	logLevel  string
}

// register adds the flags of up and serve. host is the default listen host:
// loopback for `pylee up` (a development default, like `vault server -dev`),
// every interface for `pylee serve`, whose addresses production sets.
func (f *serveFlags) register(cmd *cobra.Command, logFormat, host string) {
	fs := cmd.Flags()
	fs.StringVar(&f.cfg.HTTPAddr, "http-addr", host+":8080", "HTTP listen address: REST API, metrics, health (port 0 picks a free port)")
	fs.StringVar(&f.cfg.GRPCAddr, "grpc-addr", host+":9090", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&f.cfg.DataDir, "data-dir", defaultDataDir, "data directory: SQLite files, keys, the admin token (env PYLEE_DATA_DIR)")
	fs.StringVar(&f.cfg.DatabaseURL, "database-url", "", "postgres://… to use PostgreSQL instead of SQLite files in the data directory")
	f.addrs = map[string]*string{}
	for _, t := range app.Targets {
		f.addrs[t] = fs.String(module.AddrFlag(t), "", "gRPC address of the "+t+" service when this process does not run it")
	}
	fs.Var(config.SecretValue{S: &f.cfg.PageTokenKey}, "page-token-key", "key that signs list page tokens; replicas must share it (default: kept in the data directory)")
	fs.Int64Var(&f.cfg.MaxBodyBytes, "max-body-bytes", 1<<20, "largest REST request body; larger ones get 413")
	fs.DurationVar(&f.cfg.ReadTimeout, "read-timeout", 30*time.Second, "longest time an HTTP client may take to send a whole request (headers and body)")
	fs.DurationVar(&f.cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "grace period for calls in flight at shutdown")
	fs.DurationVar(&f.cfg.AuthCacheTTL, "auth-cache-ttl", 10*time.Second, "how long a verified token is trusted without asking the store again")
	fs.Var(&prefixList{&f.cfg.TrustedProxies}, "trusted-proxies", "comma-separated addresses or CIDRs of proxies whose X-Forwarded-For is believed for the client address; loopback by default: the REST facade's own hop")
	fs.StringVar(&f.cfg.TLS.Cert, "tls-cert", "", "PEM certificate of both listeners, and this process's client certificate towards other targets")
	fs.StringVar(&f.cfg.TLS.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.cfg.TLS.CA, "tls-ca", "", "PEM CA of the installation: targets verify each other's certificates (mTLS) and take service identities from them")
	fs.Var(config.SecretValue{S: &f.cfg.ServiceToken}, "service-token", "credential the targets of one installation share (default: kept in the data directory)")
	fs.Var(config.SecretValue{S: &f.cfg.AuditSigningKey}, "audit-signing-key", "base64 Ed25519 seed signing audit checkpoints (default: kept in the data directory)")
	fs.DurationVar(&f.cfg.CheckpointInterval, "checkpoint-interval", 10*time.Second, "longest time between signed audit checkpoints")
	fs.DurationVar(&f.cfg.RelayPoll, "relay-poll", time.Second, "how often the audit relay looks for undelivered events")
	fs.DurationVar(&f.cfg.DeniedWindow, "denied-window", time.Minute, "refusals of unauthenticated callers are counted this long, then recorded as one event per source and reason")
	fs.StringVar(&f.cfg.OIDC.Issuer, "oidc-issuer", "", "accept JWTs from this OIDC issuer (installation-wide)")
	fs.StringVar(&f.cfg.OIDC.Audience, "oidc-audience", "", "the audience JWTs must carry")
	fs.StringVar(&f.cfg.OIDC.JWKSURL, "oidc-jwks-url", "", "JWKS URL (default: from the issuer's discovery document)")
	fs.StringVar(&f.cfg.OIDC.GroupsClaim, "oidc-groups-claim", "groups", "claim whose `org/team` values make the user a member of those teams")
	fs.StringVar(&f.cfg.Secrets.Backend, "secrets-backend", "keyring", "where secret and variable values are kept: keyring (built-in, in the secrets database) or vault (HashiCorp Vault KV v2)")
	fs.Var(config.SecretValue{S: &f.cfg.Secrets.KeyringKey}, "keyring-key", "base64 256-bit key-encryption key of the keyring (default: kept in the data directory as keyring.key)")
	fs.Var(config.SecretValue{S: &f.cfg.Secrets.KeyringPreviousKey}, "keyring-previous-key", "during a key rotation, the previous --keyring-key: it still opens what it sealed (see pylee secrets rotate-key)")
	fs.StringVar(&f.cfg.Secrets.VaultAddr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault address (env VAULT_ADDR), with --secrets-backend=vault")
	fs.Var(config.SecretValue{S: &f.cfg.Secrets.VaultToken}, "vault-token", "Vault token (env VAULT_TOKEN); or AppRole with --vault-role-id and --vault-secret-id")
	fs.Var(config.SecretValue{S: &f.cfg.Secrets.VaultRoleID}, "vault-role-id", "Vault AppRole role id")
	fs.Var(config.SecretValue{S: &f.cfg.Secrets.VaultSecretID}, "vault-secret-id", "Vault AppRole secret id")
	fs.StringVar(&f.cfg.Secrets.VaultNamespace, "vault-namespace", "", "Vault namespace (Vault Enterprise)")
	fs.StringVar(&f.cfg.Secrets.VaultMount, "vault-mount", "secret", "mount of the KV v2 secrets engine")
	fs.StringVar(&f.cfg.Secrets.VaultPrefix, "vault-prefix", "pylee", "path prefix under the mount")
	// On for pylee up (a laptop, on loopback: pylee dev runs your command
	// through it), off for pylee serve.
	fs.BoolVar(&f.cfg.Deploy.AllowCommand, "deploy-allow-command", host == "127.0.0.1", "let versions whose server.json names a command in _meta (ai.pylee/command) run it on this host: for development and tests only (default on for pylee up, off for pylee serve)")
	fs.StringVar(&f.cfg.Deploy.DockerHost, "deploy-docker-host", "", "Docker engine for oci packages (default DOCKER_HOST or unix:///var/run/docker.sock)")
	fs.DurationVar(&f.cfg.Deploy.WarmFor, "deploy-warm-for", 10*time.Minute, "how long a replaced version keeps running, so rolling back to it is instant")
	fs.DurationVar(&f.cfg.Deploy.UserIdle, "deploy-user-idle", 15*time.Minute, "per-user instances unused this long are stopped")
	fs.DurationVar(&f.cfg.Deploy.Discover, "deploy-discover-interval", 5*time.Second, "how often the deploy service lists registries to find new ones")
	fs.DurationVar(&f.cfg.MCPSessionIdle, "mcp-session-idle", 30*time.Minute, "how long an MCP session may stay unused before it ends (deployed servers' sessions) and stops counting against the caller's sessions_per_caller")
	fs.DurationVar(&f.cfg.MCPWriteStall, "mcp-write-stall", 30*time.Second, "how long a write to an MCP client may block before the client, which stopped reading its stream, is cut off")
	fs.DurationVar(&f.cfg.MCPListPoll, "mcp-list-poll", 5*time.Second, "how often an aggregated MCP endpoint's session stream checks for list changes (entries, bindings, upstream tools)")
	fs.DurationVar(&f.cfg.Deploy.HealthInterval, "deploy-health-interval", 5*time.Second, "how often each instance is health-checked (MCP ping)")
	fs.StringVar(&f.logFormat, "log-format", logFormat, "log format: console or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func newUpCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run every Pylee service and the gateway in one process on embedded defaults",
		Long: "Runs every service in one process: REST on --http-addr, gRPC on --grpc-addr, SQLite files and\n" +
			"the admin token in the data directory. The way to start Pylee on a laptop.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cfg.Targets = []string{"all"}
			f.cfg.Migrate = true // a laptop's databases follow the binary
			return run(cmd.Context(), g, f, true)
		},
	}
	f.register(cmd, "console", "127.0.0.1")
	return cmd
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve --target=orgs,gateway",
		Short: "Run a chosen set of Pylee services (production layout: one target per deployment)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cfg.Targets = strings.Split(f.targets, ",")
			return run(cmd.Context(), g, f, false)
		},
	}
	f.register(cmd, "json", "")
	cmd.Flags().StringVar(&f.targets, "target", "", "comma-separated targets: all, "+strings.Join(app.Targets, ", "))
	_ = cmd.MarkFlagRequired("target")
	cmd.Flags().BoolVar(&f.cfg.Migrate, "migrate", false, "apply the targets' pending database migrations before starting (default: refuse to start on a database that is behind; see pylee migrate)")
	return cmd
}

func run(ctx context.Context, g *globals, f *serveFlags, banner bool) error {
	logger, err := log.NewTo(g.stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.cfg.TrustedProxies == nil {
		// The REST facade calls its process's own gRPC listener on loopback.
		f.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	f.cfg.Addrs = map[string]string{}
	for t, addr := range f.addrs {
		f.cfg.Addrs[t] = *addr
	}
	a, err := app.New(ctx, f.cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("pylee started", zap.Strings("targets", a.Targets()),
		zap.String("http", a.HTTPAddr()), zap.String("grpc", a.GRPCAddr()), zap.String("data_dir", a.DataDir()))
	if banner {
		printBanner(g, a, f.cfg.DatabaseURL != "")
	}
	return a.Run(ctx)
}

func printBanner(g *globals, a *app.App, postgres bool) {
	store := "SQLite files in the data directory"
	if postgres {
		store = "PostgreSQL (--database-url)"
	}
	tokenNote := "existing"
	if a.TokenCreated {
		tokenNote = "created now; keep it safe"
	}
	host := a.HTTPAddr()
	if strings.HasPrefix(host, "[::]:") || strings.HasPrefix(host, "0.0.0.0:") {
		host = "localhost:" + host[strings.LastIndex(host, ":")+1:]
	}
	fmt.Fprintf(g.stdout, `Pylee is up.
  REST API:     http://%s/v1
  gRPC:         %s
  Data:         %s (%s)
  Admin token:  %s (%s)

Try:
  export PYLEE_TOKEN=$(cat %s)
  curl -H "Authorization: Bearer $PYLEE_TOKEN" http://%s/v1/orgs

Stop with Ctrl-C.
`, host, a.GRPCAddr(), a.DataDir(), store, app.TokenFile(a.DataDir()), tokenNote, app.TokenFile(a.DataDir()), host)
}

// prefixList is a flag of comma-separated IP addresses and CIDR prefixes.
type prefixList struct{ p *[]netip.Prefix }

func (l *prefixList) String() string {
	if l.p == nil || *l.p == nil {
		return "127.0.0.0/8,::1/128"
	}
	var out []string
	for _, p := range *l.p {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

func (l *prefixList) Set(v string) error {
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	*l.p = out
	return nil
}

func (l *prefixList) Type() string { return "cidrs" }
