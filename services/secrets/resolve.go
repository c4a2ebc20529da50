package secrets

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

// Resolution caching. A resolution is kept with the organization's
// revision of values it reflects. A commit of this process marks every
// resolution for a check; otherwise one is checked at most every
// resolveRecheck (a change made through another replica). A check reads
// the revision, and the values are read again only when it moved. So a
// value set or rotated is in use on the next resolve here, and within
// resolveRecheck on other replicas.
//
// When the backend cannot be reached (Vault down), a resolution read less
// than StaleBound ago is served; after that, Resolve fails closed with
// UNAVAILABLE. Registry parents are read again at least every
// resolveRefresh.
const (
	resolveRecheck = 500 * time.Millisecond
	resolveRefresh = 30 * time.Second
	// StaleBound is how long a resolution is served while the backend
	// cannot be reached.
	StaleBound     = 60 * time.Second
	maxResolutions = 10_000
)

type resolution struct {
	scopes   []string
	values   []*secretsv1.ResolvedValue
	fps      map[string]string // NAME -> fingerprint of the value resolved
	revision int64
	commits  uint64 // the process's commit count when last checked
	checked  time.Time
	fetched  time.Time
}

type resolutions struct {
	commits atomic.Uint64
	mu      sync.Mutex
	byKey   map[[3]string]*resolution
}

func newResolutions() *resolutions { return &resolutions{byKey: map[[3]string]*resolution{}} }

func (c *resolutions) changed() { c.commits.Add(1) }

// scopes lists the scopes searched for a server in a registry for a user,
// most specific first: the user's, the server's, the registry's and its
// parents' (nearest first), the organization's.
func (s *Service) scopes(ctx context.Context, registry, srv, user string) ([]string, error) {
	org := orgOf(registry)
	var out []string
	if user != "" {
		out = append(out, "orgs/"+org+"/users/"+strings.TrimPrefix(user, "users/"))
	}
	out = append(out, srv, registry)
	if s.registries != nil {
		parents, err := s.registries.Parents(ctx, registry)
		if err != nil {
			return nil, err
		}
		out = append(out, parents...)
	}
	return append(out, "orgs/"+org), nil
}

// merge reads the values of scopes, most specific first: the first scope
// that sets a NAME wins; at one scope a secret wins over a variable of the
// same NAME.
func (s *Service) merge(ctx context.Context, scopes []string) ([]*secretsv1.ResolvedValue, map[string][]backend.Meta, error) {
	values, all, _, err := s.mergeWithFingerprints(ctx, scopes)
	return values, all, err
}

// mergeWithFingerprints is merge, with each resolved value's fingerprint.
func (s *Service) mergeWithFingerprints(ctx context.Context, scopes []string) ([]*secretsv1.ResolvedValue, map[string][]backend.Meta, map[string]string, error) {
	fps := map[string]string{}
	seen := map[string]*secretsv1.ResolvedValue{}
	all := map[string][]backend.Meta{} // every setting of a NAME, most specific first
	tx := s.store.Read()
	for _, scope := range scopes {
		for _, kind := range []backend.Kind{backend.Secret, backend.Variable} {
			metas, err := s.backend.List(ctx, tx, scope, kind)
			if err != nil {
				return nil, nil, nil, err
			}
			for _, m := range metas {
				all[m.Key.Name] = append(all[m.Key.Name], m)
				if _, ok := seen[m.Key.Name]; ok {
					continue
				}
				v, cur, err := s.backend.Get(ctx, tx, m.Key, 0)
				if errors.Is(err, errs.ErrNotFound) {
					continue // deleted meanwhile
				}
				if err != nil {
					return nil, nil, nil, err
				}
				fps[m.Key.Name] = cur.Fingerprint
				seen[m.Key.Name] = &secretsv1.ResolvedValue{Name: m.Key.Name, Value: string(v), Secret: kind == backend.Secret,
					Scope: scope, Version: cur.Version}
			}
		}
	}
	out := make([]*secretsv1.ResolvedValue, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, all, fps, nil
}

// resolve returns the resolution for (registry, server, user), from the
// cache when it still holds.
func (s *Service) resolve(ctx context.Context, registry, srv, user string) (*resolution, error) {
	key := [3]string{registry, srv, user}
	c := s.resolved
	now := time.Now()
	c.mu.Lock()
	r := c.byKey[key]
	c.mu.Unlock()
	commits := c.commits.Load()
	if r != nil && r.commits == commits && now.Sub(r.checked) < resolveRecheck && now.Sub(r.fetched) < resolveRefresh {
		return r, nil
	}
	org := orgOf(registry)
	rev, err := s.store.Read().Revision(ctx, org)
	if err != nil {
		return nil, err
	}
	if r != nil && r.revision == rev && now.Sub(r.fetched) < resolveRefresh {
		fresh := *r
		fresh.commits, fresh.checked = commits, now
		c.put(key, &fresh)
		return &fresh, nil
	}
	scopes, err := s.scopes(ctx, registry, srv, user)
	if err == nil {
		var values []*secretsv1.ResolvedValue
		var fps map[string]string
		if values, _, fps, err = s.mergeWithFingerprints(ctx, scopes); err == nil {
			fresh := &resolution{scopes: scopes, values: values, fps: fps, revision: rev, commits: commits, checked: now, fetched: now}
			c.put(key, fresh)
			return fresh, nil
		}
	}
	if errors.Is(err, errs.ErrUnavailable) && r != nil && now.Sub(r.fetched) < StaleBound {
		return r, nil // the backend is down: what was read less than StaleBound ago
	}
	return nil, err
}

func (c *resolutions) put(key [3]string, r *resolution) {
	c.mu.Lock()
	if len(c.byKey) >= maxResolutions {
		c.byKey = map[[3]string]*resolution{}
	}
	c.byKey[key] = r
	c.mu.Unlock()
}

// checkResolveScope refuses a server of another organization than the
// registry's.
func checkResolveScope(registry, srv string) error {
	if orgOf(registry) != orgOf(srv) {
		return errs.Field("server", "%q is not in the registry's organization", srv)
	}
	return nil
}

// Resolve implements SecretsService.
func (s *Service) Resolve(ctx context.Context, req *secretsv1.ResolveRequest) (*secretsv1.ResolveResponse, error) {
	if err := checkResolveScope(req.GetRegistry(), req.GetServer()); err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, req.GetRegistry(), req.GetServer(), req.GetUser())
	if err != nil {
		return nil, err
	}
	// Every resolve is audited: which names, from where, at which version,
	// with their fingerprints (NAME@scope#version:fingerprint); never a
	// value.
	ev := outbox.NewEvent(ctx, orgOf(req.GetRegistry()), server.ActionFor(secretsv1.SecretsService_Resolve_FullMethodName), req.GetServer())
	ev.Metadata = map[string]string{"registry": req.GetRegistry(), "user": req.GetUser(), "revision": strconv.FormatInt(r.revision, 10)}
	names := make([]string, len(r.values))
	for i, v := range r.values {
		names[i] = v.GetName() + "@" + v.GetScope() + "#" + strconv.FormatInt(v.GetVersion(), 10) + ":" + r.fps[v.GetName()]
	}
	ev.Metadata["values"] = strings.Join(names, " ")
	if err := s.store.Tx(ctx, func(tx *store.Tx) error { tx.Audit(ev); return nil }); err != nil {
		return nil, err
	}
	return &secretsv1.ResolveResponse{Values: r.values, Revision: r.revision}, nil
}

