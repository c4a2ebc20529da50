package orgs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Audit actions of the organizations' own changes, from their RPCs' rules.
// The audit service starts a new incarnation of an organization's chain
// at ActionCreate (auditlog.ActionOrganizationCreate must stay equal).
var (
	ActionCreate = server.ActionFor(orgsv1.OrgsService_CreateOrganization_FullMethodName)
	ActionUpdate = server.ActionFor(orgsv1.OrgsService_UpdateOrganization_FullMethodName)
	ActionDelete = server.ActionFor(orgsv1.OrgsService_DeleteOrganization_FullMethodName)
)

// Page sizes of ListOrganizations (AIP-158).
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// paging is every List RPC's page size: 50 by default, at most 1,000.
var paging = aip.Paging{Default: defaultPageSize, Max: maxPageSize}

// updatable are the fields UpdateOrganization may change.
var updatable = []string{store.FieldDisplayName, store.FieldDescription, store.FieldOverview, store.FieldOIDC}

// Service implements pylee.orgs.v1.OrgsService.
type Service struct {
	orgsv1.UnimplementedOrgsServiceServer
	store  store.Store
	tokens *aip.PageTokens
	// authn is what VerifyToken accepts.
	authn   auth.Authenticator
	engine  *Engine
	purgers []Purger
}

// Purger deletes what another service holds of an organization. It must be
// idempotent: it runs before an organization is deleted, once more after
// (for a write that raced the deletion), and before an organization is
// created (so a re-created id starts empty whatever happened before).
type Purger func(ctx context.Context, org string) error

// PurgeWith sets the purgers of the services that hold data of an
// organization (the registry, later secrets and deploy) and returns s.
func (s *Service) PurgeWith(p ...Purger) *Service {
	s.purgers = append(s.purgers, p...)
	return s
}

// purge runs every purger for org; the first failure stops it.
func (s *Service) purge(ctx context.Context, org string) error {
	for _, p := range s.purgers {
		if err := p(ctx, org); err != nil {
			return fmt.Errorf("organization %q: deleting its data in the other services failed, nothing was changed; try again: %w", org, errs.ErrUnavailable)
		}
	}
	return nil
}

// New returns the service over st; engine decides what callers may see;
// pageTokens seal list page tokens. The store wakes the audit relay at
// each commit (Store.AfterCommit).
func New(st store.Store, engine *Engine, pageTokens *aip.PageTokens) *Service {
	return &Service{store: st, engine: engine, tokens: pageTokens, authn: NewTokenAuthenticator(st)}
}

// Register registers the service and its validators on srv.
func (s *Service) Register(srv *server.Server) {
	srv.RegisterService(&orgsv1.OrgsService_ServiceDesc, s, Validators())
}

func toProto(o store.Organization) *orgsv1.Organization {
	name := names.Org{Org: o.ID}.String()
	return &orgsv1.Organization{
		Name:        name,
		DisplayName: o.DisplayName,
		Description: o.Description,
		Overview:    o.Overview,
		CreateTime:  timestamppb.New(o.CreateTime),
		UpdateTime:  timestamppb.New(o.UpdateTime),
		Etag:        orgETag(o),
		Oidc:        oidcProto(o.OIDC),
	}
}

// orgETag includes the creation time, so an organization deleted and
// created again under its id never repeats an etag of the old one.
func orgETag(o store.Organization) string {
	return aip.ETag(names.Org{Org: o.ID}.String()+"@"+strconv.FormatInt(o.CreateTime.UnixMicro(), 10), o.Revision)
}

func oidcProto(m map[string]string) *orgsv1.OidcConfig {
	if m["issuer"] == "" {
		return nil
	}
	return &orgsv1.OidcConfig{Issuer: m["issuer"], Audience: m["audience"], JwksUri: m["jwks_uri"], GroupsClaim: m["groups_claim"]}
}

