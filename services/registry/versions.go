package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/semvers"
	"github.com/pyleeai/pylee/services/registry/internal/serverjson"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

// actionVersionCreate is the action of a new version, from CreateVersion's
// rule (ImportServerJson declares the same).
var actionVersionCreate = server.ActionFor(registryv1.RegistryService_CreateVersion_FullMethodName)

var versionName = aip.MustPattern("orgs/{org}/servers/{server}/versions/{version}")

// Version statuses as stored.
const (
	statusActive     = "active"
	statusDeprecated = "deprecated"
	statusYanked     = "yanked"
)

var statusToProto = map[string]registryv1.ServerVersion_Status{
	statusActive:     registryv1.ServerVersion_STATUS_ACTIVE,
	statusDeprecated: registryv1.ServerVersion_STATUS_DEPRECATED,
	statusYanked:     registryv1.ServerVersion_STATUS_YANKED,
}

func statusFromProto(s registryv1.ServerVersion_Status) string {
	for k, v := range statusToProto {
		if v == s {
			return k
		}
	}
	return ""
}

func principalOf(ctx context.Context) string {
	p, _ := auth.FromContext(ctx)
	return p.Name
}

// parentOfVersion returns the server of a version name.
func parentOfVersion(name string) string {
	i := strings.LastIndex(name, "/versions/")
	if i < 0 {
		return name
	}
	return name[:i]
}

// versionSet is a server's versions with their parsed SemVer.
type versionSet struct {
	rows   []store.Version
	parsed []*semver.Version
}

func loadVersions(ctx context.Context, tx *store.Tx, server string) (versionSet, error) {
	rows, err := tx.Versions(ctx, server)
	if err != nil {
		return versionSet{}, err
	}
	vs := versionSet{rows: rows}
	for _, r := range rows {
		v, err := semver.StrictNewVersion(r.Version)
		if err != nil {
			return versionSet{}, fmt.Errorf("stored version %q: %w", r.Name, err)
		}
		vs.parsed = append(vs.parsed, v)
	}
	return vs, nil
}

// highest is the highest version keep accepts.
func (vs versionSet) highest(keep func(i int) bool) (store.Version, bool) {
	i := semvers.HighestIndex(vs.parsed, keep)
	if i < 0 {
		return store.Version{}, false
	}
	return vs.rows[i], true
}

// latest is the highest version without a prerelease that is not yanked.
func (vs versionSet) latest() (store.Version, bool) {
	return vs.highest(func(i int) bool { return vs.parsed[i].Prerelease() == "" && vs.rows[i].Status != statusYanked })
}

// highestActive is the highest active version in r (with published
// tools, where the registry's settings eff require them).
func (vs versionSet) highestActive(r semvers.Range, eff *registryv1.RegistrySettings) (store.Version, bool) {
	return vs.highest(func(i int) bool {
		return vs.rows[i].Status == statusActive && r.Matches(vs.parsed[i]) && (!eff.GetRequireRecordedTools() || hasTools(vs.rows[i]))
	})
}

func (vs versionSet) byVersion(version string) (store.Version, bool) {
	for _, r := range vs.rows {
		if r.Version == version {
			return r, true
		}
	}
	return store.Version{}, false
}

// sorted returns the rows, highest precedence first.
func (vs versionSet) sorted() []store.Version {
	idx := make([]int, len(vs.rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return vs.parsed[idx[a]].GreaterThan(vs.parsed[idx[b]]) })
	out := make([]store.Version, len(idx))
	for i, k := range idx {
		out[i] = vs.rows[k]
	}
	return out
}

func versionToProto(v store.Version, latest bool) (*registryv1.ServerVersion, error) {
	var doc map[string]any
	if err := json.Unmarshal(v.ServerJSON, &doc); err != nil {
		return nil, fmt.Errorf("stored server.json of %q: %w", v.Name, err)
	}
	st, err := structpb.NewStruct(doc)
	if err != nil {
		return nil, fmt.Errorf("stored server.json of %q: %w", v.Name, err)
	}
	tools, err := decodeTools(v.Tools)
	if err != nil {
		return nil, fmt.Errorf("stored tools of %q: %w", v.Name, err)
	}
	out := &registryv1.ServerVersion{Name: v.Name, Version: v.Version, ServerJson: st, ReleaseNotes: v.ReleaseNotes, Tools: tools,
		Status: statusToProto[v.Status], StatusMessage: v.StatusMessage, IsLatest: latest, Creator: v.Creator,
		CreateTime: timestamppb.New(v.CreateTime), UpdateTime: timestamppb.New(v.UpdateTime), Digest: v.Digest}
	if v.ToolsObserved != nil {
		out.ToolsObservedTime = timestamppb.New(*v.ToolsObserved)
		if out.ObservedTools, err = decodeTools(v.ObservedTools); err != nil {
			return nil, fmt.Errorf("stored observed tools of %q: %w", v.Name, err)
		}
	}
	return out, nil
}

