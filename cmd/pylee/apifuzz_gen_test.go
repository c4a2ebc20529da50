package main

// The request generator of TestAPIFuzz. It reads the merged OpenAPI document
// at test time, so a new RPC is fuzzed without a change here, and adds the
// routes the document does not describe (official registry API, export,
// health and metrics).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The parts of the swagger 2.0 document the generator reads.
type swaggerDoc struct {
	Paths       map[string]map[string]swaggerOp `json:"paths"`
	Definitions map[string]*swaggerSchema       `json:"definitions"`
}

type swaggerOp struct {
	OperationID string         `json:"operationId"`
	Parameters  []swaggerParam `json:"parameters"`
}

type swaggerParam struct {
	Name     string         `json:"name"`
	In       string         `json:"in"`
	Required bool           `json:"required"`
	Type     string         `json:"type"`
	Format   string         `json:"format"`
	Pattern  string         `json:"pattern"` // grpc-gateway's path template, e.g. orgs/[^/]+/servers/[^/]+
	Enum     []string       `json:"enum"`
	Schema   *swaggerSchema `json:"schema"`
}

type swaggerSchema struct {
	Ref        string                    `json:"$ref"`
	Type       string                    `json:"type"`
	Format     string                    `json:"format"`
	Enum       []string                  `json:"enum"`
	Properties map[string]*swaggerSchema `json:"properties"`
	Items      *swaggerSchema            `json:"items"`
	AllOf      []*swaggerSchema          `json:"allOf"`
	ReadOnly   bool                      `json:"readOnly"`
	Required   []string                  `json:"required"`
}

// apiOp is one method on one path template.
type apiOp struct {
	id     string // operationId, or a name for a hand-written route
	family string // the service (OrgsService, ...), or Official, Export, Ops
	method string
	path   []pathPiece
	query  []swaggerParam
	body   *swaggerSchema // nil: the operation takes no body
	stream bool           // server streaming: read until a short deadline
}

// pathPiece is literal text, or a variable standing for one id of a
// collection ("orgs", "servers", ...).
type pathPiece struct {
	lit  string
	coll string
}

// loadAPIOps reads the document and returns its operations, in a stable
// order (the seed must give the same requests on every run), followed by the
// hand-written routes.
func loadAPIOps(file string) ([]apiOp, map[string]*swaggerSchema, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	var doc swaggerDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	var ops []apiOp
	for _, tmpl := range fuzzKeys(doc.Paths) {
		for _, method := range fuzzKeys(doc.Paths[tmpl]) {
			sop := doc.Paths[tmpl][method]
			op := apiOp{id: sop.OperationID, method: strings.ToUpper(method)}
			op.family, _, _ = strings.Cut(sop.OperationID, "_")
			patterns := map[string]string{}
			for _, p := range sop.Parameters {
				switch p.In {
				case "path":
					patterns[p.Name] = p.Pattern
				case "query":
					op.query = append(op.query, p)
				case "body":
					op.body = p.Schema
				}
			}
			// grpc-gateway fills update_mask from the body when it is absent,
			// so the document omits it; it is a query parameter all the same.
			if op.method == "PATCH" {
				op.query = append(op.query, swaggerParam{Name: "updateMask", In: "query", Type: "string"})
			}
			op.stream = strings.HasSuffix(tmpl, ":watch")
			if op.path, err = fuzzParseTemplate(tmpl, patterns); err != nil {
				return nil, nil, err
			}
			ops = append(ops, op)
		}
	}
	if len(ops) < 40 {
		return nil, nil, fmt.Errorf("%s: only %d operations", file, len(ops))
	}
	return append(ops, handWrittenOps()...), doc.Definitions, nil
}

