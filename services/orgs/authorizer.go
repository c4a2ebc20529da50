package orgs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/services/orgs/internal/access"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// DecisionTTL bounds how stale a cached access decision may be: a binding
// or team change made through another replica takes effect within it.
// Changes made through this process drop the cache at once.
const DecisionTTL = 2 * time.Second

// Engine answers access decisions from the bindings in the orgs store. It
// is the process's auth.Authorizer when the orgs service runs in it.
type Engine struct {
	store store.Store
	ttl   time.Duration

	generation atomic.Uint64 // bumped by every local access change
	mu         sync.Mutex
	cache      map[decisionKey]cachedDecision
	// orgs caches which organizations exist (positive answers only), on
	// the same terms as decisions.
	orgs map[string]cachedDecision
}

type decisionKey struct{ principal, groups, permission, resource string }

type cachedDecision struct {
	d          access.Decision
	member     bool
	generation uint64
	expires    time.Time
}

// NewEngine returns an engine over st.
func NewEngine(st store.Store) *Engine {
	return &Engine{store: st, ttl: DecisionTTL, cache: map[decisionKey]cachedDecision{}, orgs: map[string]cachedDecision{}}
}

// Invalidate drops every cached decision; called after each access change.
func (e *Engine) Invalidate() {
	e.generation.Add(1)
	e.mu.Lock()
	e.cache = map[decisionKey]cachedDecision{}
	e.orgs = map[string]cachedDecision{}
	e.mu.Unlock()
}

// roles looks up a role by name: built-in, or custom from the store.
func (e *Engine) roles(ctx context.Context) access.RoleLookup {
	return func(name string) (access.Role, bool) {
		if r, ok := access.BuiltinRole(name); ok {
			return r, true
		}
		cr, err := e.store.GetRole(ctx, name)
		if err != nil {
			return access.Role{}, false
		}
		perms := map[string]bool{}
		for _, p := range cr.Permissions {
			perms[p] = true
		}
		return access.Role{Name: cr.Name, Permissions: perms}, true
	}
}

// principals is p, the teams it belongs to, and the teams its credential
// names (groups).
func (e *Engine) principals(ctx context.Context, p string, groups []string) ([]string, error) {
	teams, err := e.store.TeamsOf(ctx, p)
	if err != nil {
		return nil, err
	}
	return append(append([]string{p}, teams...), groups...), nil
}

// Decide answers whether principal holds permission on resource, and
// whether it is a member of the resource's organization at all (any
// binding there or on the installation).
func (e *Engine) Decide(ctx context.Context, principal string, groups []string, permission, resource string) (access.Decision, bool, error) {
	key := decisionKey{principal, strings.Join(groups, ","), permission, resource}
	gen := e.generation.Load()
	now := time.Now()
	e.mu.Lock()
	c, ok := e.cache[key]
	e.mu.Unlock()
	if ok && c.generation == gen && now.Before(c.expires) {
		return c.d, c.member, nil
	}
	ps, err := e.principals(ctx, principal, groups)
	if err != nil {
		return access.Decision{}, false, err
	}
	bindings, err := e.store.BindingsFor(ctx, ps, access.Ancestors(resource))
	if err != nil {
		return access.Decision{}, false, err
	}
	ab := make([]access.Binding, len(bindings))
	for i, b := range bindings {
		ab[i] = access.Binding{Name: b.Name, Resource: b.Resource, Role: b.Role, Principal: b.Principal}
	}
	d := access.Decide(ps, permission, resource, ab, e.roles(ctx))
	member := true
	if org := names.OrgID(resource); org != "" && !d.Allowed {
		member = len(bindings) > 0
		if !member {
			if member, err = e.store.HasBindingIn(ctx, ps, org); err != nil {
				return access.Decision{}, false, err
			}
		}
	}
	e.mu.Lock()
	if len(e.cache) > 100_000 {
		e.cache = map[decisionKey]cachedDecision{}
	}
	e.cache[key] = cachedDecision{d: d, member: member, generation: gen, expires: now.Add(e.ttl)}
	e.mu.Unlock()
	return d, member, nil
}

