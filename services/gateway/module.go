package gateway

import (
	"context"
	"errors"
	"net/http"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/kit/outbox"
)

// Module is the gateway target: the REST facade over every service it can
// reach, and the official MCP Registry API when the registry is reachable.
func Module() module.Module {
	return module.Module{Name: Target, Needs: []string{"orgs"}, Init: initModule}
}

func initModule(ctx context.Context, p module.Process) error {
	b := Backends{}
	for _, rb := range restBackends {
		// On behalf of the client: never the gateway's own identity.
		conn, err := p.UserConn(rb.target)
		if errors.Is(err, module.ErrUnreachable) {
			continue
		}
		if err != nil {
			return err
		}
		b[rb.target] = conn
	}
	rest, err := NewREST(ctx, b, RESTConfig{MaxBodyBytes: p.Settings().MaxBodyBytes})
	if err != nil {
		return err
	}
	p.Server().Handle("/v1/", rest)
	if reg := b["registry"]; reg != nil {
		p.Server().HandleRoute(OfficialPrefix, OfficialRule, NewOfficial(reg))
	}
	if conn := b["audit"]; conn != nil {
		p.Server().HandleRoute(ExportPattern, ExportRule, NewExport(conn))
	}
	return initMCP(p)
}

// initMCP serves the MCP gateway when the deploy and registry services
// are reachable (as the gateway's own identity: it resolves upstreams and
// reads versions; callers are authorized here, per tool).
func initMCP(p module.Process) error {
	dc, err := p.Conn("deploy")
	if errors.Is(err, module.ErrUnreachable) {
		p.Log().Info("no deploy service (--deploy-addr): the MCP gateway is off")
		return nil
	}
	if err != nil {
		return err
	}
	rc, err := p.Conn("registry")
	if err != nil {
		return err
	}
	cfg := MCPConfig{SessionKey: p.PageTokens().DeriveKey("mcp session id"), Token: p.ServiceToken(), AggregatePoll: p.Settings().MCPListPoll,
		WriteStall: p.Settings().MCPWriteStall, SessionIdle: p.Settings().MCPSessionIdle}
	if o, ok := p.Settings().InstallationOIDC.(ResourceAuthenticator); ok {
		cfg.ResourceTokens = o
		cfg.Issuer = p.Settings().OIDC.Issuer
		// Where the orgs target runs here, it wrapped the installation's
		// authenticator so first sign-ins create users: tokens for an MCP
		// URL go through the same wrapper.
		for _, a := range *p.Authenticators() {
			w, ok := a.(interface{ Unwrap() auth.Authenticator })
			if ra, isRA := a.(ResourceAuthenticator); ok && isRA && w.Unwrap() == p.Settings().InstallationOIDC {
				cfg.ResourceTokens = ra
				break
			}
		}
	}
	m, err := NewMCP(cfg,
		p.Authenticators(), p.Authorizer(), deployv1.NewDeployServiceClient(dc), registryv1.NewRegistryServiceClient(rc),
		p.Server().Registry(), p.Log())
	if err != nil {
		return err
	}
	if ac, err := p.Conn("audit"); err == nil {
		u, err := newUsage(p.Settings().DataDir, outbox.AuditSink{Client: auditv1.NewAuditServiceClient(ac), Token: p.ServiceToken()}, p.Log())
		if err != nil {
			return err
		}
		m.usage = u
		p.Background(u.run)
		m.onDrift = func(t target, version, tool, why string) {
			ev := outbox.NewEvent(auth.WithPrincipal(context.Background(), auth.ServiceIdentity(Target)), t.org, "tools.drift", t.toolResource(tool))
			ev.Metadata = map[string]string{"version": version, "change": why, "registry": t.registryName(), "server": t.serverName()}
			u.record(ev)
		}
	} else {
		p.Log().Warn("no audit service (--audit-addr): tool calls are not recorded")
	}
	p.Server().Handle(MCPPrefix, m)
	p.Server().Handle(ProtectedResourcePrefix, http.HandlerFunc(m.ServeMetadata))
	p.Background(m.Run)
	return nil
}