// Mask is what ExplainResolution shows of a secret's value.
const Mask = "********"

// Input is one input a server version declares.
type Input struct {
	Name       string
	Kind       string // environment_variable, header, secret_reference
	IsRequired bool
	IsSecret   bool
}

// Declared tells the inputs the version a registry pins for a server
// declares.
type Declared interface {
	Inputs(ctx context.Context, registry, server string) (version string, inputs []Input, err error)
}

// UseDeclared sets where declared inputs are read; without it,
// ExplainResolution lists none.
func (s *Service) UseDeclared(d Declared) *Service {
	s.declared = d
	return s
}

// ExplainResolution implements SecretsService.
func (s *Service) ExplainResolution(ctx context.Context, req *secretsv1.ExplainResolutionRequest) (*secretsv1.ExplainResolutionResponse, error) {
	registry := req.GetRegistry()
	srvName := "orgs/" + orgOf(registry) + "/servers/" + req.GetServerId()
	// A person explains what it would get itself: another user's scope
	// is that user's alone.
	caller, _ := auth.FromContext(ctx)
	user := req.GetUser()
	if user == "" && caller.Kind == auth.KindUser {
		user = caller.Name
	}
	if user != "" && user != caller.Name && caller.Kind != auth.KindService {
		return nil, errs.Field("user", "is not you: a user's own scope is theirs alone")
	}
	searched, err := s.scopes(ctx, registry, srvName, user)
	if err != nil {
		return nil, err
	}
	// Only the scopes the caller may list are searched: explaining must
	// not show what listing would refuse.
	answers, err := auth.AuthorizeMany(ctx, s.authz, caller, "secrets.list", searched)
	if err != nil {
		return nil, err
	}
	var scopes []string
	for i, scope := range searched {
		if answers[i] == nil {
			scopes = append(scopes, scope)
		}
	}
	values, all, err := s.merge(ctx, scopes)
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ExplainResolutionResponse{Scopes: scopes}
	set := map[string]bool{}
	for _, v := range values {
		set[v.GetName()] = true
		e := &secretsv1.ExplainedValue{Name: v.GetName(), Secret: v.GetSecret(), Scope: v.GetScope(), Version: v.GetVersion(), MaskedValue: Mask}
		if !v.GetSecret() {
			e.MaskedValue = v.GetValue()
		}
		for _, m := range all[v.GetName()] {
			if m.Key.Scope == v.GetScope() && (m.Key.Kind == backend.Secret) == v.GetSecret() {
				e.Fingerprint = m.Fingerprint
				continue
			}
			e.Overrides = append(e.Overrides, m.Key.String())
		}
		resp.Values = append(resp.Values, e)
	}
	if s.declared != nil {
		version, inputs, err := s.declared.Inputs(ctx, registry, srvName)
		if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, fmt.Errorf("the inputs of %s in %s: %w", srvName, registry, err)
		}
		resp.PinnedVersion = version
		for _, in := range inputs {
			d := &secretsv1.DeclaredInput{Name: in.Name, Kind: in.Kind, IsRequired: in.IsRequired, IsSecret: in.IsSecret, Set: set[in.Name]}
			resp.Inputs = append(resp.Inputs, d)
			if in.IsRequired && !d.Set {
				resp.Missing = append(resp.Missing, in.Name)
			}
		}
	}
	ev := outbox.NewEvent(ctx, orgOf(registry), server.ActionFor(secretsv1.SecretsService_ExplainResolution_FullMethodName), srvName)
	ev.Metadata = map[string]string{"registry": registry, "user": user, "missing": strings.Join(resp.Missing, " ")}
	if err := s.store.Tx(ctx, func(tx *store.Tx) error { tx.Audit(ev); return nil }); err != nil {
		return nil, err
	}
	return resp, nil
}
