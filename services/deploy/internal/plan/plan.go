// Package plan turns a version's server.json and the values the secrets
// service resolved into what a runtime starts: the command and its
// arguments and environment, or the remote URL and its headers, with the
// required inputs that have no value. It knows nothing of processes.
package plan

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Runtime kinds.
const (
	NPM     = "npm"
	PyPI    = "pypi"
	OCI     = "oci"
	Remote  = "remote"
	Command = "command"
)

// CommandMeta is the `_meta` key of a server.json that asks for the
// command runtime: {"command": "/path", "args": ["..."], "cwd": "/dir",
// "environmentVariables": [...]}, for development (pylee dev) and tests.
const CommandMeta = "ai.pylee/command"

// Value is one resolved secret or variable.
type Value struct {
	Value string
	// Secret values are redacted from logs.
	Secret bool
	// UserScope is true when the value came from a user's own scope.
	UserScope bool
}

// Values are the resolved values by NAME.
type Values map[string]Value

// Plan is what a runtime starts for one version.
type Plan struct {
	// Runtime is npm, pypi, oci, remote or command.
	Runtime string
	// Command and Args run the server (npm, pypi, command); for oci,
	// Command is the image and Args the container's arguments.
	Command string
	Args    []string
	// Dir is the working directory of a command ("": a temporary one).
	Dir string
	// Env is the environment, NAME=value.
	Env []string
	// Transport is stdio, streamable-http or sse.
	Transport string
	// URL is the remote's (or a package's HTTP transport's) endpoint.
	URL string
	// Headers are the remote's headers.
	Headers map[string]string
	// Missing names each required input without a value.
	Missing []string
	// Secrets are the values to redact wherever the instance's output goes.
	Secrets []string
	// UserScoped is true when a value comes from a user's scope: the
	// instance runs per user.
	UserScoped bool
	// Asks is true when the plan looks up any value by name, found or
	// not: a user's own values may change what runs for them.
	Asks bool
}

// Choice is a candidate runtime of a document, in the document's order.
type Choice struct {
	Runtime string
	// Index is the package's or remote's position.
	Index int
}

// Choices lists what a document offers: each package (by registryType),
// the command of its _meta, and each remote.
func Choices(doc map[string]any) []Choice {
	var out []Choice
	if m, ok := meta(doc); ok && m != nil {
		out = append(out, Choice{Runtime: Command})
	}
	for i, p := range list(doc["packages"]) {
		rt, _ := p["registryType"].(string)
		out = append(out, Choice{Runtime: rt, Index: i})
	}
	for i := range list(doc["remotes"]) {
		out = append(out, Choice{Runtime: Remote, Index: i})
	}
	return out
}

func meta(doc map[string]any) (map[string]any, bool) {
	m, _ := doc["_meta"].(map[string]any)
	c, ok := m[CommandMeta].(map[string]any)
	return c, ok
}

// Build makes the plan of choice c of doc with vals.
func Build(doc map[string]any, c Choice, vals Values) (Plan, error) {
	b := builder{vals: vals}
	p := Plan{Runtime: c.Runtime}
	switch c.Runtime {
	case Command:
		m, _ := meta(doc)
		p.Command, _ = m["command"].(string)
		if p.Command == "" {
			return Plan{}, fmt.Errorf("_meta.%s.command is empty", CommandMeta)
		}
		args, _ := m["args"].([]any)
		for _, a := range args {
			s, _ := a.(string)
			p.Args = append(p.Args, b.refs(s))
		}
		p.Env = b.env(list(m["environmentVariables"]))
		p.Dir, _ = m["cwd"].(string)
		p.Transport = "stdio"
	case NPM, PyPI, OCI:
		pkgs := list(doc["packages"])
		if c.Index >= len(pkgs) {
			return Plan{}, fmt.Errorf("packages[%d] does not exist", c.Index)
		}
		pk := pkgs[c.Index]
		id, _ := pk["identifier"].(string)
		ver, _ := pk["version"].(string)
		runtimeArgs := b.args(list(pk["runtimeArguments"]))
		pkgArgs := b.args(list(pk["packageArguments"]))
		switch c.Runtime {
		case NPM:
			p.Command = "npx"
			p.Args = append(append(append([]string{}, runtimeArgs...), "-y", withVersion(id, "@", ver)), pkgArgs...)
		case PyPI:
			p.Command = "uvx"
			p.Args = append(append(append([]string{}, runtimeArgs...), withVersion(id, "==", ver)), pkgArgs...)
		case OCI:
			p.Command = withVersion(id, ":", ver)
			p.Args = pkgArgs
		}
		p.Env = b.env(list(pk["environmentVariables"]))
		t, _ := pk["transport"].(map[string]any)
		p.Transport, _ = t["type"].(string)
		if p.Transport != "stdio" {
			p.URL = b.template(str(t["url"]), nil)
			p.Headers = b.headers(list(t["headers"]))
		}
	case Remote:
		rs := list(doc["remotes"])
		if c.Index >= len(rs) {
			return Plan{}, fmt.Errorf("remotes[%d] does not exist", c.Index)
		}
		r := rs[c.Index]
		p.Transport, _ = r["type"].(string)
		vars, _ := r["variables"].(map[string]any)
		p.URL = b.template(str(r["url"]), vars)
		p.Headers = b.headers(list(r["headers"]))
	default:
		return Plan{}, fmt.Errorf("no runtime runs %q packages", c.Runtime)
	}
	p.Missing, p.Secrets, p.UserScoped, p.Asks = b.missingList(), b.secretList(), b.userScoped, b.asked
	return p, nil
}

