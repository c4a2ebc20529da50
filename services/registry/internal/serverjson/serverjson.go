// Package serverjson parses and validates the official MCP registry's
// server.json document (schema 2025-12-11,
// https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json)
// with Pylee's additions: the version must be strict SemVer 2.0.0, and a
// secret input may hold only a `${secret:NAME}` reference, never a value.
//
// Errors name the JSON path of the offending value, e.g.
// `packages[0].transport.url`.
package serverjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/jsonlimit"
)

// SchemaURL is the schema a document states when it states none.
const SchemaURL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

// SchemaURLs are the schemas Pylee implements; a document that states
// another `$schema` is refused (their field names differ: a document of the
// 2025-07-09 schema would be read wrongly).
var SchemaURLs = []string{SchemaURL}

// MaxSize bounds a document.
const MaxSize = 256 << 10

// MaxDepth bounds how deeply a document nests objects and arrays, `_meta`
// and tool schemas included. A deeper one is refused before it is decoded
// or stored: stored, it would break every read of the version.
const MaxDepth = 32

// Doc is a decoded server.json document.
type Doc map[string]any

var (
	namePattern   = regexp.MustCompile(`^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$`)
	sha256Pattern = regexp.MustCompile(`^[a-f0-9]{64}$`)
	sizePattern   = regexp.MustCompile(`^(\d+x\d+|any)$`)
	urlPattern    = regexp.MustCompile(`^(https?://[^\s]+|\{[a-zA-Z_][a-zA-Z0-9_]*\}[^\s]*)$`)
	secretRef     = regexp.MustCompile(`\$\{secret:([^}]*)\}`)
	secretName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	// RegistryTypes are the package registries the schema names.
	RegistryTypes = []string{"npm", "pypi", "oci", "nuget", "mcpb", "cargo"}
)

