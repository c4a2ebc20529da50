package registry

import (
	"context"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/metadata"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/connect"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
)

// GetConnectConfig implements RegistryService: an MCP client's
// configuration of the registry's aggregated endpoint (or one server),
// built by kit/connect as `pylee connect` builds it. The gateway's base
// URL is the one the REST request came to.
func (s *Service) GetConnectConfig(ctx context.Context, req *registryv1.GetConnectConfigRequest) (*registryv1.ConnectConfig, error) {
	reg, err := names.ParseRegistry(req.GetName())
	if err != nil {
		return nil, err
	}
	tx := s.store.Read()
	if _, err := tx.Registry(ctx, req.GetName(), false); err != nil {
		return nil, err
	}
	if req.GetServer() != "" {
		if _, had, err := tx.Entry(ctx, req.GetName()+"/entries/"+req.GetServer()); err != nil {
			return nil, err
		} else if !had {
			return nil, fmt.Errorf("server: registry %s has no entry %q: %w", req.GetName(), req.GetServer(), errs.ErrNotFound)
		}
	}
	base, err := baseURLOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := connect.Build(req.GetClient(), connect.Target{Org: reg.Org, Registry: reg.Registry, Server: req.GetServer(),
		BaseURL: base, HTTP: req.GetMode() == "http" || (req.GetMode() == "" && s.identityProvider)})
	if err != nil {
		return nil, fmt.Errorf("client: %v: %w", err, errs.ErrInvalidArgument)
	}
	return &registryv1.ConnectConfig{Client: c.Client, Url: c.URL, EntryName: c.EntryName, ConfigJson: string(c.Entry),
		DeepLink: c.DeepLink, Command: c.Command, ConfigFile: c.File, ConfigKey: c.Key}, nil
}

// baseURLOf is the base URL a REST request came to (the REST gateway
// forwards its Host as x-forwarded-host).
func baseURLOf(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	host := first(md.Get("x-forwarded-host"))
	if host == "" || strings.ContainsAny(host, "/ @?#") {
		return "", fmt.Errorf("the gateway's URL is known only to requests through the REST API (GET /v1/{name}:connect): %w", errs.ErrFailedPrecondition)
	}
	if _, _, err := net.SplitHostPort(host); err != nil && !strings.Contains(err.Error(), "missing port") {
		return "", fmt.Errorf("the request's host %q is not a host: %w", host, errs.ErrInvalidArgument)
	}
	scheme := "http"
	if first(md.Get("x-forwarded-proto")) == "https" {
		scheme = "https"
	}
	return scheme + "://" + host, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