func withVersion(id, sep, ver string) string {
	if ver == "" {
		return id
	}
	return id + sep + ver
}

// builder resolves inputs, recording what is missing and what is secret.
type builder struct {
	vals       Values
	asked      bool
	missing    map[string]bool
	secrets    map[string]bool
	userScoped bool
}

var (
	secretRef   = regexp.MustCompile(`\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}`)
	templateVar = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

func (b *builder) miss(name string) {
	if b.missing == nil {
		b.missing = map[string]bool{}
	}
	b.missing[name] = true
}

func (b *builder) secret(v string) {
	if v == "" {
		return
	}
	if b.secrets == nil {
		b.secrets = map[string]bool{}
	}
	b.secrets[v] = true
}

// lookup is the resolved value of name.
func (b *builder) lookup(name string) (string, bool) {
	b.asked = true
	v, ok := b.vals[name]
	if !ok {
		return "", false
	}
	if v.Secret {
		b.secret(v.Value)
	}
	if v.UserScope {
		b.userScoped = true
	}
	return v.Value, true
}

// refs replaces each ${secret:NAME} in s; an unresolved one is missing.
func (b *builder) refs(s string) string {
	return secretRef.ReplaceAllStringFunc(s, func(m string) string {
		name := secretRef.FindStringSubmatch(m)[1]
		v, ok := b.lookup(name)
		if !ok {
			b.miss(name)
			return ""
		}
		b.secret(v)
		return v
	})
}

// input resolves a key-value input or argument: a literal value (its
// {variables} and ${secret:…} filled in), else the resolved value of its
// name, else its default; a required one with none is missing.
func (b *builder) input(m map[string]any, name string) (string, bool) {
	isSecret, _ := m["isSecret"].(bool)
	if v, ok := m["value"].(string); ok && v != "" {
		vars, _ := m["variables"].(map[string]any)
		out := b.template(v, vars)
		if isSecret {
			b.secret(out)
		}
		return out, true
	}
	if name != "" {
		if v, ok := b.lookup(name); ok {
			if isSecret {
				b.secret(v)
			}
			return v, true
		}
	}
	if d, ok := m["default"].(string); ok && d != "" {
		return b.refs(d), true
	}
	if req, _ := m["isRequired"].(bool); req && name != "" {
		b.miss(name)
	}
	return "", false
}

// template fills {name} from vars (each an input resolved by its name)
// and ${secret:NAME} from the resolved values.
func (b *builder) template(s string, vars map[string]any) string {
	s = b.refs(s)
	return templateVar.ReplaceAllStringFunc(s, func(m string) string {
		name := templateVar.FindStringSubmatch(m)[1]
		spec, ok := vars[name].(map[string]any)
		if !ok {
			if v, ok := b.lookup(name); ok {
				return v
			}
			return m
		}
		v, _ := b.input(spec, name)
		return v
	})
}

func (b *builder) env(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		name := str(it["name"])
		if v, ok := b.input(it, name); ok && name != "" {
			out = append(out, name+"="+v)
		}
	}
	return out
}

func (b *builder) headers(items []map[string]any) map[string]string {
	out := map[string]string{}
	for _, it := range items {
		name := str(it["name"])
		if v, ok := b.input(it, name); ok && name != "" {
			out[name] = v
		}
	}
	return out
}

// args renders positional and named arguments in order; a named one is
// `--name value` (or the flag alone when it has no value).
func (b *builder) args(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		name := str(it["name"])
		key := name
		if key == "" {
			key = str(it["valueHint"])
		}
		key = strings.TrimLeft(key, "-")
		v, ok := b.input(it, key)
		switch str(it["type"]) {
		case "named":
			if !ok {
				continue
			}
			out = append(out, name)
			if v != "" {
				out = append(out, v)
			}
		default:
			if ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func (b *builder) missingList() []string { return sorted(b.missing) }
func (b *builder) secretList() []string  { return sorted(b.secrets) }

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func list(v any) []map[string]any {
	items, _ := v.([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