// Parse decodes and validates data. field prefixes the paths in errors
// (e.g. "server_json"). The returned document holds exactly the input's
// values.
func Parse(data []byte, field string) (Doc, error) {
	if len(data) > MaxSize {
		return nil, errs.Field(field, "must be at most %d bytes", MaxSize)
	}
	if !utf8.Valid(data) {
		return nil, errs.Field(field, "is not valid UTF-8")
	}
	if d := jsonlimit.Depth(data); d > MaxDepth {
		return nil, errs.Field(field, "nests %d levels deep; at most %d are allowed", d, MaxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, errs.Field(field, "is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errs.Field(field, "holds more than one JSON value")
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, errs.Field(field, "must be a JSON object")
	}
	v := &validator{prefix: field}
	v.server(obj)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return Doc(obj), nil
}

// Validate checks a document already decoded (e.g. from a protobuf Struct).
func Validate(d Doc, field string) error {
	b, err := json.Marshal(map[string]any(d))
	if err != nil {
		return errs.Field(field, "%v", err)
	}
	_, err = Parse(b, field)
	return err
}

// Marshal encodes d compactly with sorted keys: the stored form.
func (d Doc) Marshal() []byte {
	b, _ := json.Marshal(map[string]any(d))
	return b
}

// Indent encodes d for people, two spaces per level.
func (d Doc) Indent() []byte {
	b, _ := json.MarshalIndent(map[string]any(d), "", "  ")
	return append(b, '\n')
}

// String returns the string at key, or "".
func (d Doc) String(key string) string {
	s, _ := d[key].(string)
	return s
}

// Equal reports whether a and b are the same JSON document.
func Equal(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

type validator struct {
	prefix string
	errs.Violations
}

func (v *validator) path(p string) string {
	if p == "" {
		return v.prefix
	}
	if v.prefix == "" {
		return p
	}
	return v.prefix + "." + p
}

func (v *validator) add(p, format string, args ...any) { v.Add(v.path(p), format, args...) }

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// object checks that m has only the known keys and the required ones.
func (v *validator) object(p string, m map[string]any, known []string, required ...string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(known, k) {
			v.add(join(p, k), "is not a field of the server.json schema")
		}
	}
	for _, r := range required {
		if _, ok := m[r]; !ok {
			v.add(join(p, r), "is required")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str returns m[key] as a string, reporting a non-string.
func (v *validator) str(p string, m map[string]any, key string) (string, bool) {
	raw, ok := m[key]
	if !ok {
		return "", false
	}
	s, isStr := raw.(string)
	if !isStr {
		v.add(join(p, key), "must be a string")
		return "", false
	}
	return s, true
}

func (v *validator) boolean(p string, m map[string]any, key string) (bool, bool) {
	raw, ok := m[key]
	if !ok {
		return false, false
	}
	b, isBool := raw.(bool)
	if !isBool {
		v.add(join(p, key), "must be true or false")
	}
	return b, isBool
}

func (v *validator) array(p string, m map[string]any, key string) []any {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	a, isArr := raw.([]any)
	if !isArr {
		v.add(join(p, key), "must be an array")
	}
	return a
}

func (v *validator) obj(p string, raw any) (map[string]any, bool) {
	m, ok := raw.(map[string]any)
	if !ok {
		v.add(p, "must be an object")
	}
	return m, ok
}

func (v *validator) enum(p string, m map[string]any, key string, allowed ...string) string {
	s, ok := v.str(p, m, key)
	if ok && !contains(allowed, s) {
		v.add(join(p, key), "must be one of %s", strings.Join(allowed, ", "))
	}
	return s
}

func (v *validator) length(p string, m map[string]any, key string, min, max int) {
	if s, ok := v.str(p, m, key); ok {
		if n := utf8.RuneCountInString(s); n < min || n > max {
			v.add(join(p, key), "must be %d to %d characters", min, max)
		} else if err := aip.CheckText(s, max, false); err != nil {
			v.add(join(p, key), "%v", err)
		}
	}
}

func (v *validator) httpURL(p string, m map[string]any, key string) {
	if s, ok := v.str(p, m, key); ok && !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		v.add(join(p, key), "must be an http(s) URL")
	}
}

func (v *validator) server(m map[string]any) {
	v.object("", m, []string{"$schema", "name", "title", "description", "version", "repository", "websiteUrl", "icons", "packages", "remotes", "_meta"},
		"name", "description", "version")
	if s, ok := v.str("", m, "$schema"); ok && !contains(SchemaURLs, s) {
		v.add("$schema", "must be one of the schemas Pylee implements: %s", strings.Join(SchemaURLs, ", "))
	}
	if s, ok := v.str("", m, "name"); ok && (len(s) < 3 || len(s) > 200 || !namePattern.MatchString(s)) {
		v.add("name", "must be a reverse-DNS namespace, a slash and a name, e.g. com.acme/github (3 to 200 characters)")
	}
	v.length("", m, "title", 1, 100)
	v.length("", m, "description", 1, 100)
	if s, ok := v.str("", m, "version"); ok {
		if _, err := semver.StrictNewVersion(s); err != nil || len(s) > 255 {
			v.add("version", "must be a SemVer 2.0.0 version such as 1.2.0 or 2.0.0-rc.1 (%q is not)", s)
		}
	}
	v.httpURL("", m, "websiteUrl")
	if raw, ok := m["repository"]; ok {
		if r, ok := v.obj("repository", raw); ok {
			v.object("repository", r, []string{"url", "source", "id", "subfolder"}, "url", "source")
			v.httpURL("repository", r, "url")
			v.str("repository", r, "source")
			v.str("repository", r, "id")
			if s, ok := v.str("repository", r, "subfolder"); ok && (strings.HasPrefix(s, "/") || strings.Contains(s, "..")) {
				v.add("repository.subfolder", "must be a clean relative path")
			}
		}
	}
	for i, raw := range v.array("", m, "icons") {
		p := fmt.Sprintf("icons[%d]", i)
		if ic, ok := v.obj(p, raw); ok {
			v.icon(p, ic)
		}
	}
	for i, raw := range v.array("", m, "packages") {
		p := fmt.Sprintf("packages[%d]", i)
		if pk, ok := v.obj(p, raw); ok {
			v.pkg(p, pk)
		}
	}
	for i, raw := range v.array("", m, "remotes") {
		p := fmt.Sprintf("remotes[%d]", i)
		if r, ok := v.obj(p, raw); ok {
			v.transport(p, r, true, true)
		}
	}
	if raw, ok := m["_meta"]; ok {
		v.obj("_meta", raw)
	}
	v.secrets("", m)
}

func (v *validator) icon(p string, m map[string]any) {
	v.object(p, m, []string{"src", "mimeType", "sizes", "theme"}, "src")
	if s, ok := v.str(p, m, "src"); ok && (!strings.HasPrefix(s, "https://") || len(s) > 255) {
		v.add(join(p, "src"), "must be an https URL of at most 255 characters")
	}
	v.enum(p, m, "mimeType", "image/png", "image/jpeg", "image/jpg", "image/svg+xml", "image/webp")
	v.enum(p, m, "theme", "light", "dark")
	for j, raw := range v.array(p, m, "sizes") {
		if s, ok := raw.(string); !ok || !sizePattern.MatchString(s) {
			v.add(fmt.Sprintf("%s.sizes[%d]", p, j), `must be "WxH" (e.g. 48x48) or "any"`)
		}
	}
}

func (v *validator) pkg(p string, m map[string]any) {
	v.object(p, m, []string{"registryType", "registryBaseUrl", "identifier", "version", "fileSha256", "runtimeHint", "transport",
		"runtimeArguments", "packageArguments", "environmentVariables"}, "registryType", "identifier", "transport")
	rt := v.enum(p, m, "registryType", RegistryTypes...)
	v.httpURL(p, m, "registryBaseUrl")
	if s, ok := v.str(p, m, "identifier"); ok && s == "" {
		v.add(join(p, "identifier"), "must not be empty")
	}
	if s, ok := v.str(p, m, "version"); ok {
		switch {
		case s == "" || len(s) > 255:
			v.add(join(p, "version"), "must be 1 to 255 characters")
		case s == "latest" || strings.ContainsAny(s, "^~<>=* ") || strings.HasSuffix(s, ".x") || strings.Contains(s, ".x."):
			v.add(join(p, "version"), "must be a specific version, not %q (ranges and latest are refused)", s)
		}
	}
	sha, hasSha := v.str(p, m, "fileSha256")
	if hasSha && !sha256Pattern.MatchString(sha) {
		v.add(join(p, "fileSha256"), "must be 64 lowercase hex digits")
	}
	if rt == "mcpb" && !hasSha {
		if _, present := m["fileSha256"]; !present {
			v.add(join(p, "fileSha256"), "is required for mcpb packages")
		}
	}
	v.str(p, m, "runtimeHint")
	if raw, ok := m["transport"]; ok {
		if t, ok := v.obj(join(p, "transport"), raw); ok {
			v.transport(join(p, "transport"), t, false, false)
		}
	}
	for _, key := range []string{"runtimeArguments", "packageArguments"} {
		for i, raw := range v.array(p, m, key) {
			ap := fmt.Sprintf("%s.%s[%d]", p, key, i)
			if a, ok := v.obj(ap, raw); ok {
				v.argument(ap, a)
			}
		}
	}
	v.keyValues(p, m, "environmentVariables")
}

// transport checks a package transport (stdio, streamable-http, sse) or a
// remote (streamable-http, sse, with variables).
func (v *validator) transport(p string, m map[string]any, remote, variables bool) {
	known := []string{"type", "url", "headers"}
	if variables {
		known = append(known, "variables")
	}
	types := []string{"stdio", "streamable-http", "sse"}
	if remote {
		types = types[1:]
	}
	t := v.enum(p, m, "type", types...)
	if _, ok := m["type"]; !ok {
		v.add(join(p, "type"), "is required")
	}
	if t == "stdio" {
		v.object(p, m, []string{"type"})
		return
	}
	v.object(p, m, known, "url")
	if s, ok := v.str(p, m, "url"); ok && !urlPattern.MatchString(s) {
		v.add(join(p, "url"), "must start with http://, https:// or a {variable}")
	}
	v.keyValues(p, m, "headers")
	if variables {
		v.variables(p, m)
	}
}

var inputFields = []string{"description", "isRequired", "format", "value", "isSecret", "default", "placeholder", "choices"}

func (v *validator) input(p string, m map[string]any, extra []string, required ...string) {
	v.object(p, m, append(append([]string{}, inputFields...), extra...), required...)
	v.str(p, m, "description")
	v.boolean(p, m, "isRequired")
	v.enum(p, m, "format", "string", "number", "boolean", "filepath")
	v.str(p, m, "value")
	v.boolean(p, m, "isSecret")
	v.str(p, m, "default")
	v.str(p, m, "placeholder")
	for j, raw := range v.array(p, m, "choices") {
		if _, ok := raw.(string); !ok {
			v.add(fmt.Sprintf("%s.choices[%d]", p, j), "must be a string")
		}
	}
}

func (v *validator) variables(p string, m map[string]any) {
	raw, ok := m["variables"]
	if !ok {
		return
	}
	vars, ok := v.obj(join(p, "variables"), raw)
	if !ok {
		return
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vp := join(join(p, "variables"), k)
		if in, ok := v.obj(vp, vars[k]); ok {
			v.input(vp, in, nil)
		}
	}
}

func (v *validator) keyValues(p string, m map[string]any, key string) {
	for i, raw := range v.array(p, m, key) {
		kp := fmt.Sprintf("%s[%d]", join(p, key), i)
		if kv, ok := v.obj(kp, raw); ok {
			v.input(kp, kv, []string{"name", "variables"}, "name")
			if s, ok := v.str(kp, kv, "name"); ok && s == "" {
				v.add(join(kp, "name"), "must not be empty")
			}
			v.variables(kp, kv)
		}
	}
}

func (v *validator) argument(p string, m map[string]any) {
	switch t, _ := m["type"].(string); t {
	case "positional":
		v.input(p, m, []string{"type", "valueHint", "isRepeated", "variables"})
		_, hasValue := m["value"]
		_, hasHint := m["valueHint"]
		if !hasValue && !hasHint {
			v.add(join(p, "value"), "or valueHint is required for a positional argument")
		}
		v.str(p, m, "valueHint")
	case "named":
		v.input(p, m, []string{"type", "name", "isRepeated", "variables"}, "name")
		if s, ok := v.str(p, m, "name"); ok && s == "" {
			v.add(join(p, "name"), "must not be empty")
		}
	default:
		v.add(join(p, "type"), "must be positional or named")
		return
	}
	v.boolean(p, m, "isRepeated")
	v.variables(p, m)
}

// secrets walks every input: a secret input's value and default may only
// be a `${secret:NAME}` reference, and every reference anywhere must name a
// valid secret.
func (v *validator) secrets(p string, node any) {
	switch n := node.(type) {
	case map[string]any:
		if p == "_meta" {
			return
		}
		if secret, _ := n["isSecret"].(bool); secret {
			for _, key := range []string{"value", "default"} {
				if s, ok := n[key].(string); ok && s != "" && !secretRef.MatchString(s) {
					v.add(join(p, key), "of a secret input must hold a ${secret:NAME} reference (e.g. \"Bearer ${secret:TOKEN}\"), never the secret itself")
				}
			}
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v.secrets(join(p, k), n[k])
		}
	case []any:
		for i, x := range n {
			v.secrets(fmt.Sprintf("%s[%d]", p, i), x)
		}
	case string:
		for _, ref := range secretRef.FindAllStringSubmatch(n, -1) {
			if !secretName.MatchString(ref[1]) {
				v.add(p, "has a secret reference ${secret:%s} whose name is not [A-Za-z_][A-Za-z0-9_]*", ref[1])
			}
		}
	}
}