// maxListedNames bounds the tool names an audit event lists.
const maxListedNames = 2000

// hasTools reports whether v was published with tools.
func hasTools(v store.Version) bool {
	t := bytes.TrimSpace(v.Tools)
	return len(t) > 0 && !bytes.Equal(t, []byte("[]"))
}

// RecordObservedTools implements RegistryService: the gateway records
// what a version published without tools first listed, once.
func (s *Service) RecordObservedTools(ctx context.Context, req *registryv1.RecordObservedToolsRequest) (*registryv1.ServerVersion, error) {
	encoded, err := encodeTools(req.GetTools())
	if err != nil {
		return nil, err
	}
	var out store.Version
	var latest bool
	err = s.store.Tx(ctx, func(tx *store.Tx) error {
		if out, err = tx.RecordObservedTools(ctx, req.GetName(), encoded); err != nil {
			return err
		}
		names := make([]string, len(req.GetTools()))
		for i, t := range req.GetTools() {
			names[i] = t.GetName()
		}
		ev := outbox.NewEvent(ctx, orgOf(req.GetName()), server.ActionFor(registryv1.RegistryService_RecordObservedTools_FullMethodName), req.GetName())
		listed := strings.Join(names, ",")
		if len(listed) > maxListedNames {
			listed = strings.ToValidUTF8(listed[:maxListedNames], "") + "…"
		}
		ev.Metadata = map[string]string{"tools": fmt.Sprint(len(names)), "names": listed}
		tx.Audit(ev)
		vs, err := loadVersions(ctx, tx, out.Server)
		if err != nil {
			return err
		}
		l, ok := vs.latest()
		latest = ok && l.Name == out.Name
		return nil
	})
	if err != nil {
		return nil, err
	}
	return versionToProto(out, latest)
}

// CreateVersion implements RegistryService.
func (s *Service) CreateVersion(ctx context.Context, req *registryv1.CreateVersionRequest) (*registryv1.ServerVersion, error) {
	in := req.GetVersion()
	var doc serverjson.Doc
	if in.GetServerJson() != nil {
		doc = serverjson.Doc(in.GetServerJson().AsMap())
	}
	return s.publish(ctx, req.GetParent(), in.GetVersion(), doc, in.GetReleaseNotes(), in.GetTools(), "version.server_json")
}

// ImportServerJson implements RegistryService.
func (s *Service) ImportServerJson(ctx context.Context, req *registryv1.ImportServerJsonRequest) (*registryv1.ServerVersion, error) {
	doc, err := serverjson.Parse([]byte(req.GetServerJson()), "server_json")
	if err != nil {
		return nil, err
	}
	return s.publish(ctx, req.GetParent(), req.GetVersion(), doc, req.GetReleaseNotes(), req.GetTools(), "server_json")
}

