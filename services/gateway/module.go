package gateway

import (
	"context"
	"errors"

	"github.com/pyleeai/pylee/kit/module"
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
	return nil
}
