package access

import "strings"

// Binding grants Role to Principal on Resource and everything below it.
type Binding struct {
	Name      string // `{resource}/bindings/{id}`
	Resource  string // "" is the installation
	Role      string
	Principal string
}

// Ancestors lists resource and every resource above it, most specific
// first, ending with "" (the installation). A path through a registry to a
// server (`orgs/a/registries/r/servers/s/...`) also holds the server's own
// path, so a server reached through a registry inherits both the
// registry's grants and its own.
func Ancestors(resource string) []string {
	var out []string
	add := func(r string) {
		for _, x := range out {
			if x == r {
				return
			}
		}
		out = append(out, r)
	}
	paths := []string{resource}
	if i := strings.Index(resource, "/registries/"); i >= 0 {
		rest := resource[i+len("/registries/"):]
		if _, after, ok := strings.Cut(rest, "/servers/"); ok {
			paths = append(paths, resource[:i]+"/servers/"+after)
		}
		// An entry is its server as pinned in the registry.
		if _, after, ok := strings.Cut(rest, "/entries/"); ok && !strings.Contains(after, "/") {
			paths = append(paths, resource[:i]+"/servers/"+after)
		}
	}
	for _, p := range paths {
		parts := strings.Split(p, "/")
		// Only collection/id pair boundaries are resources.
		for n := len(parts) - len(parts)%2; n >= 2; n -= 2 {
			add(strings.Join(parts[:n], "/"))
		}
	}
	// The registry itself when reached through it.
	if i := strings.Index(resource, "/registries/"); i >= 0 {
		parts := strings.Split(resource[i+1:], "/")
		if len(parts) >= 2 {
			add(resource[:i] + "/" + parts[0] + "/" + parts[1])
		}
	}
	add("")
	return out
}

// RoleLookup finds a role by name (built-in or custom).
type RoleLookup func(name string) (Role, bool)

// Decision is the answer of Decide.
type Decision struct {
	Allowed bool
	// Binding is the binding that allowed it (empty for self permissions).
	Binding string
}

// Decide answers whether one of principals (a principal and the teams it
// belongs to) holds permission on resource, given bindings (any superset
// of those on resource's ancestors). Deny by default; permissions only add.
func Decide(principals []string, permission, resource string, bindings []Binding, roles RoleLookup) Decision {
	if SelfPermissions[permission] {
		return Decision{Allowed: true}
	}
	anc := Ancestors(resource)
	for _, b := range bindings {
		if !contains(principals, b.Principal) || !contains(anc, b.Resource) {
			continue
		}
		if r, ok := roles(b.Role); ok && r.Permissions[permission] {
			return Decision{Allowed: true, Binding: b.Name}
		}
	}
	return Decision{}
}

// Permitted returns the permissions principals hold on resource.
func Permitted(principals []string, resource string, bindings []Binding, roles RoleLookup) map[string]bool {
	anc := Ancestors(resource)
	out := map[string]bool{}
	for _, b := range bindings {
		if !contains(principals, b.Principal) || !contains(anc, b.Resource) {
			continue
		}
		if r, ok := roles(b.Role); ok {
			for p := range r.Permissions {
				out[p] = true
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
