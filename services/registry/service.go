package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/broadcast"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/serverjson"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// paging is every List RPC's page size: 50 by default, at most 1,000.
var paging = aip.Paging{Default: defaultPageSize, Max: maxPageSize}

var (
	orgName    = aip.MustPattern("orgs/{org}")
	serverName = aip.MustPattern("orgs/{org}/servers/{server}")
	// officialName is the official MCP registry's server name format:
	// a reverse-DNS namespace, a slash, a name.
	officialName = regexp.MustCompile(`^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$`)
)

// Store is the registry store.
type Store = store.Store

// OpenStore opens the registry database at url, which MigrateStore has
// migrated.
func OpenStore(ctx context.Context, url string) (*Store, error) { return store.Open(ctx, url) }

// MigrateStore applies the pending migrations to the registry database at
// url (tests prepare template databases with it).
func MigrateStore(ctx context.Context, url string) error { return store.Migrate(ctx, url) }

// SchemaStatus tells whether the registry database at url is behind its
// migrations.
func SchemaStatus(ctx context.Context, url string) (db.Status, error) {
	return store.SchemaStatus(ctx, url)
}

// Service implements pylee.registry.v1.RegistryService.
type Service struct {
	registryv1.UnimplementedRegistryServiceServer
	store     *store.Store
	tokens    *aip.PageTokens
	authz     auth.Authorizer
	changes   broadcast.Broadcast
	watchPoll time.Duration
	orgs      Orgs
	// purged runs after PurgeOrganization (nil: nothing).
	purged func(org string)
	// official serves the official MCP Registry API from memory.
	official *officialCache
	values   Values
	// identityProvider is true when the installation has one: an MCP
	// client then signs in through the gateway's OAuth metadata, and
	// GetConnectConfig's default entry is the HTTP one.
	identityProvider bool
}

// AfterPurge sets what runs after an organization's data is purged: a
// process that caches access decisions drops them, so nothing allowed
// under the deleted organization stays allowed.
func (s *Service) AfterPurge(fn func(org string)) *Service {
	s.purged = fn
	return s
}

// Orgs is what the registry service asks of the orgs service.
type Orgs interface {
	// TeamExists returns nil if team exists, an error wrapping
	// errs.ErrNotFound if it does not, and any other error when it cannot
	// tell.
	TeamExists(ctx context.Context, team string) error
	// PurgeBindings deletes every binding on resource and below it; it is
	// idempotent.
	PurgeBindings(ctx context.Context, resource string) error
}

// UseOrgs sets the orgs service that owner teams are checked with and
// whose bindings on a deleted server or registry are purged. Without it,
// owner teams are refused (they cannot be checked) and nothing is purged.
func (s *Service) UseOrgs(o Orgs) *Service {
	s.orgs = o
	return s
}

// Values is what the registry service asks of the secrets service: to
// delete the secrets and variables of a server or registry that is
// deleted, or created anew under an earlier one's id.
type Values interface {
	PurgeScope(ctx context.Context, scope string) error
}

// UseValues sets the secrets service whose values of deleted servers and
// registries are purged; without it, none are.
func (s *Service) UseValues(v Values) *Service {
	s.values = v
	return s
}

// purgeValues deletes the secrets and variables set at resource.
func (s *Service) purgeValues(ctx context.Context, resource string) error {
	if s.values == nil {
		return nil
	}
	if err := s.values.PurgeScope(ctx, resource); err != nil {
		return fmt.Errorf("delete the secrets and variables of %s: %v: %w", resource, err, errs.ErrUnavailable)
	}
	return nil
}

// purgeBindings deletes the grants on resource (a server or registry that
// is being deleted, or created anew).
func (s *Service) purgeBindings(ctx context.Context, resource string) error {
	if s.orgs == nil {
		return nil
	}
	if err := s.orgs.PurgeBindings(ctx, resource); err != nil {
		return fmt.Errorf("delete the role bindings on %s: %v: %w", resource, err, errs.ErrUnavailable)
	}
	return nil
}

// UseIdentityProvider says the installation has an identity provider
// (GetConnectConfig's default is then the HTTP entry).
func (s *Service) UseIdentityProvider(has bool) { s.identityProvider = has }

