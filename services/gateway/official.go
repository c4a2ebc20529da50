package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/server"
)

// OfficialPrefix starts the paths of the official MCP Registry read API
// served for each registry: /registries/{org}/{registry}/v0.1/servers...
const OfficialPrefix = "/registries/"

// officialMaxLimit is the official API's largest page, as the official
// registry has it.
const officialMaxLimit = 100

// NewOfficial returns the handler of the official MCP Registry read API
// (v0.1) for every registry: the registry's pinned entries the caller may
// see, each as the server.json of its pinned version, in the official
// response shape. It is backed by RegistryService.RenderOfficial, which
// renders each registry once per change and answers from memory.
func NewOfficial(conn grpc.ClientConnInterface) http.Handler {
	client := registryv1.NewRegistryServiceClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			officialError(w, http.StatusMethodNotAllowed, "Method not allowed: this registry is read-only")
			return
		}
		// /registries/{org}/{registry}/v0.1/servers[/{serverName}/versions[/{version}]]
		parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), OfficialPrefix), "/")
		if len(parts) < 4 || parts[2] != "v0.1" || parts[3] != "servers" {
			officialError(w, http.StatusNotFound, "Not found")
			return
		}
		for i, p := range parts {
			u, err := url.PathUnescape(p)
			if err != nil {
				officialError(w, http.StatusBadRequest, "Invalid path encoding")
				return
			}
			parts[i] = u
		}
		o := official{client: client, w: w, r: r, registry: names.Registry{Org: parts[0], Registry: parts[1]}.String()}
		switch {
		case len(parts) == 4:
			o.list()
		case len(parts) == 6 && parts[5] == "versions":
			o.versions(parts[4], "")
		case len(parts) == 7 && parts[5] == "versions":
			o.versions(parts[4], parts[6])
		default:
			officialError(w, http.StatusNotFound, "Not found")
		}
	})
}

type official struct {
	client   registryv1.RegistryServiceClient
	w        http.ResponseWriter
	r        *http.Request
	registry string
}

// render asks the registry service for the response of req and writes it:
// the bytes as rendered, with their ETag, or 304 when the client holds
// them already.
func (o official) render(req *registryv1.RenderOfficialRequest) {
	req.Parent = o.registry
	req.IfNoneMatch = o.r.Header.Get("If-None-Match")
	req.AcceptGzip = acceptsGzip(o.r.Header.Get("Accept-Encoding"))
	resp, err := o.client.RenderOfficial(forwarded(o.r), req)
	if err != nil {
		st := status.Convert(err)
		code := server.HTTPStatus(st.Code())
		if code == http.StatusUnauthorized {
			o.w.Header().Set("WWW-Authenticate", `Bearer realm="pylee"`)
		}
		msg := st.Message()
		switch {
		case code == http.StatusNotFound && msg != "Server not found" && msg != "Server version not found":
			msg = "Registry not found"
		case code == http.StatusInternalServerError:
			msg = "Internal error"
		}
		officialError(o.w, code, msg)
		return
	}
	h := o.w.Header()
	h.Set("ETag", resp.GetEtag())
	// Private: what a response holds depends on who asks. Revalidate:
	// a pin shows on the next read.
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization, Accept-Encoding")
	if resp.GetNotModified() {
		o.w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	if ce := resp.GetContentEncoding(); ce != "" {
		h.Set("Content-Encoding", ce)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.GetBody())))
	o.w.WriteHeader(http.StatusOK)
	if o.r.Method != http.MethodHead {
		_, _ = o.w.Write(resp.GetBody())
	}
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip.
func acceptsGzip(header string) bool {
	for header != "" {
		var coding string
		coding, header, _ = strings.Cut(header, ",")
		name, params, _ := strings.Cut(strings.TrimSpace(coding), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func (o official) list() {
	q := o.r.URL.Query()
	for _, k := range []string{"cursor", "search", "version", "updated_since", "limit", "include_deleted"} {
		if !utf8.ValidString(q.Get(k)) {
			officialError(o.w, http.StatusBadRequest, k+" must be valid UTF-8")
			return
		}
	}
	req := &registryv1.RenderOfficialRequest{Cursor: q.Get("cursor"), Search: q.Get("search"), IncludeDeleted: q.Get("include_deleted") == "true"}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > officialMaxLimit {
			officialError(o.w, http.StatusBadRequest, "limit must be an integer from 1 to 100")
			return
		}
		req.Limit = int32(n)
	}
	if s := q.Get("updated_since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			officialError(o.w, http.StatusBadRequest, "updated_since must be an RFC 3339 date-time")
			return
		}
		req.UpdatedSince = timestamppb.New(t)
	}
	req.VersionFilter = q.Get("version")
	o.render(req)
}

func (o official) versions(serverName, version string) {
	if !utf8.ValidString(serverName) || !utf8.ValidString(version) {
		officialError(o.w, http.StatusBadRequest, "Invalid path encoding")
		return
	}
	o.render(&registryv1.RenderOfficialRequest{ServerName: serverName, Version: version})
}

// OfficialRule is the official API's access rule: any authenticated caller;
// the registry service shows each caller only the entries it may see.
var OfficialRule = server.HTTPRule{Name: "registry.official.read", Methods: []string{http.MethodGet, http.MethodHead},
	Resource: func(r *http.Request) string {
		org, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, OfficialPrefix), "/")
		reg, _, _ := strings.Cut(rest, "/")
		return names.Registry{Org: org, Registry: reg}.String()
	},
	WriteError: func(w http.ResponseWriter, code int, st *status.Status) { officialError(w, code, st.Message()) }}

func officialError(w http.ResponseWriter, code int, msg string) {
	writeOfficial(w, code, map[string]string{"error": msg})
}

func writeOfficial(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
