package secrets

import (
	"context"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/keyring"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

// registryTarget is the registry service: registry parents and the
// inputs a pinned version declares.
const registryTarget = "registry"

// Module is the secrets target: secrets and variables at four scopes,
// kept in the built-in keyring or in Vault, resolved for the data plane.
func Module() module.Module {
	return module.Module{Name: Target, Needs: []string{"audit", "orgs"}, Init: initModule, Migrations: &store.Migrations}
}

// MigrateStore applies the pending migrations to the secrets database at
// url (tests prepare template databases with it).
func MigrateStore(ctx context.Context, url string) error { return store.Migrate(ctx, url) }

func initModule(ctx context.Context, p module.Process) error {
	st, err := store.Open(ctx, p.DatabaseURL(Target))
	if err != nil {
		return err
	}
	p.Server().AddCleanup("secrets store", func(context.Context) error { return st.Close() })
	relay, err := p.AuditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	st.AfterCommit(relay.Notify)
	b, err := openBackend(ctx, p.Settings(), st)
	if err != nil {
		return err
	}
	svc := New(st, b, p.PageTokens()).UseAuthorizer(p.Authorizer())
	if conn, err := p.Conn(registryTarget); err == nil {
		r := registryClient{client: registryv1.NewRegistryServiceClient(conn), token: p.ServiceToken()}
		svc.UseRegistries(r).UseDeclared(r)
	} else {
		p.Log().Warn("no registry service (--registry-addr): a registry's parents are not searched and explain lists no declared inputs")
	}
	svc.Register(p.Server())
	return nil
}

// openBackend opens the backend the settings choose.
func openBackend(ctx context.Context, set module.Settings, st *store.Store) (backend.Backend, error) {
	switch set.Secrets.Backend {
	case "", "keyring":
		return OpenKeyring(ctx, set, st)
	case "vault":
		return openVault(ctx, set.Secrets)
	default:
		return nil, fmt.Errorf("--secrets-backend=%q: keyring or vault", set.Secrets.Backend)
	}
}

// OpenKeyring opens the keyring with the key of the settings (or the data
// directory's) and checks that it opens what is sealed.
func OpenKeyring(ctx context.Context, set module.Settings, st *store.Store) (*keyring.Keyring, error) {
	var kek keyring.KEK
	var err error
	if k := set.Secrets.KeyringKey; !k.IsZero() {
		kek, err = keyring.ParseKEK(k.Reveal())
		if err != nil {
			return nil, fmt.Errorf("--keyring-key: %w", err)
		}
	} else if kek, err = keyring.LoadOrCreateKEK(set.DataDir); err != nil {
		return nil, fmt.Errorf("keyring key: %w", err)
	}
	var prev []keyring.KEK
	if k := set.Secrets.KeyringPreviousKey; !k.IsZero() {
		pk, err := keyring.ParseKEK(k.Reveal())
		if err != nil {
			return nil, fmt.Errorf("--keyring-previous-key: %w", err)
		}
		prev = append(prev, pk)
	}
	kr := keyring.New(st, kek, prev...)
	if err := kr.Check(ctx); err != nil {
		return nil, err
	}
	return kr, nil
}

// vaultToken is --vault-token, or VAULT_TOKEN as Vault's own tools read it.
func vaultToken(set module.SecretsSettings) config.Secret {
	if !set.VaultToken.IsZero() {
		return set.VaultToken
	}
	return config.NewSecret(os.Getenv("VAULT_TOKEN"))
}

// registryClient asks the registry service, as the secrets service's
// identity.
type registryClient struct {
	client registryv1.RegistryServiceClient
	token  config.Secret
}

// Parents implements Registries.
func (r registryClient) Parents(ctx context.Context, registry string) ([]string, error) {
	var out []string
	seen := map[string]bool{registry: true}
	for name := registry; ; {
		reg, err := r.client.GetRegistry(auth.Outgoing(ctx, r.token), &registryv1.GetRegistryRequest{Name: name})
		if status.Code(err) == codes.NotFound {
			if name == registry {
				return nil, fmt.Errorf("registry %q: %w", registry, errs.ErrNotFound)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("the parents of %s: %v: %w", registry, err, errs.ErrUnavailable)
		}
		parent := reg.GetParent()
		if parent == "" || seen[parent] {
			return out, nil
		}
		if !strings.HasPrefix(parent, "orgs/") {
			parent = "orgs/" + orgOf(registry) + "/registries/" + parent
		}
		seen[parent] = true
		out = append(out, parent)
		name = parent
	}
}

// Inputs implements Declared: the environment variables, headers and
// ${secret:NAME} references of the pinned version's server.json.
func (r registryClient) Inputs(ctx context.Context, registry, server string) (string, []Input, error) {
	id := server[strings.LastIndexByte(server, '/')+1:]
	e, err := r.client.GetEntry(auth.Outgoing(ctx, r.token), &registryv1.GetEntryRequest{Name: registry + "/entries/" + id,
		View: registryv1.EntryView_ENTRY_VIEW_FULL})
	if status.Code(err) == codes.NotFound {
		return "", nil, fmt.Errorf("%s is not pinned in %s: %w", server, registry, errs.ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%v: %w", err, errs.ErrUnavailable)
	}
	return e.GetVersion(), declaredInputs(e.GetVersionDetail().GetServerJson().AsMap()), nil
}

// RotateKey re-wraps every data key of the keyring in the secrets database
// at url under set.Secrets.KeyringKey; set.Secrets.KeyringPreviousKey (or
// the data directory's key file) opens what is not re-wrapped yet. Values
// stay readable throughout: processes started with both keys open either
// wrapping. It returns how many data keys it re-wrapped.
func RotateKey(ctx context.Context, url string, set module.Settings) (int, error) {
	if set.Secrets.KeyringKey.IsZero() {
		return 0, fmt.Errorf("--keyring-key: the new key is required")
	}
	kek, err := keyring.ParseKEK(set.Secrets.KeyringKey.Reveal())
	if err != nil {
		return 0, fmt.Errorf("--keyring-key: %w", err)
	}
	var prev keyring.KEK
	if k := set.Secrets.KeyringPreviousKey; !k.IsZero() {
		if prev, err = keyring.ParseKEK(k.Reveal()); err != nil {
			return 0, fmt.Errorf("--keyring-previous-key: %w", err)
		}
	} else if prev, err = keyring.LoadOrCreateKEK(set.DataDir); err != nil {
		return 0, fmt.Errorf("the previous key (the data directory's %s): %w", keyring.KeyFile, err)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.Close() }()
	kr := keyring.New(st, kek, prev)
	if err := kr.Check(ctx); err != nil {
		return 0, err
	}
	return kr.Rewrap(ctx)
}
