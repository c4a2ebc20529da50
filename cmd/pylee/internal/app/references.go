package app

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/orgs"
)

// asService makes ctx carry this process's service credential on the
// calls it makes on its own behalf.
func asService(ctx context.Context, token config.Secret) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token.Reveal())
}

// notFound turns a remote NOT_FOUND into errs.ErrNotFound, which the
// reference checks of the services look for.
func notFound(name string, err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s: %w", name, errs.ErrNotFound)
	}
	return err
}

// registryResources lets the orgs service check that the registry or
// server a binding names exists.
func registryResources(c registryv1.RegistryServiceClient, token config.Secret) orgs.ResourceChecker {
	return func(ctx context.Context, name string) error {
		ctx = asService(ctx, token)
		var err error
		if strings.Contains(name, "/registries/") {
			_, err = c.GetRegistry(ctx, &registryv1.GetRegistryRequest{Name: name})
		} else {
			_, err = c.GetServer(ctx, &registryv1.GetServerRequest{Name: name})
		}
		return notFound(name, err)
	}
}

// orgsDirectory is what the registry service asks of the orgs service:
// whether an owner team exists, and to purge the grants on a deleted
// server or registry.
type orgsDirectory struct {
	client orgsv1.AccessServiceClient
	token  config.Secret
}

// TeamExists implements registry.Orgs.
func (o orgsDirectory) TeamExists(ctx context.Context, team string) error {
	org, _, _ := strings.Cut(strings.TrimPrefix(team, "orgs/"), "/")
	resp, err := o.client.ListTeams(asService(ctx, o.token), &orgsv1.ListTeamsRequest{Parent: "orgs/" + org})
	if err != nil {
		return notFound(team, err)
	}
	for _, t := range resp.GetTeams() {
		if t.GetName() == team {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", team, errs.ErrNotFound)
}

// PurgeBindings implements registry.Orgs.
func (o orgsDirectory) PurgeBindings(ctx context.Context, resource string) error {
	_, err := o.client.PurgeBindings(asService(ctx, o.token), &orgsv1.PurgeBindingsRequest{Resource: resource})
	return err
}
