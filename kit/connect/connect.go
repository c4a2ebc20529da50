// Package connect writes what an MCP client needs to use a Pylee MCP
// endpoint: its configuration entry, the deep link that installs it, and
// the command line that adds it. The CLI (`pylee connect`) and the REST
// API (`…/registries/{r}:connect`) give the same answer from it.
//
// No credential is ever part of it. In proxy mode (the default) the entry
// runs `pylee proxy`, which takes the credential from the user's Pylee
// login when it runs; in http mode the client reaches the MCP URL itself
// and signs in through the gateway's OAuth protected-resource metadata.
package connect

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Clients are the MCP clients there is a configuration for.
var Clients = []string{"vscode", "cursor", "claude", "claude-code"}

// Target is what the client is to reach.
type Target struct {
	// Org, Registry and (optionally) Server name the endpoint.
	Org, Registry, Server string
	// BaseURL is the gateway's base URL (http://host:port).
	BaseURL string
	// HTTP makes the client connect to the URL itself (OAuth), instead of
	// running pylee proxy.
	HTTP bool
	// Context is the pylee login context the proxy uses ("" for the
	// current one).
	Context string
	// Command is the pylee executable the entry runs (default "pylee").
	Command string
}

// Config is one client's configuration of a target.
type Config struct {
	Client string `json:"client"`
	// URL is the MCP endpoint.
	URL string `json:"url"`
	// EntryName names the entry in the client's configuration.
	EntryName string `json:"entry_name"`
	// Entry is the entry's JSON as the configuration file holds it.
	Entry json.RawMessage `json:"entry"`
	// DeepLink installs it (VS Code, Cursor); empty for the others.
	DeepLink string `json:"deep_link,omitempty"`
	// Command adds it from a shell (Claude Code, VS Code).
	Command string `json:"command,omitempty"`
	// File is the configuration file the entry belongs in, and Key the
	// object that holds entries by name.
	File string `json:"file"`
	Key  string `json:"key"`
}

// URL is the MCP URL of t.
func (t Target) URL() string {
	u := strings.TrimRight(t.BaseURL, "/") + "/mcp/" + t.Org + "/" + t.Registry
	if t.Server != "" {
		u += "/" + t.Server
	}
	return u
}

// Name is the entry's name: pylee-{registry}[-{server}].
func (t Target) Name() string {
	n := "pylee-" + t.Registry
	if t.Server != "" {
		n += "-" + t.Server
	}
	return n
}

// ProxyArgs are the arguments of the pylee proxy the entry runs.
func (t Target) ProxyArgs() []string {
	args := []string{"proxy", "--api-url", strings.TrimRight(t.BaseURL, "/"), "--org", t.Org, "--registry", t.Registry}
	if t.Server != "" {
		args = append(args, "--server", t.Server)
	}
	if t.Context != "" {
		args = append(args, "--context", t.Context)
	}
	return args
}

func (t Target) command() string {
	if t.Command == "" {
		return "pylee"
	}
	return t.Command
}

// Build returns client's configuration of t.
func Build(client string, t Target) (Config, error) {
	if t.Org == "" || t.Registry == "" || t.BaseURL == "" {
		return Config{}, fmt.Errorf("connect: the organization, registry and base URL are required")
	}
	c := Config{Client: client, URL: t.URL(), EntryName: t.Name()}
	stdio := map[string]any{"command": t.command(), "args": t.ProxyArgs()}
	var entry map[string]any
	switch client {
	case "vscode":
		// .vscode/mcp.json {"servers": {name: entry}}; the install link
		// and `code --add-mcp` take the entry with its name inside.
		entry = map[string]any{"type": "stdio", "command": t.command(), "args": t.ProxyArgs()}
		if t.HTTP {
			entry = map[string]any{"type": "http", "url": c.URL}
		}
		c.File, c.Key = ".vscode/mcp.json", "servers"
		named := map[string]any{"name": c.EntryName}
		for k, v := range entry {
			named[k] = v
		}
		b, err := json.Marshal(named)
		if err != nil {
			return Config{}, err
		}
		c.DeepLink = "vscode:mcp/install?" + url.QueryEscape(string(b))
		c.Command = "code --add-mcp " + shellQuote(string(b))
	case "cursor":
		entry = stdio
		if t.HTTP {
			entry = map[string]any{"url": c.URL}
		}
		c.File, c.Key = "~/.cursor/mcp.json", "mcpServers"
		b, err := json.Marshal(entry)
		if err != nil {
			return Config{}, err
		}
		c.DeepLink = "cursor://anysphere.cursor-deeplink/mcp/install?name=" + url.QueryEscape(c.EntryName) +
			"&config=" + url.QueryEscape(base64.StdEncoding.EncodeToString(b))
	case "claude":
		// Claude Desktop runs local commands from its configuration file;
		// remote servers are added in its settings, so the entry is always
		// the proxy.
		entry = stdio
		c.File, c.Key = "claude_desktop_config.json", "mcpServers"
	case "claude-code":
		entry = stdio
		c.File, c.Key = ".mcp.json", "mcpServers"
		if t.HTTP {
			entry = map[string]any{"type": "http", "url": c.URL}
			c.Command = "claude mcp add --transport http " + shellQuote(c.EntryName) + " " + shellQuote(c.URL)
		} else {
			parts := []string{"claude", "mcp", "add", "--transport", "stdio", shellQuote(c.EntryName), "--", shellQuote(t.command())}
			for _, a := range t.ProxyArgs() {
				parts = append(parts, shellQuote(a))
			}
			c.Command = strings.Join(parts, " ")
		}
	default:
		return Config{}, fmt.Errorf("connect: unknown client %q (want %s)", client, strings.Join(Clients, ", "))
	}
	b, err := json.Marshal(entry)
	if err != nil {
		return Config{}, err
	}
	c.Entry = b
	return c, nil
}

// Content returns the configuration file's content with the entry: {key:
// {name: entry}}.
func (c Config) Content() ([]byte, error) {
	return json.MarshalIndent(map[string]any{c.Key: map[string]json.RawMessage{c.EntryName: c.Entry}}, "", "  ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