// AuthorizeMany implements auth.ManyAuthorizer: the decisions not cached
// yet are made together, from the caller's teams and its bindings on every
// resource's ancestors read once, and cached; then each resource is
// decided as Authorize decides it.
func (e *Engine) AuthorizeMany(ctx context.Context, p auth.Principal, permission string, resources []string) ([]error, error) {
	if p.Kind != auth.KindService && !auth.ServiceOnlyPermissions[permission] && len(resources) > 4 {
		if err := e.prefetch(ctx, p, permission, resources); err != nil {
			return nil, err
		}
	}
	out := make([]error, len(resources))
	for i, r := range resources {
		out[i] = e.Authorize(ctx, p, permission, r)
		if out[i] != nil && !errs.Known(out[i]) {
			return nil, out[i]
		}
	}
	return out, nil
}

// prefetch makes and caches the decisions of permission on resources that
// are not cached, as Decide would make each.
func (e *Engine) prefetch(ctx context.Context, p auth.Principal, permission string, resources []string) error {
	groups := strings.Join(p.Groups, ",")
	gen, now := e.generation.Load(), time.Now()
	var missing []string
	e.mu.Lock()
	for _, r := range resources {
		c, ok := e.cache[decisionKey{p.Name, groups, permission, r}]
		if !ok || c.generation != gen || !now.Before(c.expires) {
			missing = append(missing, r)
		}
	}
	e.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	ps, err := e.principals(ctx, p.Name, p.Groups)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var union []string
	for _, r := range missing {
		for _, a := range access.Ancestors(r) {
			if !seen[a] {
				seen[a] = true
				union = append(union, a)
			}
		}
	}
	bindings, err := e.store.BindingsFor(ctx, ps, union)
	if err != nil {
		return err
	}
	ab := make([]access.Binding, len(bindings))
	for i, b := range bindings {
		ab[i] = access.Binding{Name: b.Name, Resource: b.Resource, Role: b.Role, Principal: b.Principal}
	}
	roles := e.roles(ctx)
	memberOf := map[string]bool{}
	decided := make(map[decisionKey]cachedDecision, len(missing))
	for _, r := range missing {
		d := access.Decide(ps, permission, r, ab, roles)
		member := true
		if org := names.OrgID(r); org != "" && !d.Allowed {
			anc := access.Ancestors(r)
			member = false
			for _, b := range ab {
				if slices.Contains(anc, b.Resource) {
					member = true
					break
				}
			}
			if !member {
				m, ok := memberOf[org]
				if !ok {
					if m, err = e.store.HasBindingIn(ctx, ps, org); err != nil {
						return err
					}
					memberOf[org] = m
				}
				member = m
			}
		}
		decided[decisionKey{p.Name, groups, permission, r}] = cachedDecision{d: d, member: member, generation: gen, expires: now.Add(e.ttl)}
	}
	e.mu.Lock()
	if len(e.cache)+len(decided) > 100_000 {
		e.cache = map[decisionKey]cachedDecision{}
	}
	for k, v := range decided {
		e.cache[k] = v
	}
	e.mu.Unlock()
	return nil
}

// orgExists refuses what an allowance would reach under an organization
// that does not exist: no allowance (an installation administrator's
// included) reaches into one, so what a deleted organization held stays
// unreachable and nothing is created under it. Members' grants went with
// it. The organization's own orgs.* calls go through (a get answers
// NOT_FOUND by itself), and so does its audit log, which stays readable,
// exportable and verifiable by whoever may (audit.*).
func (e *Engine) orgExists(ctx context.Context, permission, resource string) error {
	org := names.OrgID(resource)
	if org == "" || org == "-" || (resource == "orgs/"+org && strings.HasPrefix(permission, "orgs.")) || strings.HasPrefix(permission, "audit.") {
		return nil
	}
	gen, now := e.generation.Load(), time.Now()
	e.mu.Lock()
	c, ok := e.orgs[org]
	e.mu.Unlock()
	if ok && c.generation == gen && now.Before(c.expires) {
		return nil
	}
	if _, err := e.store.GetOrganization(ctx, org); err != nil {
		return fmt.Errorf("%q: %w", resource, err)
	}
	e.mu.Lock()
	if len(e.orgs) > 100_000 {
		e.orgs = map[string]cachedDecision{}
	}
	e.orgs[org] = cachedDecision{generation: gen, expires: now.Add(e.ttl)}
	e.mu.Unlock()
	return nil
}