// publish stores a new version of server. An empty doc is made from the
// server's fields; an empty version is the document's.
func (s *Service) publish(ctx context.Context, server, version string, doc serverjson.Doc, notes string, tools []*registryv1.Tool, field string) (*registryv1.ServerVersion, error) {
	srv, err := s.store.Read().Server(ctx, server)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		doc = docFromServer(srv)
	}
	if given := doc.String("version"); version != "" && given != "" && given != version {
		return nil, errs.Field("version", "is %q but the document's version is %q; they must agree", version, given)
	}
	if version == "" {
		version = doc.String("version")
	}
	if version == "" {
		return nil, errs.Field("version", "is required (here or as the document's version)")
	}
	parsed, err := semvers.Parse(version)
	if err != nil {
		return nil, errs.Field("version", "%v", err)
	}
	doc["version"] = version
	if _, ok := doc["$schema"]; !ok {
		doc["$schema"] = serverjson.SchemaURL
	}
	if name := doc.String("name"); name != srv.ServerName {
		return nil, errs.Field(field+".name", "is %q but the server's serverName is %q", name, srv.ServerName)
	}
	if err := serverjson.Validate(doc, field); err != nil {
		return nil, err
	}
	toolsJSON, err := encodeTools(tools)
	if err != nil {
		return nil, err
	}
	body := doc.Marshal()
	sum := sha256.New()
	for _, part := range [][]byte{body, []byte(notes), toolsJSON} {
		_, _ = fmt.Fprintf(sum, "%d:", len(part)) // a hash takes every write
		sum.Write(part)
	}

	row := store.Version{Name: server + "/versions/" + version, Organization: orgOf(server), Server: server, Version: version,
		Precedence: strings.SplitN(version, "+", 2)[0], Prerelease: parsed.Prerelease() != "", ServerJSON: body,
		ReleaseNotes: notes, Tools: toolsJSON, Digest: "sha256:" + hex.EncodeToString(sum.Sum(nil)), Creator: principalOf(ctx),
		Status: statusActive}
	var latest bool
	err = s.store.Tx(ctx, func(tx *store.Tx) error {
		row.CreateTime, row.UpdateTime = tx.Now(), tx.Now()
		if err := tx.InsertVersion(ctx, row); err != nil {
			return err
		}
		ev := outbox.NewEvent(ctx, row.Organization, actionVersionCreate, row.Name)
		ev.Metadata = map[string]string{"version": version, "digest": row.Digest, "tools": fmt.Sprint(len(tools))}
		tx.Audit(ev)
		vs, err := loadVersions(ctx, tx, server)
		if err != nil {
			return err
		}
		l, ok := vs.latest()
		latest = ok && l.Name == row.Name
		return s.followRanges(ctx, tx, server, vs)
	})

	if err != nil {
		return nil, err
	}
	return versionToProto(row, latest)
}

func docFromServer(srv store.Server) serverjson.Doc {
	doc := serverjson.Doc{"name": srv.ServerName, "description": srv.Description}
	if srv.Description == "" {
		doc["description"] = srv.ServerName
	}
	if len(doc.String("description")) > 100 {
		doc["description"] = doc.String("description")[:100]
	}
	if srv.Title != "" && len(srv.Title) <= 100 {
		doc["title"] = srv.Title
	}
	if srv.WebsiteURL != "" {
		doc["websiteUrl"] = srv.WebsiteURL
	}
	if r := srv.Repository; r["url"] != "" && r["source"] != "" {
		repo := map[string]any{"url": r["url"], "source": r["source"]}
		if r["subfolder"] != "" {
			repo["subfolder"] = r["subfolder"]
		}
		doc["repository"] = repo
	}
	var icons []any
	for _, i := range srv.Icons {
		icon := map[string]any{"src": i["src"]}
		if m, _ := i["mime_type"].(string); m != "" {
			icon["mimeType"] = m
		}
		if sz, ok := i["sizes"].([]any); ok && len(sz) > 0 {
			icon["sizes"] = sz
		}
		icons = append(icons, icon)
	}
	if len(icons) > 0 {
		doc["icons"] = icons
	}
	return doc
}

// resolveVersion reads version name; `latest` resolves to the latest.
func (s *Service) resolveVersion(ctx context.Context, tx *store.Tx, name string) (store.Version, bool, error) {
	server := parentOfVersion(name)
	vs, err := loadVersions(ctx, tx, server)
	if err != nil {
		return store.Version{}, false, err
	}
	l, hasLatest := vs.latest()
	if strings.HasSuffix(name, "/versions/latest") {
		if !hasLatest {
			if _, err := tx.Server(ctx, server); err != nil {
				return store.Version{}, false, err
			}
			return store.Version{}, false, fmt.Errorf("server %q has no released version: %w", server, errs.ErrNotFound)
		}
		return l, true, nil
	}
	for _, r := range vs.rows {
		if r.Name == name {
			return r, hasLatest && l.Name == r.Name, nil
		}
	}
	return store.Version{}, false, fmt.Errorf("version %q: %w", name, errs.ErrNotFound)
}

// GetVersion implements RegistryService.
func (s *Service) GetVersion(ctx context.Context, req *registryv1.GetVersionRequest) (*registryv1.ServerVersion, error) {
	v, latest, err := s.resolveVersion(ctx, s.store.Read(), req.GetName())
	if err != nil {
		return nil, err
	}
	return versionToProto(v, latest)
}

