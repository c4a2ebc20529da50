package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/server"
)

// OfficialPrefix starts the paths of the official MCP Registry read API
// served for each registry: /registries/{org}/{registry}/v0.1/servers...
const OfficialPrefix = "/registries/"

// Official API limits, as the official registry has them.
const (
	officialDefaultLimit = 30
	officialMaxLimit     = 100
)

// officialMetaKey is the official registry's block in a response's _meta.
const officialMetaKey = "io.modelcontextprotocol.registry/official"

// NewOfficial returns the handler of the official MCP Registry read API
// (v0.1) for every registry: the registry's pinned entries the caller may
// see, each as the server.json of its pinned version, in the official
// response shape. It is backed by RegistryService.ListEntries.
func NewOfficial(conn *grpc.ClientConn) http.Handler {
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
		o := official{client: client, w: w, r: r, registry: "orgs/" + parts[0] + "/registries/" + parts[1]}
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

// serverResponse is the official ServerResponse.
type serverResponse struct {
	Server json.RawMessage `json:"server"`
	Meta   map[string]any  `json:"_meta"`
}

type serverList struct {
	Servers  []serverResponse `json:"servers"`
	Metadata listMetadata     `json:"metadata"`
}

type listMetadata struct {
	NextCursor string `json:"nextCursor,omitempty"`
	Count      int    `json:"count"`
}

func (o official) call(req *registryv1.ListEntriesRequest) (*registryv1.ListEntriesResponse, bool) {
	req.Parent = o.registry
	req.View = registryv1.EntryView_ENTRY_VIEW_FULL
	resp, err := o.client.ListEntries(forwarded(o.r), req)
	if err != nil {
		st := status.Convert(err)
		code := server.HTTPStatus(st.Code())
		if code == http.StatusUnauthorized {
			o.w.Header().Set("WWW-Authenticate", `Bearer realm="pylee"`)
		}
		msg := st.Message()
		if code == http.StatusNotFound {
			msg = "Registry not found"
		}
		if code == http.StatusInternalServerError {
			msg = "Internal error"
		}
		officialError(o.w, code, msg)
		return nil, false
	}
	return resp, true
}

func (o official) list() {
	q := o.r.URL.Query()
	limit := officialDefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > officialMaxLimit {
			officialError(o.w, http.StatusBadRequest, "limit must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	req := &registryv1.ListEntriesRequest{PageSize: int32(limit), PageToken: q.Get("cursor"), Search: q.Get("search")}
	includeDeleted := q.Get("include_deleted") == "true"
	if s := q.Get("updated_since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			officialError(o.w, http.StatusBadRequest, "updated_since must be an RFC 3339 date-time")
			return
		}
		req.UpdatedSince = timestamppb.New(t)
		includeDeleted = true
	}
	// In a registry each server has one version, the pinned one: it is
	// the latest, so version=latest selects everything.
	if version := q.Get("version"); version != "" && version != "latest" {
		req.Version = version
	}
	resp, ok := o.call(req)
	if !ok {
		return
	}
	out := serverList{Servers: []serverResponse{}}
	for _, e := range resp.GetEntries() {
		if !includeDeleted && e.GetVersionStatus() == registryv1.ServerVersion_STATUS_YANKED {
			continue
		}
		if sr, ok := toServerResponse(e); ok {
			out.Servers = append(out.Servers, sr)
		}
	}
	out.Metadata = listMetadata{NextCursor: resp.GetNextPageToken(), Count: len(out.Servers)}
	writeOfficial(o.w, http.StatusOK, out)
}

func (o official) versions(serverName, version string) {
	resp, ok := o.call(&registryv1.ListEntriesRequest{ServerName: serverName, PageSize: 1})
	if !ok {
		return
	}
	var found []serverResponse
	for _, e := range resp.GetEntries() {
		if version != "" && version != "latest" && e.GetVersion() != version {
			continue
		}
		if sr, ok := toServerResponse(e); ok {
			found = append(found, sr)
		}
	}
	switch {
	case len(found) == 0 && version != "":
		officialError(o.w, http.StatusNotFound, "Server version not found")
	case len(found) == 0:
		officialError(o.w, http.StatusNotFound, "Server not found")
	case version != "":
		writeOfficial(o.w, http.StatusOK, found[0])
	default:
		writeOfficial(o.w, http.StatusOK, serverList{Servers: found, Metadata: listMetadata{Count: len(found)}})
	}
}

var officialStatusNames = map[registryv1.ServerVersion_Status]string{
	registryv1.ServerVersion_STATUS_ACTIVE:     "active",
	registryv1.ServerVersion_STATUS_DEPRECATED: "deprecated",
	registryv1.ServerVersion_STATUS_YANKED:     "deleted",
}

// toServerResponse is an entry as the official API shows it: the pinned
// version's server.json, and the registry's metadata. In a Pylee registry
// the pinned version is the server's only, hence latest, version.
func toServerResponse(e *registryv1.Entry) (serverResponse, bool) {
	d := e.GetVersionDetail()
	if d == nil || d.GetServerJson() == nil {
		return serverResponse{}, false
	}
	doc, err := protojson.Marshal(d.GetServerJson())
	if err != nil {
		return serverResponse{}, false
	}
	meta := map[string]any{
		"status":          officialStatusNames[d.GetStatus()],
		"publishedAt":     d.GetCreateTime().AsTime().Format(time.RFC3339Nano),
		"updatedAt":       e.GetUpdateTime().AsTime().Format(time.RFC3339Nano),
		"statusChangedAt": d.GetUpdateTime().AsTime().Format(time.RFC3339Nano),
		"isLatest":        true,
	}
	if m := d.GetStatusMessage(); m != "" {
		if len(m) > 500 {
			m = m[:500]
		}
		meta["statusMessage"] = m
	}
	return serverResponse{Server: doc, Meta: map[string]any{
		officialMetaKey: meta,
		"ai.pylee/entry": map[string]any{"name": e.GetName(), "versionRange": e.GetVersionRange(), "revision": e.GetRevision(),
			"digest": d.GetDigest()},
	}}, true
}

func writeOfficial(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// OfficialRule is the official API's access rule: any authenticated caller;
// the registry service shows each caller only the entries it may see.
var OfficialRule = server.HTTPRule{Name: "registry.official.read", Methods: []string{http.MethodGet, http.MethodHead},
	Resource: func(r *http.Request) string {
		org, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, OfficialPrefix), "/")
		reg, _, _ := strings.Cut(rest, "/")
		return "orgs/" + org + "/registries/" + reg
	},
	WriteError: func(w http.ResponseWriter, code int, st *status.Status) { officialError(w, code, st.Message()) }}

func officialError(w http.ResponseWriter, code int, msg string) {
	writeOfficial(w, code, map[string]string{"error": msg})
}