// SelfPermission reports whether every authenticated principal holds
// permission on its own identity and for discovery, whatever its
// credential's organization limit.
func SelfPermission(permission string) bool { return access.SelfPermissions[permission] }

// Authorize implements auth.Authorizer. Service identities hold every
// permission. A caller who is not a member of the resource's organization
// gets NOT_FOUND, so another tenant's resources do not even show they exist.
func (e *Engine) Authorize(ctx context.Context, p auth.Principal, permission, resource string) error {
	if p.Kind == auth.KindService {
		return nil
	}
	if auth.ServiceOnlyPermissions[permission] {
		return fmt.Errorf("%s is for service identities only: %w", permission, errs.ErrPermissionDenied)
	}
	// A user's own tokens (personal access tokens). Not for service
	// accounts (a leaked token must not mint more) nor for credentials
	// limited to one organization (a token would outlive that limit).
	if isSelf(p.Name, resource) && strings.HasPrefix(permission, "tokens.") {
		if p.Kind == auth.KindUser && p.Org == "" {
			return nil
		}
		return fmt.Errorf("%s cannot manage its own tokens with this credential: %w", p.Name, errs.ErrPermissionDenied)
	}
	// A credential from an organization's own identity provider reaches
	// that organization only.
	if p.OutsideOrg(resource) && !access.SelfPermissions[permission] {
		if names.OrgID(resource) != "" {
			return fmt.Errorf("%q: %w", resource, errs.ErrNotFound)
		}
		return fmt.Errorf("this credential is limited to orgs/%s: %w", p.Org, errs.ErrPermissionDenied)
	}
	d, member, err := e.Decide(ctx, p.Name, p.Groups, permission, resource)
	if err != nil {
		return err
	}
	// A user scope, orgs/{org}/users/{id}, is its user's alone: a member
	// manages the secrets and variables there without any role, and no
	// role reaches into another's (the gateway and deploy resolve them as
	// services).
	if owner := userScopeOwner(resource); owner != "" {
		switch {
		case !member:
			return fmt.Errorf("%q: %w", resource, errs.ErrNotFound)
		case p.Kind == auth.KindUser && p.Name == owner && (permission == "secrets.list" || permission == "secrets.write"):
			return e.orgExists(ctx, permission, resource)
		default:
			return fmt.Errorf("%q is %s's own: %w", resource, owner, errs.ErrPermissionDenied)
		}
	}
	if d.Allowed {
		return e.orgExists(ctx, permission, resource)
	}
	if !member {
		return fmt.Errorf("%q: %w", resource, errs.ErrNotFound)
	}
	return fmt.Errorf("%s lacks %s on %q: %w", p.Name, permission, resource, errs.ErrPermissionDenied)
}

// userScopeOwner returns users/{id} when resource is a user scope,
// orgs/{org}/users/{id}, or below it; "" otherwise.
func userScopeOwner(resource string) string {
	rest, ok := strings.CutPrefix(resource, "orgs/")
	if !ok {
		return ""
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	id, ok := strings.CutPrefix(rest, "users/")
	if !ok || id == "" {
		return ""
	}
	id, _, _ = strings.Cut(id, "/")
	return "users/" + id
}

// isSelf reports whether resource is the principal or below it.
func isSelf(principal, resource string) bool {
	return resource == principal || len(resource) > len(principal) && resource[:len(principal)+1] == principal+"/" ||
		resource == "users/me" || len(resource) > 9 && resource[:9] == "users/me/"
}
