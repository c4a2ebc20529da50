package registry

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

// orgsTarget is the orgs service: access decisions, owner teams, and the
// bindings on servers and registries.
const orgsTarget = "orgs"

// Module is the registry target: servers, versions, registries, entries
// and approvals.
func Module() module.Module {
	return module.Module{Name: Target, Needs: []string{"audit", orgsTarget}, Init: initModule, Migrations: &store.Migrations}
}

func initModule(ctx context.Context, p module.Process) error {
	st, err := OpenStore(ctx, p.DatabaseURL(Target))
	if err != nil {
		return err
	}
	p.Server().AddCleanup("registry store", func(context.Context) error { return st.Close() })
	relay, err := p.AuditRelay(st.OutboxDB())
	if err != nil {
		return err
	}
	// Every committed change wrote its audit event: the commit wakes the relay.
	st.AfterCommit(relay.Notify)
	svc := New(st, p.PageTokens(), p.Authorizer())
	svc.UseIdentityProvider(p.Settings().OIDC.Issuer != "")
	if conn, err := p.Conn(orgsTarget); err == nil {
		svc.UseOrgs(orgsDirectory{client: orgsv1.NewAccessServiceClient(conn), token: p.ServiceToken()})
	} else {
		p.Log().Warn("no orgs service (--orgs-addr): owner teams are refused and deleting a server or registry leaves its role bindings")
	}
	if conn, err := p.Conn(secretsTarget); err == nil {
		svc.UseValues(secretsValues{client: secretsv1.NewSecretsServiceClient(conn), token: p.ServiceToken()})
	} else {
		p.Log().Warn("no secrets service (--secrets-addr): deleting a server or registry leaves its secrets and variables")
	}
	// The orgs service purges an organization before and after deleting
	// it; the process then drops its cached decisions, so nothing allowed
	// under the organization stays allowed here (other replicas: within
	// the decision cache's bound).
	svc.AfterPurge(func(string) { p.DecisionsChanged() })
	svc.Register(p.Server())
	return nil
}

// secretsTarget keeps the secrets and variables of servers and registries.
const secretsTarget = "secrets"

// secretsValues purges values as the process's service identity.
type secretsValues struct {
	client secretsv1.SecretsServiceClient
	token  config.Secret
}

// PurgeScope implements Values.
func (v secretsValues) PurgeScope(ctx context.Context, scope string) error {
	_, err := v.client.PurgeScope(auth.Outgoing(ctx, v.token), &secretsv1.PurgeScopeRequest{Scope: scope})
	return err
}

// orgsDirectory is what the registry service asks of the orgs service, as
// the process's service identity.
type orgsDirectory struct {
	client orgsv1.AccessServiceClient
	token  config.Secret
}

func (o orgsDirectory) ctx(ctx context.Context) context.Context {
	return auth.Outgoing(ctx, o.token)
}

// TeamExists implements Orgs.
func (o orgsDirectory) TeamExists(ctx context.Context, team string) error {
	resp, err := o.client.ListTeams(o.ctx(ctx), &orgsv1.ListTeamsRequest{Parent: "orgs/" + orgOf(team)})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s: %w", team, errs.ErrNotFound)
	}
	if err != nil {
		return err
	}
	for _, t := range resp.GetTeams() {
		if t.GetName() == team {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", team, errs.ErrNotFound)
}

// PurgeBindings implements Orgs.
func (o orgsDirectory) PurgeBindings(ctx context.Context, resource string) error {
	_, err := o.client.PurgeBindings(o.ctx(ctx), &orgsv1.PurgeBindingsRequest{Resource: resource})
	return err
}