func oidcMap(c *orgsv1.OidcConfig) map[string]string {
	if c.GetIssuer() == "" {
		return nil
	}
	return map[string]string{"issuer": c.GetIssuer(), "audience": c.GetAudience(), "jwks_uri": c.GetJwksUri(), "groups_claim": c.GetGroupsClaim()}
}

// CreateOrganization implements OrgsService.
func (s *Service) CreateOrganization(ctx context.Context, req *orgsv1.CreateOrganizationRequest) (*orgsv1.Organization, error) {
	o := req.GetOrganization()
	id := req.GetOrganizationId()
	ev := outbox.NewEvent(ctx, id, ActionCreate, names.Org{Org: id}.String())
	org := store.Organization{
		ID:          id,
		DisplayName: o.GetDisplayName(),
		Description: o.GetDescription(),
		Overview:    o.GetOverview(),
		OIDC:        oidcMap(o.GetOidc()),
	}
	// The creator owns the new organization, so it always has an owner.
	if p, ok := auth.FromContext(ctx); ok && p.Kind != auth.KindService {
		org.Owner = p.Name
	}
	if _, err := s.store.GetOrganization(ctx, id); errors.Is(err, errs.ErrNotFound) {
		// A new id (not a retry of this create): whatever another service
		// still holds of an earlier organization of this id goes first.
		if err := s.purge(ctx, id); err != nil {
			return nil, err
		}
	}
	created, err := s.store.CreateOrganization(ctx, org, req.GetRequestId(), ev)
	if err != nil {
		return nil, err
	}
	s.engine.Invalidate()
	return toProto(created), nil
}

// GetOrganization implements OrgsService.
func (s *Service) GetOrganization(ctx context.Context, req *orgsv1.GetOrganizationRequest) (*orgsv1.Organization, error) {
	id, err := orgID(req.GetName())
	if err != nil {
		return nil, errs.Field("name", "%v", err)
	}
	o, err := s.store.GetOrganization(ctx, id)
	if err != nil {
		return nil, err
	}
	return toProto(o), nil
}