// New returns the service. authz decides, item by item, what filtered
// lists show. Each commit of the store wakes the entry watchers (and, as
// the module wires it, the audit relay): no handler wakes anything by hand.
func New(st *store.Store, pageTokens *aip.PageTokens, authz auth.Authorizer) *Service {
	s := &Service{store: st, tokens: pageTokens, authz: authz, watchPoll: 2 * time.Second, official: newOfficialCache()}
	st.AfterCommit(s.changes.Notify)
	st.AfterCommit(func() { s.official.commits.Add(1) })
	return s
}

// Register registers the service and its validators on srv.
func (s *Service) Register(srv *server.Server) {
	srv.RegisterService(&registryv1.RegistryService_ServiceDesc, s, Validators())
}

func orgOf(name string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(name, "orgs/"), "/")
	return id
}

func toProto(v store.Server) *registryv1.Server {
	out := &registryv1.Server{Name: v.Name, ServerName: v.ServerName, Title: v.Title, Description: v.Description,
		WebsiteUrl: v.WebsiteURL, CreateTime: timestamppb.New(v.CreateTime), UpdateTime: timestamppb.New(v.UpdateTime),
		Etag: aip.ETag(v.Name, v.Revision)}
	if len(v.Repository) > 0 {
		out.Repository = &registryv1.Repository{Url: v.Repository["url"], Source: v.Repository["source"], Subfolder: v.Repository["subfolder"]}
	}
	for _, i := range v.Icons {
		icon := &registryv1.Icon{Src: fmt.Sprint(i["src"]), MimeType: fmt.Sprint(i["mime_type"])}
		if sizes, ok := i["sizes"].([]any); ok {
			for _, sz := range sizes {
				icon.Sizes = append(icon.Sizes, fmt.Sprint(sz))
			}
		}
		out.Icons = append(out.Icons, icon)
	}
	return out
}

func fromProto(p *registryv1.Server) store.Server {
	out := store.Server{Title: p.GetTitle(), Description: p.GetDescription(), WebsiteURL: p.GetWebsiteUrl(), ServerName: p.GetServerName()}
	if r := p.GetRepository(); r != nil && (r.GetUrl() != "" || r.GetSource() != "" || r.GetSubfolder() != "") {
		out.Repository = map[string]string{"url": r.GetUrl(), "source": r.GetSource(), "subfolder": r.GetSubfolder()}
	}
	for _, i := range p.GetIcons() {
		sizes := make([]any, len(i.GetSizes()))
		for k, sz := range i.GetSizes() {
			sizes[k] = sz
		}
		out.Icons = append(out.Icons, map[string]any{"src": i.GetSrc(), "mime_type": i.GetMimeType(), "sizes": sizes})
	}
	return out
}

