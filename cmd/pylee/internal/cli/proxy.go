package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/connect"
	"github.com/pyleeai/pylee/kit/mcpbridge"
)

func newProxyCmd(g *globals) *cobra.Command {
	var org, registry, server, contextName string
	cmd := &cobra.Command{
		Use:   "proxy --registry R [--server S]",
		Short: "Serve a registry's MCP endpoint (or one server's) on stdio, for MCP clients that run local commands",
		Long: `proxy is a local stdio MCP server that forwards to the Pylee MCP gateway: the registry's
aggregated endpoint /mcp/{org}/{registry}, or one server's with --server. The credential is
your Pylee login (pylee login), read when the proxy connects and read again when the gateway
refuses it, so a new login takes effect without restarting the editor; the editor's
configuration holds none. A broken connection is made again, and the request sent once more.
Nothing is written to standard output but MCP; the log on standard error never shows the token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if registry == "" {
				return errors.New("give the registry with --registry")
			}
			creds := &loginCredential{g: g, context: contextName, explicit: cmd.Flags().Changed("token")}
			if err := creds.load(); err != nil {
				return err
			}
			o, err := g.orgOf(org)
			if err != nil {
				c, cerr := client.New(g.apiURL, creds.current())
				if cerr != nil {
					return cerr
				}
				if o, err = g.soleOrg(cmd.Context(), c, org); err != nil {
					return err
				}
			}
			target := connect.Target{Org: o, Registry: registry, Server: server, BaseURL: g.apiURL}
			return runProxy(cmd.Context(), g, target.URL(), creds)
		},
	}
	f := cmd.Flags()
	f.StringVar(&org, "org", "", "organization (default: the login context's)")
	f.StringVar(&registry, "registry", "", "registry whose MCP endpoint to serve")
	f.StringVar(&server, "server", "", "one server of the registry instead of all")
	f.StringVar(&contextName, "context", "", "login context whose credential to use (default: the current one)")
	return cmd
}

// loginCredential is the proxy's credential: --token or PYLEE_TOKEN when
// given, else the login context's token, read again on refusal.
type loginCredential struct {
	g        *globals
	context  string
	explicit bool

	mu    sync.Mutex
	token config.Secret
}

func (c *loginCredential) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.explicit && !c.g.token.IsZero() {
		c.token = c.g.token
		return nil
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	name := c.context
	if name == "" {
		name = cfg.CurrentContext
	}
	ctx, ok := cfg.Contexts[name]
	switch {
	case ok && strings.TrimRight(ctx.APIURL, "/") == strings.TrimRight(c.g.apiURL, "/"):
		c.token = config.NewSecret(ctx.Token)
	case !c.g.token.IsZero():
		c.token = c.g.token
	default:
		// A local pylee up's admin token, as every command falls back to.
		if local, err := c.g.client(); err == nil && !local.Token().IsZero() {
			c.token = local.Token()
			return nil
		}
		if ok {
			return fmt.Errorf("login context %q is for %s, not %s: run pylee login --api-url %s", name, printable(ctx.APIURL), printable(c.g.apiURL), printable(c.g.apiURL))
		}
		return errors.New("no Pylee login: run pylee login --api-url URL --token TOKEN first (the proxy takes its credential from it)")
	}
	return nil
}

func (c *loginCredential) current() config.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// credentialTransport sets the login's token on each request; on a 401 it
// reads the login again and retries once with a changed token.
type credentialTransport struct {
	creds *loginCredential
	base  http.RoundTripper
}

func (t credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok := t.creds.current()
	resp, err := t.base.RoundTrip(withBearer(r, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (r.Body != nil && r.GetBody == nil) {
		return resp, err
	}
	if t.creds.load() != nil || t.creds.current().Reveal() == tok.Reveal() {
		return resp, nil
	}
	_ = resp.Body.Close()
	retry := r.Clone(r.Context())
	if r.GetBody != nil {
		if retry.Body, err = r.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(withBearer(retry, t.creds.current()))
}

func withBearer(r *http.Request, tok config.Secret) *http.Request {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok.Reveal())
	return r
}

// errRefused is the gateway refusing the login.
var errRefused = errors.New("the gateway refused your Pylee login (revoked or expired): run pylee login again")

func runProxy(ctx context.Context, g *globals, url string, creds *loginCredential) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: credentialTransport{creds: creds, base: tr}}
	b := mcpbridge.New(nil, 0)
	dial := func(ctx context.Context) (*mcp.ClientSession, error) {
		c := mcp.NewClient(&mcp.Implementation{Name: "pylee-proxy", Version: Version}, b.ClientOptions())
		cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc}, nil)
		if err != nil {
			if strings.Contains(err.Error(), "Unauthorized") || strings.Contains(err.Error(), "401") {
				return nil, errRefused
			}
			return nil, fmt.Errorf("connect to %s: %w", url, err)
		}
		return cs, nil
	}
	cs, err := dial(ctx)
	if err != nil {
		return err
	}
	b.Attach(cs)
	b.OnBrokenUpstream(dial)
	fmt.Fprintf(g.stderr, "pylee proxy: %s on stdio\n", printable(url))
	err = b.Server().Run(ctx, &mcp.StdioTransport{})
	b.Close()
	_ = cs.Close()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, mcp.ErrConnectionClosed) && !strings.Contains(err.Error(), "EOF") {
		return err
	}
	return nil
}
