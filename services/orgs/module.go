package orgs

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// registryTarget is the registry service, which this one asks whether the
// resource of a binding exists and tells to purge a deleted organization.
const registryTarget = "registry"

// TokenFile is the bootstrap admin token's file in the data directory.
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// Module is the orgs target: organizations, access and identities. It
// becomes its process's source of access decisions and API-token checks.
func Module() module.Module {
	return module.Module{Name: Target, Needs: []string{"audit"}, Init: initModule, Migrations: &store.Migrations}
}

func initModule(ctx context.Context, p module.Process) error {
	st, err := OpenStore(ctx, p.DatabaseURL(Target))
	if err != nil {
		return err
	}
	p.Server().AddCleanup("orgs store", func(context.Context) error { return st.Close() })
	if _, err := Bootstrap(ctx, st, TokenFile(p.Settings().DataDir)); err != nil {
		return err
	}
	relay, err := p.AuditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	// Every committed change wrote its audit event: the commit wakes the relay.
	st.AfterCommit(relay.Notify)
	engine := NewEngine(st)
	svc := New(st, engine, p.PageTokens())
	accessSvc := NewAccessService(st, engine, p.PageTokens())
	if conn, err := p.Conn(registryTarget); err == nil {
		c := registryv1.NewRegistryServiceClient(conn)
		svc.PurgeWith(registryPurger(c, p.ServiceToken()))
		accessSvc.CheckResourcesWith(registryResources(c, p.ServiceToken()))
	} else {
		p.Log().Warn("no registry service (--registry-addr): deleting an organization will not delete its registry data, and bindings on registries and servers are refused")
	}
	if conn, err := p.Conn("secrets"); err == nil {
		c := secretsv1.NewSecretsServiceClient(conn)
		svc.PurgeWith(func(ctx context.Context, org string) error {
			_, err := c.PurgeScope(asService(ctx, p.ServiceToken()), &secretsv1.PurgeScopeRequest{Scope: names.Org{Org: org}.String()})
			return err
		})
	} else {
		p.Log().Warn("no secrets service (--secrets-addr): deleting an organization will not delete its secrets and variables")
	}
	svc.Register(p.Server())
	accessSvc.Register(p.Server())
	agg := outbox.NewDeniedAggregator(RecordEvent(st), p.Settings().DeniedWindow, p.Log().Named("denied"))
	p.Background(agg.Run)
	p.Server().SetDeniedRecorder(DeniedRecorder(st, agg, p.Log()))
	p.SetAuthorizer(engine)
	authn := p.Authenticators()
	// Every credential of a user or service account this process accepts,
	// which VerifyToken answers for the targets that do not run orgs: API
	// tokens, organizations' own identity providers, and the
	// installation's (whose first sign-ins create their users).
	users := auth.Multi{RecordSignIns(NewOrgOIDC(st), st, p.Log())}
	if oidc := p.Settings().InstallationOIDC; oidc != nil {
		recorded := RecordSignIns(oidc, st, p.Log())
		users = append(users, recorded)
		for i, a := range *authn {
			if a == oidc {
				(*authn)[i] = recorded
			}
		}
	}
	tokens := NewTokenAuthenticator(st)
	*authn = append(*authn, users[0], auth.NewCache(tokens, p.Settings().AuthCacheTTL, 10_000))
	// Uncached: the target asking caches the answer itself, so a revoked
	// token stops working there within one --auth-cache-ttl, not two.
	svc.VerifyWith(append(users, tokens))
	return nil
}

// asService makes ctx carry the process's service credential.
func asService(ctx context.Context, token config.Secret) context.Context {
	return auth.Outgoing(ctx, token)
}

// registryPurger deletes an organization's registry data as the process's
// service identity.
func registryPurger(c registryv1.RegistryServiceClient, token config.Secret) Purger {
	return func(ctx context.Context, org string) error {
		_, err := c.PurgeOrganization(asService(ctx, token), &registryv1.PurgeOrganizationRequest{Name: names.Org{Org: org}.String()})
		return err
	}
}

// registryResources checks, as the process's service identity, that the
// registry or server a binding names exists.
func registryResources(c registryv1.RegistryServiceClient, token config.Secret) ResourceChecker {
	return func(ctx context.Context, name string) error {
		ctx = asService(ctx, token)
		var err error
		if _, perr := names.ParseRegistry(name); perr == nil {
			_, err = c.GetRegistry(ctx, &registryv1.GetRegistryRequest{Name: name})
		} else {
			_, err = c.GetServer(ctx, &registryv1.GetServerRequest{Name: name})
		}
		if status.Code(err) == codes.NotFound {
			return fmt.Errorf("%s: %w", name, errs.ErrNotFound)
		}
		return err
	}
}
