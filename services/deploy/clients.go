package deploy

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/deploy/internal/plan"
)

// Registry is what the deploy service asks of the registry (and orgs)
// service, as its own identity.
type Registry interface {
	// Registries lists every registry of every organization.
	Registries(ctx context.Context) ([]*registryv1.Registry, error)
	// WatchEntries streams a registry's entry changes after since.
	WatchEntries(ctx context.Context, registry string, since int64) (func() (*registryv1.EntryEvent, error), error)
	// ServerJSON is the server.json of a version.
	ServerJSON(ctx context.Context, server, version string) (map[string]any, error)
	// Pin pins entry to version, for reason (a rollback).
	Pin(ctx context.Context, entry, version, reason string) error
}

// Secrets resolves the values a server runs with.
type Secrets interface {
	// Resolve returns the values of server in registry for user (empty:
	// no user scope).
	Resolve(ctx context.Context, registry, server, user string) (plan.Values, error)
	// WatchValues streams an organization's value changes (names, never
	// values) after revision since; it returns each change's revision.
	WatchValues(ctx context.Context, org string, since int64) (func() (int64, error), error)
}

// grpcRegistry implements Registry over gRPC.
type grpcRegistry struct {
	orgs  orgsv1.OrgsServiceClient
	reg   registryv1.RegistryServiceClient
	token config.Secret
}

func (g grpcRegistry) out(ctx context.Context) context.Context { return auth.Outgoing(ctx, g.token) }

func (g grpcRegistry) Registries(ctx context.Context) ([]*registryv1.Registry, error) {
	var out []*registryv1.Registry
	for tok := ""; ; {
		orgs, err := g.orgs.ListOrganizations(g.out(ctx), &orgsv1.ListOrganizationsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			return nil, fmt.Errorf("list organizations: %v: %w", err, errs.ErrUnavailable)
		}
		for _, o := range orgs.GetOrganizations() {
			for rt := ""; ; {
				regs, err := g.reg.ListRegistries(g.out(ctx), &registryv1.ListRegistriesRequest{Parent: o.GetName(), PageSize: 1000, PageToken: rt})
				if status.Code(err) == codes.NotFound {
					break // deleted meanwhile
				}
				if err != nil {
					return nil, fmt.Errorf("list registries of %s: %v: %w", o.GetName(), err, errs.ErrUnavailable)
				}
				out = append(out, regs.GetRegistries()...)
				if rt = regs.GetNextPageToken(); rt == "" {
					break
				}
			}
		}
		if tok = orgs.GetNextPageToken(); tok == "" {
			return out, nil
		}
	}
}

func (g grpcRegistry) WatchEntries(ctx context.Context, registry string, since int64) (func() (*registryv1.EntryEvent, error), error) {
	st, err := g.reg.WatchEntries(g.out(ctx), &registryv1.WatchEntriesRequest{Parent: registry, SinceRevision: since})
	if err != nil {
		return nil, err
	}
	return st.Recv, nil
}

func (g grpcRegistry) ServerJSON(ctx context.Context, server, version string) (map[string]any, error) {
	v, err := g.reg.GetVersion(g.out(ctx), &registryv1.GetVersionRequest{Name: server + "/versions/" + version})
	if err != nil {
		return nil, err
	}
	return v.GetServerJson().AsMap(), nil
}

func (g grpcRegistry) Pin(ctx context.Context, entry, version, reason string) error {
	_, err := g.reg.PinEntry(g.out(ctx), &registryv1.PinEntryRequest{Name: entry, Version: version, Reason: reason})
	return err
}

// grpcSecrets implements Secrets over gRPC.
type grpcSecrets struct {
	client secretsv1.SecretsServiceClient
	token  config.Secret
}

func (g grpcSecrets) Resolve(ctx context.Context, registry, server, user string) (plan.Values, error) {
	resp, err := g.client.Resolve(auth.Outgoing(ctx, g.token), &secretsv1.ResolveRequest{Registry: registry, Server: server, User: user})
	if err != nil {
		return nil, err
	}
	out := make(plan.Values, len(resp.GetValues()))
	for _, v := range resp.GetValues() {
		out[v.GetName()] = plan.Value{Value: v.GetValue(), Secret: v.GetSecret(), UserScope: strings.Contains(v.GetScope(), "/users/")}
	}
	return out, nil
}

func (g grpcSecrets) WatchValues(ctx context.Context, org string, since int64) (func() (int64, error), error) {
	st, err := g.client.WatchValues(auth.Outgoing(ctx, g.token), &secretsv1.WatchValuesRequest{Parent: "orgs/" + org, SinceRevision: since})
	if err != nil {
		return nil, err
	}
	return func() (int64, error) {
		ch, err := st.Recv()
		return ch.GetRevision(), err
	}, nil
}