// handWrittenOps are the routes served outside grpc-gateway. Their variables
// are named by collection.
func handWrittenOps() []apiOp {
	str := func(name string, enum ...string) swaggerParam {
		return swaggerParam{Name: name, In: "query", Type: "string", Enum: enum}
	}
	official := []swaggerParam{str("cursor"), {Name: "limit", In: "query", Type: "integer"}, str("search"), str("version"),
		{Name: "updated_since", In: "query", Type: "string", Format: "date-time"}}
	routes := []struct {
		family, id, tmpl string
		query            []swaggerParam
	}{
		{"Official", "Official_ListServers", "/registries/{orgs}/{registries}/v0.1/servers", official},
		{"Official", "Official_ListVersions", "/registries/{orgs}/{registries}/v0.1/servers/{serverNames}/versions", nil},
		{"Official", "Official_GetVersion", "/registries/{orgs}/{registries}/v0.1/servers/{serverNames}/versions/{versions}", nil},
		{"Export", "Export_Events", "/v1/orgs/{orgs}/events:export", []swaggerParam{str("format", "ndjson", "csv")}},
		{"Ops", "Ops_Healthz", "/healthz", nil},
		{"Ops", "Ops_Readyz", "/readyz", nil},
		{"Ops", "Ops_Metrics", "/metrics", nil},
	}
	var ops []apiOp
	for _, r := range routes {
		path, err := fuzzParseTemplate(r.tmpl, nil)
		if err != nil {
			panic(err) // a typo in the table above
		}
		ops = append(ops, apiOp{id: r.id, family: r.family, method: "GET", path: path, query: r.query})
	}
	return ops
}

// fuzzParseTemplate turns "/v1/{name}:approve" with name's pattern
// "orgs/[^/]+/registries/[^/]+/approvals/[^/]+" into pieces; a variable
// without a pattern is itself a collection name.
func fuzzParseTemplate(tmpl string, patterns map[string]string) ([]pathPiece, error) {
	var out []pathPiece
	for rest := tmpl; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			out = append(out, pathPiece{lit: rest})
			break
		}
		j := strings.IndexByte(rest, '}')
		out = append(out, pathPiece{lit: rest[:i]})
		name := rest[i+1 : j]
		rest = rest[j+1:]
		pat, ok := patterns[name]
		if !ok {
			out = append(out, pathPiece{coll: name})
			continue
		}
		// The pattern's variable part "[^/]+" holds a slash itself.
		segs := strings.Split(strings.ReplaceAll(pat, "[^/]+", "*"), "/")
		for k, s := range segs {
			if k > 0 {
				out = append(out, pathPiece{lit: "/"})
			}
			switch {
			case s == "*" && k > 0:
				out = append(out, pathPiece{coll: segs[k-1]})
			case strings.ContainsAny(s, "[]*+"):
				return nil, fmt.Errorf("%s: pattern %q of {%s} is not collection/id pairs", tmpl, pat, name)
			default:
				out = append(out, pathPiece{lit: s})
			}
		}
	}
	return out, nil
}

// fuzzReq is one request, as sent and as kept in the corpus. Tokens appear
// as placeholders ({token:a}); in the corpus the markers and the random ids
// of seeded resources do too ({marker:fuzz-a}, {id:fuzz-a:invitations}), so a
// file replays against any run. fuzzSeed.expand fills them in.
type fuzzReq struct {
	Op       string              `json:"op"`
	Family   string              `json:"family"`
	Mutation string              `json:"mutation"`
	Identity string              `json:"identity"` // a, b, admin or none: the only valid credential the request carries
	Method   string              `json:"method"`
	Path     string              `json:"path"` // escaped path and query, sent verbatim
	Header   map[string][]string `json:"header,omitempty"`
	Body     string              `json:"body,omitempty"`
	BodyB64  []byte              `json:"bodyBase64,omitempty"` // instead of body when it is not UTF-8
	Stream   bool                `json:"stream,omitempty"`

	file string // the corpus file it came from, if any
}

// fuzzGen makes requests. It is used by one goroutine: its random source is
// what makes a seed reproduce a run.
type fuzzGen struct {
	rng  *rand.Rand
	ops  []apiOp
	defs map[string]*swaggerSchema
	seed *fuzzSeed
	n    int // for fresh ids
}

// genCtx is what a request's values are made for.
type genCtx struct {
	identity   string
	org, other string // the organization in the path, and the other one
	keepOrg    bool   // the path must keep its organization (see mutatePath)
	server     string // the server id in the path, if any
	text       string // free text, with the marker of the organization written to
}

func (g *fuzzGen) fresh(prefix string) string {
	g.n++
	return prefix + strconv.FormatInt(int64(g.n), 36)
}

func (g *fuzzGen) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