// CreateServer implements RegistryService.
func (s *Service) CreateServer(ctx context.Context, req *registryv1.CreateServerRequest) (*registryv1.Server, error) {
	v := fromProto(req.GetServer())
	v.Name = req.GetParent() + "/servers/" + req.GetServerId()
	v.Organization = orgOf(req.GetParent())
	if _, err := s.store.Read().Server(ctx, v.Name); errors.Is(err, errs.ErrNotFound) {
		// A new id: grants left on an earlier server of this id go first.
		if err := s.purgeBindings(ctx, v.Name); err != nil {
			return nil, err
		}
		if err := s.purgeValues(ctx, v.Name); err != nil {
			return nil, err
		}
	}
	ev := outbox.NewEvent(ctx, v.Organization, server.ActionFor(registryv1.RegistryService_CreateServer_FullMethodName), v.Name)
	ev.Metadata = map[string]string{"server_name": v.ServerName}
	var created store.Server
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		if id := req.GetRequestId(); id != "" {
			prev, ok, err := tx.ServerByRequestID(ctx, id)
			if err != nil {
				return err
			}
			if ok && prev.Name != v.Name {
				return fmt.Errorf("request_id %q created %q: %w", id, prev.Name, errs.ErrRequestIDReused)
			}
			if ok { // a retry: the server it created, and no second event
				created = prev
				return nil
			}
		}
		var err error
		if created, err = tx.InsertServer(ctx, v, req.GetRequestId()); err != nil {
			return err
		}
		tx.Audit(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return toProto(created), nil
}

// GetServer implements RegistryService.
func (s *Service) GetServer(ctx context.Context, req *registryv1.GetServerRequest) (*registryv1.Server, error) {
	v, err := s.store.Read().Server(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return toProto(v), nil
}

// ListServers implements RegistryService.
func (s *Service) ListServers(ctx context.Context, req *registryv1.ListServersRequest) (*registryv1.ListServersResponse, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.registry.v1.ListServers", req.GetParent(), req.GetSearch()))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Read().Servers(ctx, store.ServerQuery{Organization: orgOf(req.GetParent()), After: page.After, Limit: page.Limit(), Search: req.GetSearch()})
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListServersResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(r store.Server) string { return r.Name })
	for _, r := range rows {
		resp.Servers = append(resp.Servers, toProto(r))
	}
	return resp, nil
}

// expectedRevision turns an etag into the revision the store must hold.
func (s *Service) expectedRevision(ctx context.Context, name, etag string) (int64, error) {
	if etag == "" {
		return 0, nil
	}
	cur, err := s.store.Read().Server(ctx, name)
	if err != nil {
		return 0, err
	}
	if !aip.ETagMatches(etag, aip.ETag(name, cur.Revision)) {
		return 0, fmt.Errorf("server %q: %w", name, errs.ErrEtagMismatch)
	}
	return cur.Revision, nil
}

// UpdateServer implements RegistryService.
func (s *Service) UpdateServer(ctx context.Context, req *registryv1.UpdateServerRequest) (*registryv1.Server, error) {
	in := req.GetServer()
	paths, err := serverPaths(req)
	if err != nil {
		return nil, errs.Field("update_mask", "%v", err)
	}
	expect, err := s.expectedRevision(ctx, in.GetName(), in.GetEtag())
	if err != nil {
		return nil, err
	}
	v := fromProto(in)
	v.Name = in.GetName()
	ev := outbox.NewEvent(ctx, orgOf(v.Name), server.ActionFor(registryv1.RegistryService_UpdateServer_FullMethodName), v.Name)
	ev.Metadata = map[string]string{"update_mask": strings.Join(paths, ",")}
	var up store.Server
	err = s.store.Tx(ctx, func(tx *store.Tx) error {
		before, after, err := tx.UpdateServer(ctx, v, paths, expect)
		if err != nil {
			return err
		}
		up = after
		ev.Changes = store.ServerChanges(before, after, paths)
		tx.Audit(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return toProto(up), nil
}

// DeleteServer implements RegistryService.
func (s *Service) DeleteServer(ctx context.Context, req *registryv1.DeleteServerRequest) (*emptypb.Empty, error) {
	expect, err := s.expectedRevision(ctx, req.GetName(), req.GetEtag())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Read().Server(ctx, req.GetName()); err != nil {
		return nil, err
	}
	// The grants on the server go first: if the orgs service cannot be
	// reached, the server stays, whole, and the client can try again.
	if err := s.purgeBindings(ctx, req.GetName()); err != nil {
		return nil, err
	}
	ev := outbox.NewEvent(ctx, orgOf(req.GetName()), server.ActionFor(registryv1.RegistryService_DeleteServer_FullMethodName), req.GetName())
	err = s.store.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.DeleteServer(ctx, req.GetName(), expect); err != nil {
			return err
		}
		tx.Audit(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A grant that raced the deletion is caught here, or at the latest
	// before the id is created again.
	_ = s.purgeBindings(ctx, req.GetName())
	// Its values go once it is gone (a failure here is cured before the
	// id is created again).
	_ = s.purgeValues(ctx, req.GetName())
	return &emptypb.Empty{}, nil
}

// PurgeOrganization implements RegistryService: the orgs service deleted
// the organization, and nothing of it may stay reachable here.
func (s *Service) PurgeOrganization(ctx context.Context, req *registryv1.PurgeOrganizationRequest) (*registryv1.PurgeOrganizationResponse, error) {
	org := orgOf(req.GetName())
	var n int
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = tx.PurgeOrganization(ctx, org); err != nil || n == 0 {
			return err // nothing held: no event for a no-op
		}
		ev := outbox.NewEvent(ctx, org, server.ActionFor(registryv1.RegistryService_PurgeOrganization_FullMethodName), req.GetName())
		ev.Metadata = map[string]string{"deleted_rows": strconv.Itoa(n)}
		tx.Audit(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.purged != nil {
		s.purged(org)
	}
	return &registryv1.PurgeOrganizationResponse{DeletedRows: int64(n)}, nil
}

// ValidateServerJSON checks a document against the official server.json
// schema with Pylee's rules (strict SemVer, secret references only); the
// error names the JSON path.
func ValidateServerJSON(doc []byte) error {
	_, err := serverjson.Parse(doc, "")
	return err
}