// ListVersions implements RegistryService.
func (s *Service) ListVersions(ctx context.Context, req *registryv1.ListVersionsRequest) (*registryv1.ListVersionsResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.registry.v1.ListVersions", req.GetParent()))
	if err != nil {
		return nil, err
	}
	tx := s.store.Read()
	if _, err := tx.Server(ctx, req.GetParent()); err != nil {
		return nil, err
	}
	vs, err := loadVersions(ctx, tx, req.GetParent())
	if err != nil {
		return nil, err
	}
	l, hasLatest := vs.latest()
	// In SemVer order, which is not the names' order: resume after the
	// cursor's position.
	sorted := vs.sorted()
	if page.After != "" {
		if i := slices.IndexFunc(sorted, func(r store.Version) bool { return r.Name == page.After }); i >= 0 {
			sorted = sorted[i+1:]
		} else {
			sorted = nil // the server's versions went with it
		}
	}
	resp := &registryv1.ListVersionsResponse{}
	rows, next := aip.Finish(ctx, page, sorted, func(r store.Version) string { return r.Name })
	resp.NextPageToken = next
	for _, r := range rows {
		p, err := versionToProto(r, hasLatest && r.Name == l.Name)
		if err != nil {
			return nil, err
		}
		resp.Versions = append(resp.Versions, p)
	}
	return resp, nil
}

// SetVersionStatus implements RegistryService.
func (s *Service) SetVersionStatus(ctx context.Context, req *registryv1.SetVersionStatusRequest) (*registryv1.ServerVersion, error) {
	status := statusFromProto(req.GetStatus())
	var out store.Version
	var latest bool
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Version(ctx, req.GetName())
		if err != nil {
			return err
		}
		if out, err = tx.SetVersionStatus(ctx, req.GetName(), status, req.GetMessage()); err != nil {
			return err
		}
		ev := outbox.NewEvent(ctx, orgOf(req.GetName()), server.ActionFor(registryv1.RegistryService_SetVersionStatus_FullMethodName), req.GetName())
		ev.Changes = append(ev.Changes, outbox.Change("status", cur.Status, status))
		if cur.StatusMessage != req.GetMessage() {
			ev.Changes = append(ev.Changes, outbox.Change("status_message", cur.StatusMessage, req.GetMessage()))
		}
		tx.Audit(ev)
		vs, err := loadVersions(ctx, tx, cur.Server)
		if err != nil {
			return err
		}
		l, ok := vs.latest()
		latest = ok && l.Name == out.Name
		return s.followRanges(ctx, tx, cur.Server, vs)
	})
	if err != nil {
		return nil, err
	}
	return versionToProto(out, latest)
}

// SuggestNextVersion implements RegistryService.
func (s *Service) SuggestNextVersion(ctx context.Context, req *registryv1.SuggestNextVersionRequest) (*registryv1.SuggestNextVersionResponse, error) {
	tx := s.store.Read()
	if _, err := tx.Server(ctx, req.GetParent()); err != nil {
		return nil, err
	}
	vs, err := loadVersions(ctx, tx, req.GetParent())
	if err != nil {
		return nil, err
	}
	next, from, err := semvers.Suggest(vs.parsed, req.GetBump(), req.GetPrerelease())
	if err != nil {
		return nil, errs.Field("prerelease", "%v", err)
	}
	resp := &registryv1.SuggestNextVersionResponse{Version: next}
	if from != nil {
		resp.From = from.Original()
	}
	return resp, nil
}

// DiffVersions implements RegistryService.
func (s *Service) DiffVersions(ctx context.Context, req *registryv1.DiffVersionsRequest) (*registryv1.ToolDiff, error) {
	tx := s.store.Read()
	var tools [2][]*registryv1.Tool
	for i, v := range []string{req.GetBase(), req.GetTarget()} {
		row, _, err := s.resolveVersion(ctx, tx, req.GetParent()+"/versions/"+v)
		if err != nil {
			return nil, err
		}
		if tools[i], err = decodeTools(row.Tools); err != nil {
			return nil, err
		}
	}
	return diffTools(tools[0], tools[1]), nil
}

// ExportServerJson implements RegistryService.
func (s *Service) ExportServerJson(ctx context.Context, req *registryv1.ExportServerJsonRequest) (*registryv1.ExportServerJsonResponse, error) {
	v, _, err := s.resolveVersion(ctx, s.store.Read(), req.GetName())
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(v.ServerJSON, &doc); err != nil {
		return nil, err
	}
	return &registryv1.ExportServerJsonResponse{ServerJson: string(serverjson.Doc(doc).Indent())}, nil
}