// ListOrganizations implements OrgsService.
func (s *Service) ListOrganizations(ctx context.Context, req *orgsv1.ListOrganizationsRequest) (*orgsv1.ListOrganizationsResponse, error) {
	filter, err := parseFilter(req.GetFilter())
	if err != nil {
		return nil, errs.Field("filter", "%v", err)
	}
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.orgs.v1.ListOrganizations", req.GetFilter()))
	if err != nil {
		return nil, err
	}
	q := store.OrganizationQuery{After: page.After, Limit: page.Limit()}
	filter.apply(&q)
	rows, err := s.store.ListOrganizations(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &orgsv1.ListOrganizationsResponse{}
	rows, resp.NextPageToken = aip.Finish(ctx, page, rows, func(o store.Organization) string { return o.ID })
	p, _ := auth.FromContext(ctx)
	for _, o := range rows {
		// Only what the caller may see; a page may hold fewer than page_size.
		if p.OutsideOrg(names.Org{Org: o.ID}.String()) {
			continue
		}
		if p.Kind != auth.KindService {
			if d, _, err := s.engine.Decide(ctx, p.Name, p.Groups, "orgs.get", names.Org{Org: o.ID}.String()); err != nil {
				return nil, err
			} else if !d.Allowed {
				continue
			}
		}
		resp.Organizations = append(resp.Organizations, toProto(o))
	}
	return resp, nil
}

// UpdateOrganization implements OrgsService.
func (s *Service) UpdateOrganization(ctx context.Context, req *orgsv1.UpdateOrganizationRequest) (*orgsv1.Organization, error) {
	in := req.GetOrganization()
	paths, err := organizationPaths(req)
	if err != nil {
		return nil, errs.Field("update_mask", "%v", err)
	}
	id, err := orgID(in.GetName())
	if err != nil {
		return nil, errs.Field("organization.name", "%v", err)
	}
	expect, err := s.expectedRevision(ctx, id, in.GetName(), in.GetEtag())
	if err != nil {
		return nil, err
	}
	ev := outbox.NewEvent(ctx, id, ActionUpdate, in.GetName())
	ev.Metadata = map[string]string{"update_mask": strings.Join(paths, ",")}
	up, err := s.store.UpdateOrganization(ctx, store.Organization{
		ID:          id,
		DisplayName: in.GetDisplayName(),
		Description: in.GetDescription(),
		Overview:    in.GetOverview(),
		OIDC:        oidcMap(in.GetOidc()),
	}, paths, expect, ev)
	if err != nil {
		return nil, err
	}
	return toProto(up), nil
}

// DeleteOrganization implements OrgsService.
func (s *Service) DeleteOrganization(ctx context.Context, req *orgsv1.DeleteOrganizationRequest) (*emptypb.Empty, error) {
	id, err := orgID(req.GetName())
	if err != nil {
		return nil, errs.Field("name", "%v", err)
	}
	expect, err := s.expectedRevision(ctx, id, req.GetName(), req.GetEtag())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetOrganization(ctx, id); err != nil {
		return nil, err
	}
	// What the other services hold goes first: if they cannot be reached,
	// the organization stays, whole, and the client can try again.
	if err := s.purge(ctx, id); err != nil {
		return nil, err
	}
	if err := s.store.DeleteOrganization(ctx, id, expect, outbox.NewEvent(ctx, id, ActionDelete, req.GetName())); err != nil {
		return nil, err
	}
	s.engine.Invalidate()
	// A write that raced the deletion (authorized just before it) is caught
	// here, or at the latest before the id is created again.
	// The deletion is done; a failure here is cured by the purge before a
	// create of this id.
	_ = s.purge(ctx, id)
	return &emptypb.Empty{}, nil
}

// expectedRevision turns a client's etag into the revision the store must
// still hold: 0 (no check) without an etag, ErrEtagMismatch if the etag is
// not the current one. The store re-checks atomically.
func (s *Service) expectedRevision(ctx context.Context, id, name, etag string) (int64, error) {
	if etag == "" {
		return 0, nil
	}
	cur, err := s.store.GetOrganization(ctx, id)
	if err != nil {
		return 0, err
	}
	if !aip.ETagMatches(etag, orgETag(cur)) {
		return 0, fmt.Errorf("organization %q: %w", name, errs.ErrEtagMismatch)
	}
	return cur.Revision, nil
}

// OpenStore opens the orgs database at url (a SQLite path or postgres://),
// which MigrateStore has migrated.
func OpenStore(ctx context.Context, url string) (store.Store, error) {
	return store.Open(ctx, url)
}

// MigrateStore applies the pending migrations to the orgs database at url
// (tests prepare template databases with it).
func MigrateStore(ctx context.Context, url string) error { return store.Migrate(ctx, url) }

// SchemaStatus tells whether the orgs database at url is behind its
// migrations.
func SchemaStatus(ctx context.Context, url string) (db.Status, error) {
	return store.SchemaStatus(ctx, url)
}

// VerifyToken implements OrgsService.
func (s *Service) VerifyToken(ctx context.Context, req *orgsv1.VerifyTokenRequest) (*orgsv1.VerifyTokenResponse, error) {
	p, err := s.authn.Authenticate(ctx, config.NewSecret(req.GetToken()))
	if err != nil {
		return nil, err
	}
	if p.Kind == auth.KindService {
		// Service identities are verified where they call, never vouched for.
		return nil, fmt.Errorf("not a user's or service account's credential: %w", errs.ErrUnauthenticated)
	}
	return &orgsv1.VerifyTokenResponse{Principal: p.Name, Kind: string(p.Kind), DisplayName: p.DisplayName,
		Groups: p.Groups, Organization: p.Org}, nil
}

// VerifyWith sets what VerifyToken accepts: every credential of users and
// service accounts the process accepts (API tokens, and JWTs of the
// installation's and organizations' identity providers), so a target
// without the orgs service accepts them all too. The default is API tokens.
func (s *Service) VerifyWith(a auth.Authenticator) { s.authn = a }