// next makes one request: an operation, an identity, the organization to
// address and a mutation, all drawn from the seeded random source.
func (g *fuzzGen) next() fuzzReq {
	op := g.ops[g.rng.IntN(len(g.ops))]
	r := fuzzReq{Op: op.id, Family: op.family, Method: op.method, Stream: op.stream}
	r.Identity = g.pick("a", "a", "a", "b", "b", "b", "admin", "none")
	a, b := g.seed.orgs[0], g.seed.orgs[1]
	own, other := a, b
	if r.Identity == "b" || (r.Identity != "a" && g.rng.IntN(2) == 0) {
		own, other = b, a
	}
	org := own
	switch x := g.rng.IntN(100); {
	case x < 5:
		org = g.pick("fuzz-nope", "acme", g.seed.spare)
	case x < 45 && (r.Identity == "a" || r.Identity == "b"):
		org, other = other, own // the other organization's data: must be refused
	}
	mutations := []struct {
		name   string
		weight int // percent
	}{{"valid", 40}, {"path", 12}, {"query", 12}, {"body", 14}, {"method", 8}, {"header", 14}}
	w := g.rng.IntN(100)
	for _, m := range mutations {
		if w -= m.weight; w < 0 {
			r.Mutation = m.name
			break
		}
	}
	if r.Mutation == "method" {
		r.Method = g.pick(slices.DeleteFunc([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"},
			func(m string) bool { return m == op.method })...)
	}
	// Keep the seeded data and both identities alive: what may really be
	// deleted is only the disposable resources, and an organization itself
	// only by the wrong identity (which must be refused).
	disposable, destroys := false, fuzzDestructive(r.Method, op.id)
	if destroys && g.seed.isSeeded(org) && (r.Identity == "admin" || g.seed.identityOrg(r.Identity) == org) {
		if fuzzOnlyOrg(op.path) {
			r.Identity = g.seed.identityFor(other)
		} else {
			disposable = true
		}
	}
	c := genCtx{identity: r.Identity, org: org, other: other, keepOrg: destroys || r.Identity == "admin", text: "fz " + g.seed.markerFor(r.Identity, org) + " " + g.pick("alpha", "beta", "ünïcode", "日本")}
	segs := g.fillPath(op, org, disposable, &c)
	q := g.query(op, &c)
	var body []byte
	if op.body != nil {
		body, _ = json.Marshal(g.value(op.body, "", 0, c))
	}
	r.Header = map[string][]string{"X-Request-Id": {g.fresh("fz-")}}
	if r.Identity != "none" {
		r.Header["Authorization"] = []string{"Bearer {token:" + r.Identity + "}"}
	}
	if body != nil {
		r.Header["Content-Type"] = []string{"application/json"}
	}
	switch r.Mutation {
	case "path":
		segs = g.mutatePath(segs, op.path, c)
	case "query":
		q = g.mutateQuery(q, c)
	case "body":
		body = g.mutateBody(body, c)
	case "header":
		g.mutateHeader(&r)
	}
	r.Path = strings.Join(segs, "")
	if len(q) > 0 {
		r.Path += "?" + strings.Join(q, "&")
	}
	if !utf8.Valid(body) {
		r.BodyB64 = body
	} else {
		r.Body = string(body)
	}
	return r
}

// fuzzDestructive reports a call that deletes or revokes something.
func fuzzDestructive(method, op string) bool {
	if method == "DELETE" {
		return true
	}
	for _, w := range []string{"Delete", "Purge", "Revoke", "Unpin", "Remove"} {
		if strings.Contains(op, w) {
			return true
		}
	}
	return false
}

// fuzzOnlyOrg reports a path whose only variable is the organization.
func fuzzOnlyOrg(path []pathPiece) bool {
	n := 0
	for _, p := range path {
		if p.coll != "" {
			n++
		}
	}
	return n == 1 && slices.ContainsFunc(path, func(p pathPiece) bool { return p.coll == "orgs" })
}

// fillPath returns the path as pieces of escaped text, variables filled.
func (g *fuzzGen) fillPath(op apiOp, org string, disposable bool, c *genCtx) []string {
	out := make([]string, len(op.path))
	for i, p := range op.path {
		if p.coll == "" {
			out[i] = p.lit
			continue
		}
		id := g.seed.id(g, p.coll, org, disposable)
		if p.coll == "servers" {
			c.server = id
		}
		out[i] = url.PathEscape(id)
	}
	return out
}

// query returns the query as escaped key=value pairs.
func (g *fuzzGen) query(op apiOp, c *genCtx) []string {
	var out []string
	for _, p := range op.query {
		if !p.Required && g.rng.IntN(10) < 6 {
			continue
		}
		key := p.Name
		if g.rng.IntN(3) == 0 {
			key = fuzzSnake(key) // grpc-gateway takes both spellings
		}
		out = append(out, url.QueryEscape(key)+"="+url.QueryEscape(g.queryValue(p, c)))
	}
	return out
}

func (g *fuzzGen) queryValue(p swaggerParam, c *genCtx) string {
	switch {
	case len(p.Enum) > 0:
		return g.pick(p.Enum...)
	case p.Format == "date-time": // relative to now: the one thing a seed does not repeat
		return time.Now().Add(-time.Duration(g.rng.IntN(3600)) * time.Second).UTC().Format(time.RFC3339Nano)
	case p.Type == "integer", p.Format == "int64":
		return strconv.Itoa(g.rng.IntN(60))
	}
	switch fuzzSnake(p.Name) {
	case "organization_id", "registry_id", "server_id", "team_id", "role_id", "service_account_id":
		return g.fresh("fz")
	case "request_id":
		return fmt.Sprintf("%08x-0000-4000-8000-%012x", g.rng.Uint32(), g.rng.Uint64()&0xffffffffffff)
	case "page_token", "cursor":
		return g.pick("", "AAAA", "eyJvIjoxfQ", "fz")
	case "filter":
		return g.pick(`action = "orgs.team.create"`, "", "garbage ((")
	case "search":
		return g.pick("s1", "fz", "com.")
	case "server_name":
		return "com." + c.org + "/s1"
	case "version", "base", "target":
		return g.pick("1.0.0", "1.0.1", "latest", "^1.0")
	case "bump":
		return g.pick("major", "minor", "patch")
	case "update_mask":
		return g.pick("displayName", "display_name,description", "title", "description", "*", "name")
	case "etag":
		return `"fz"`
	}
	return c.text
}

// value makes a JSON value for schema s, the value of field.
func (g *fuzzGen) value(s *swaggerSchema, field string, depth int, c genCtx) any {
	s = g.resolve(s)
	if s == nil || depth > 6 {
		return nil
	}
	switch s.Type {
	case "array":
		var arr []any
		for range g.rng.IntN(4) {
			if v := g.value(s.Items, field, depth+1, c); v != nil {
				arr = append(arr, v)
			}
		}
		return arr
	case "string":
		return g.str(field, s.Format, s.Enum, c)
	case "integer":
		switch field {
		case "minApprovals":
			return g.rng.IntN(3)
		case "weightPercent":
			return g.rng.IntN(101)
		}
		return g.rng.IntN(100)
	case "number":
		return g.rng.Float64()
	case "boolean":
		return g.rng.IntN(2) == 0
	}
	if len(s.Properties) == 0 { // google.protobuf.Struct and maps
		switch field {
		case "serverJson":
			return g.serverJSON(c)
		case "inputSchema", "outputSchema":
			return map[string]any{"type": "object", "properties": map[string]any{}}
		}
		return map[string]any{"k": c.text}
	}
	out := map[string]any{}
	for _, k := range fuzzKeys(s.Properties) {
		p, pc := s.Properties[k], c
		if r := g.resolve(p); p.ReadOnly || (r != nil && r.ReadOnly) {
			if g.rng.IntN(20) != 0 {
				continue
			}
			pc.other = c.org // ignored by the server, so no name of the other organization belongs here
		}
		if !slices.Contains(s.Required, k) && g.rng.IntN(10) < 4 {
			continue
		}
		if v := g.value(p, k, depth+1, pc); v != nil {
			out[k] = v
		}
	}
	return out
}

func (g *fuzzGen) resolve(s *swaggerSchema) *swaggerSchema {
	for s != nil {
		switch {
		case s.Ref != "":
			s = g.defs[strings.TrimPrefix(s.Ref, "#/definitions/")]
		case len(s.AllOf) == 1:
			s = s.AllOf[0]
		default:
			return s
		}
	}
	return nil
}

// str makes a string the field would plausibly hold; names mostly in the
// path's organization, sometimes in the other one (which must be refused).
func (g *fuzzGen) str(field, format string, enum []string, c genCtx) string {
	if len(enum) > 0 {
		return g.pick(enum...)
	}
	org := c.org
	if g.rng.IntN(10) == 0 {
		org = c.other
	}
	switch format {
	case "date-time":
		return time.Now().Add(time.Duration(g.rng.IntN(7200)-600) * time.Second).UTC().Format(time.RFC3339Nano)
	case "int64", "uint64":
		return strconv.Itoa(g.rng.IntN(100))
	}
	switch field {
	case "name": // the path names the resource; the body's name is ignored, so it stays in the path's organization
		return "orgs/" + c.org
	case "principal", "member", "members":
		return g.pick("orgs/"+org+"/serviceAccounts/keeper", "orgs/"+org+"/teams/t1", "users/nobody@fuzz.test", "users/admin", "orgs/"+org+"/serviceAccounts/fuzzer")
	case "role":
		return g.pick("roles/admin", "roles/user", "roles/owner", "roles/developer", "roles/auditor", "orgs/"+org+"/roles/role1", "roles/nope")
	case "permission", "permissions":
		return g.pick("orgs.get", "servers.get", "tools.invoke", "audit.read", "entries.pin", "no.such")
	case "resource", "resources", "entry", "organization":
		return g.pick("orgs/"+org, "orgs/"+org+"/servers/s1", "orgs/"+org+"/registries/r1", "orgs/"+org+"/servers/s1/tools/tool1")
	case "parent", "targetRegistry":
		return g.pick("orgs/"+org+"/registries/r1", "r2", "orgs/"+org+"/registries/rappr")
	case "ownerTeams":
		return "orgs/" + org + "/teams/t1"
	case "namespaces":
		return "com." + org
	case "email":
		return g.fresh("fz") + "@fuzz.test"
	case "version":
		return g.pick("1.0.0", "1.0.1", "2.0.0-rc.1", "1.0.0")
	case "versionRange":
		return g.pick("^1.0", "~1.0.0", ">=1")
	case "serverName":
		return "com." + org + "/" + g.fresh("fz")
	case "serverJson":
		b, _ := json.Marshal(g.serverJSON(c))
		return string(b)
	case "token", "secret":
		return g.pick("pyli_"+g.fresh("x"), "pyl_"+g.fresh("x"), "")
	case "url", "websiteUrl", "src", "jwksUri", "issuer":
		return "https://fuzz.example/" + g.fresh("u")
	case "mimeType":
		return "image/png"
	case "sizes":
		return "48x48"
	case "etag":
		return `"fz"`
	case "pause":
		return g.pick("30s", "1m", "forever")
	case "source":
		return "github"
	case "audience", "groupsClaim", "kind", "outcome", "action", "field", "id", "hash", "previousHash", "digest", "state":
		return g.fresh("fz")
	}
	return c.text
}

// serverJSON is a server.json document for the path's server.
func (g *fuzzGen) serverJSON(c genCtx) map[string]any {
	s := c.server
	if s == "" || g.rng.IntN(10) == 0 {
		s = "s1"
	}
	doc := map[string]any{"name": "com." + c.org + "/" + s, "description": c.text, "version": g.pick("1.0.1", "1.1.0", "1.0.0", "2.0.0")}
	if g.rng.IntN(3) == 0 {
		doc["remotes"] = []any{map[string]any{"type": "streamable-http", "url": "https://fuzz.example/mcp"}}
	}
	return doc
}

func fuzzKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// fuzzSnake turns pageSize into page_size.
func fuzzSnake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mutatePath changes one variable of the path, or its shape.
func (g *fuzzGen) mutatePath(segs []string, path []pathPiece, c genCtx) []string {
	segs = slices.Clone(segs)
	var vars []int
	for i, p := range path {
		if p.coll != "" {
			vars = append(vars, i)
		}
	}
	if len(vars) == 0 || g.rng.IntN(5) == 0 {
		switch g.rng.IntN(4) {
		case 0:
			segs = append(segs, g.pick("/", "/extra", "//", "/%2e%2e"))
		case 1:
			segs[0] = strings.Replace(segs[0], "/v1/", g.pick("/v1//", "/v2/", "/V1/", "/v1/./"), 1)
		case 2:
			segs = append(segs, g.pick(":verb", ":approve", "%3Aapprove", ";x=1", ":"))
		default:
			segs = segs[:len(segs)-1]
		}
		return segs
	}
	i := vars[g.rng.IntN(len(vars))]
	switch old := segs[i]; g.rng.IntN(18) {
	case 0, 1: // the same kind of id, of the other organization
		// Not for the admin, who may write there and whose texts carry the
		// marker of the organization meant, nor for a deletion, which could
		// then hit the seeded data it was kept from.
		if c.keepOrg {
			break
		}
		segs[i] = url.PathEscape(g.seed.id(g, path[i].coll, c.other, false))
		if path[i].coll == "orgs" {
			segs[i] = c.other
		}
	case 2:
		segs[i] = strings.Repeat("a", 1000+g.rng.IntN(8000))
	case 3:
		segs[i] = old + "%2F..%2F" + old
	case 4:
		segs[i] = "%E2%80%AE" + old // right-to-left override
	case 5:
		segs[i] = strings.ToUpper(old)
	case 6:
		segs[i] = old + g.pick("%20", "%3Bx", "%3F", "%23", "%0A")
	default:
		segs[i] = g.pick("..", "%2e%2e", ".", "%ff", "", "%00", "%252e%252e", "*", "%C0%AE", "%", "%zz", "~", "-", "0")
	}
	return segs
}

// mutateQuery gives one query value a hostile form, or adds one.
func (g *fuzzGen) mutateQuery(q []string, c genCtx) []string {
	hostile := []string{"%ff", "%", "%zz", "%00", "-1", "-2147483649", "99999999999999999999", "1e9", "0x10", "",
		strings.Repeat("9", 400), "null", "%FF%FE", "true", "%E2%80%AE", strings.Repeat("A", 6000)}
	q = slices.Clone(q)
	switch g.rng.IntN(6) {
	case 0:
		if len(q) > 0 {
			i := g.rng.IntN(len(q))
			k, _, _ := strings.Cut(q[i], "=")
			q[i] = k + "=" + g.pick(hostile...)
			break
		}
		fallthrough
	case 1:
		q = append(q, g.pick("page_size", "pageSize", "limit")+"="+g.pick("-1", "0", "100000", "99999999999999999999", "-2147483649", "1.5", "abc", "%ff"))
	case 2:
		q = append(q, g.pick("page_token", "pageToken", "cursor")+"="+g.pick("garbage", "%ff", strings.Repeat("A", 5000), "eyJvcmciOiJmdXp6LWEifQ", "..", "%00"))
	case 3:
		if len(q) > 0 {
			q = append(q, q[g.rng.IntN(len(q))])
		} else {
			q = append(q, "page_size=1", "page_size=2")
		}
	case 4: // fields bound to the path, given again in the query
		q = append(q, g.pick("name", "parent", "organization.name", "server.name", "registry.name")+"=orgs%2F"+c.other)
	default:
		q = append(q, g.pick("update_mask", "updateMask", "%ff", "", strings.Repeat("k", 3000), "view", "filter")+"="+
			g.pick("nope", "name", "%ff", "display_name,,", "ENTRY_VIEW_FULL", "99"))
	}
	return q
}

// mutateBody breaks the body in one way.
func (g *fuzzGen) mutateBody(body []byte, c genCtx) []byte {
	var obj map[string]any
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		obj = map[string]any{}
	}
	key := "displayName"
	if keys := fuzzKeys(obj); len(keys) > 0 {
		key = keys[g.rng.IntN(len(keys))]
	}
	set := func(v any) []byte {
		obj[key] = v
		b, _ := json.Marshal(obj)
		return b
	}
	switch g.rng.IntN(13) {
	case 0: // a wrong type
		wrong := []any{123, -1, true, nil, []any{1, "x"}, map[string]any{"x": 1}, "str", 1e308, json.RawMessage("99999999999999999999")}
		return set(wrong[g.rng.IntN(len(wrong))])
	case 1:
		n := 60 + g.rng.IntN(200)
		if g.rng.IntN(2) == 0 {
			return set(json.RawMessage(strings.Repeat("[", n) + strings.Repeat("]", n)))
		}
		return set(json.RawMessage(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)))
	case 2: // a huge string, under and over the 64 KiB body limit of startUp
		ch := g.pick("x", "é", "🚀")
		return set(strings.Repeat(ch, []int{1000, 60000, 70000}[g.rng.IntN(3)]/len(ch)))
	case 3:
		b, _ := json.Marshal(obj)
		return append(b, g.pick(" trailing", "}", "{}", "\n{\"a\":1}", "\x00", ",", "]")...)
	case 4:
		return bytes.Replace(set("INVALIDUTF8"), []byte("INVALIDUTF8"), []byte(g.pick("a\xffb", "\xc0\xae", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80")), 1)
	case 5:
		return []byte(g.pick("", "null", "[]", "1", `"s"`, "true", "<x/>", "{", `{"a":}`, `{'a':1}`, "\x00\x01\x02", "NaN", `{"a":NaN}`, "\xef\xbb\xbf{}"))
	case 6: // a field the message does not have
		obj["noSuchField"] = c.text
		b, _ := json.Marshal(obj)
		return b
	case 7: // a duplicate key
		b, _ := json.Marshal(obj)
		if len(obj) == 0 {
			return []byte(`{"displayName":"a","displayName":"b"}`)
		}
		return append([]byte(`{"`+key+`":"dup",`), b[1:]...)
	case 8:
		return set(json.RawMessage(g.pick("1e400", "-1", "99999999999999999999", "2147483648", "-2147483649", "1.5", "-0", "1E+2")))
	case 9:
		return set(json.RawMessage(g.pick(`"a\u0000b"`, `"\u001b[31mred"`, `"\u202eevil"`, `"line\nbreak"`, `"\ufeff"`, `"\ud800"`)))
	case 10:
		arr := make([]int, []int{5000, 20000}[g.rng.IntN(2)])
		return set(arr)
	case 11:
		return []byte("{}")
	default:
		for k := range obj {
			obj[k] = nil
		}
		b, _ := json.Marshal(obj)
		return b
	}
}

// fuzzExpiredJWT is an unsigned-looking JWT that expired in 1970.
const fuzzExpiredJWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZ1enoifQ.eyJpc3MiOiJodHRwczovL2Z1enouZXhhbXBsZSIsInN1YiI6ImFkbWluIiwiZXhwIjoxfQ.c2ln"

// mutateHeader sets one odd header. A request left without a valid
// credential becomes identity "none".
func (g *fuzzGen) mutateHeader(r *fuzzReq) {
	own := "{token:" + r.Identity + "}"
	garbage := g.pick("Bearer pyl_garbage", "Bearer ", "Bearer", "Basic Zm9vOmJhcg==", "Bearer pyl_"+strings.Repeat("x", 5000),
		"Bearer "+fuzzExpiredJWT, "Token abc", "Bearer \xff\xfe", "Bearer pyl_%00", "Bearer pyli_x")
	h := r.Header
	switch g.rng.IntN(11) {
	case 0:
		h["User-Agent"] = []string{strings.Repeat("A", []int{8 << 10, 100 << 10, 900 << 10, 1100 << 10}[g.rng.IntN(4)])}
	case 1:
		h["User-Agent"] = []string{g.pick("\xff\xfe fz", "%ff", "a\tb", "")}
	case 2:
		h["Content-Type"] = []string{g.pick("text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1",
			"application/x-www-form-urlencoded", "garbage", "", "application/grpc", "application/json, text/plain")}
	case 3:
		if r.Identity == "none" {
			h["Authorization"] = []string{garbage, garbage}
		} else {
			h["Authorization"] = [][]string{{"Bearer " + own, garbage}, {garbage, "Bearer " + own}, {"Bearer " + own, "Bearer " + own}}[g.rng.IntN(3)]
		}
	case 4:
		delete(h, "Authorization")
		r.Identity = "none"
	case 5:
		h["Authorization"] = []string{garbage}
		r.Identity = "none"
	case 6: // this identity's token, oddly spelled: only it could be accepted
		if r.Identity != "none" {
			h["Authorization"] = []string{g.pick("bearer ", "BEARER ", "Bearer  ", "Bearer\t") + own + g.pick("", "", " extra", "x", "\t")}
		}
	case 7:
		h["X-Request-Id"] = []string{g.pick(strings.Repeat("r", 10000), "\xff", "a b", "../../etc", "")}
	case 8:
		h["Accept"] = []string{g.pick("application/xml", "text/event-stream", "*/*;q=0", "application/grpc")}
	case 9:
		h["X-Forwarded-For"] = []string{g.pick(strings.Repeat("1.1.1.1,", 2000), "not-an-ip", "\xff")}
	default:
		k := g.pick("Grpc-Metadata-Authorization", "Grpc-Metadata-X-Request-Id", "Grpc-Metadata-Grpcgateway-User-Agent", "Grpc-Metadata-X-Forwarded-For", "Content-Encoding")
		h[k] = []string{g.pick("Bearer pyl_garbage", "gzip", strings.Repeat("m", 3000), "\xff")}
	}
}
