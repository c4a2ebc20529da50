package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/connect"
)

func newConnectCmd(g *globals) *cobra.Command {
	var org, registry, server, mode, file, contextName string
	var write bool
	cmd := &cobra.Command{
		Use:   "connect vscode|cursor|claude|claude-code [--registry R] [--server S]",
		Short: "Print (or write) an MCP client's configuration of a registry's MCP endpoint, with its install link",
		Long: `connect prints what an MCP client needs to use the registry's aggregated MCP endpoint
(/mcp/{org}/{registry}), or one server's with --server: the entry of the client's configuration
file, the deep link that installs it (VS Code, Cursor) and the command line that adds it (VS Code,
Claude Code). With --write it adds the entry to the client's configuration file.

No credential is written anywhere: the entry runs "pylee proxy", which takes the credential from
your Pylee login when the editor starts it. Where the installation has an identity provider (and
with --mode http) the entry is the MCP URL itself: the client signs in through the gateway's OAuth
metadata.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: connect.Clients,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(connect.Clients, args[0]) {
				return fmt.Errorf("unknown client %q (want %s)", args[0], strings.Join(connect.Clients, ", "))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			o, err := g.soleOrg(cmd.Context(), c, org)
			if err != nil {
				return err
			}
			if registry == "" {
				// The organization's only registry, when it has one.
				list := &registryv1.ListRegistriesResponse{}
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/orgs/"+url.PathEscape(o)+"/registries", nil, nil, list); err != nil {
					return err
				}
				if len(list.GetRegistries()) != 1 {
					return fmt.Errorf("give the registry with --registry (organization %s has %d)", o, len(list.GetRegistries()))
				}
				registry = list.GetRegistries()[0].GetName()[strings.LastIndex(list.GetRegistries()[0].GetName(), "/")+1:]
			}
			switch mode {
			case "auto", "proxy", "http":
			default:
				return fmt.Errorf("--mode %q: want auto, proxy or http", mode)
			}
			// The server's answer (GET …:connect): the registry and the
			// server's entry exist and are visible to you, and "auto" is
			// decided where the installation's identity provider is known.
			q := url.Values{"client": {args[0]}}
			if server != "" {
				q.Set("server", server)
			}
			if mode != "auto" {
				q.Set("mode", mode)
			}
			resp := &registryv1.ConnectConfig{}
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/orgs/"+url.PathEscape(o)+"/registries/"+url.PathEscape(registry)+":connect", q, nil, resp); err != nil {
				return err
			}
			cfg := connect.Config{Client: resp.GetClient(), URL: resp.GetUrl(), EntryName: resp.GetEntryName(), Entry: json.RawMessage(resp.GetConfigJson()),
				DeepLink: resp.GetDeepLink(), Command: resp.GetCommand(), File: resp.GetConfigFile(), Key: resp.GetConfigKey()}
			var entry map[string]any
			if err := json.Unmarshal(cfg.Entry, &entry); err != nil {
				return fmt.Errorf("the server's entry is not JSON: %w", err)
			}
			if _, isHTTP := entry["url"]; !isHTTP && contextName != "" {
				// The proxy of a named login context: the same entry, with
				// --context.
				if cfg, err = connect.Build(args[0], connect.Target{Org: o, Registry: registry, Server: server, BaseURL: g.apiURL,
					Context: contextName}); err != nil {
					return err
				}
			}
			if g.output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(cfg)
			}
			if write {
				p := file
				if p == "" {
					if p, err = defaultConfigFile(args[0]); err != nil {
						return err
					}
				}
				if err := mergeEntry(p, cfg); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "added %q to %s\n", cfg.EntryName, p)
			} else {
				content, err := cfg.Content()
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "# %s: add this to %s (or run with --write)\n%s\n", args[0], cfg.File, content)
			}
			if cfg.DeepLink != "" {
				fmt.Fprintf(g.stdout, "\n# install link\n%s\n", cfg.DeepLink)
			}
			if cfg.Command != "" {
				fmt.Fprintf(g.stdout, "\n# command line\n%s\n", cfg.Command)
			}
			fmt.Fprintf(g.stdout, "\n# MCP URL\n%s\n", cfg.URL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&org, "org", "", "organization (default: the login context's)")
	f.StringVar(&registry, "registry", "", "registry (default: the organization's only one)")
	f.StringVar(&server, "server", "", "one server of the registry instead of the aggregated endpoint")
	f.StringVar(&mode, "mode", "auto", "proxy (the entry runs pylee proxy), http (the client signs in through the gateway's OAuth metadata), or auto (http where the installation has an identity provider)")
	f.BoolVar(&write, "write", false, "add the entry to the client's configuration file")
	f.StringVar(&file, "file", "", "the configuration file --write changes (default: the client's own)")
	f.StringVar(&contextName, "context", "", "login context the proxy uses (default: the current one when it runs)")
	return cmd
}

// defaultConfigFile is where client keeps its MCP servers.
func defaultConfigFile(client string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	switch client {
	case "vscode":
		return filepath.Join(".vscode", "mcp.json"), nil
	case "claude-code":
		return ".mcp.json", nil
	case "cursor":
		return filepath.Join(home, ".cursor", "mcp.json"), nil
	case "claude":
		switch runtime.GOOS {
		case "darwin":
			return filepath.Join(home, "Library", "Application Support", "Claude", "claude_desktop_config.json"), nil
		case "windows":
			return filepath.Join(os.Getenv("APPDATA"), "Claude", "claude_desktop_config.json"), nil
		}
		return filepath.Join(home, ".config", "Claude", "claude_desktop_config.json"), nil
	}
	return "", fmt.Errorf("unknown client %q", client)
}

// mergeEntry adds cfg's entry to the JSON file at p, keeping the rest.
func mergeEntry(p string, cfg connect.Config) error {
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s is not a JSON object: %w", p, err)
		}
	}
	entries := map[string]json.RawMessage{}
	if raw, ok := doc[cfg.Key]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return fmt.Errorf("%s: %q is not an object: %w", p, cfg.Key, err)
		}
	}
	entries[cfg.EntryName] = cfg.Entry
	if doc[cfg.Key], err = json.Marshal(entries); err != nil {
		return err
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, append(out, '\n'), 0o600)
}
