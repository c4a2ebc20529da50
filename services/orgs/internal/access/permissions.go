// Package access is the decision logic of Pylee's role-based access
// control: the permission catalog, the built-in roles, the resource
// hierarchy, and Decide, which answers whether a principal holds a
// permission on a resource given the bindings that could apply. It knows
// nothing of storage or gRPC.
package access

import "sort"

// Permission is `<collection>.<verb>`.
type Permission struct {
	Name        string
	Description string
}

// Permissions is the catalog: every permission an RPC can require or a role
// can hold. docs/permissions.md is generated from it.
var Permissions = []Permission{
	{"orgs.create", "create organizations (installation level)"},
	{"orgs.get", "see an organization"},
	{"orgs.update", "change an organization's settings"},
	{"orgs.delete", "delete an organization"},
	{"members.list", "list an organization's members"},
	{"invitations.create", "invite people by email"},
	{"invitations.list", "list invitations"},
	{"invitations.revoke", "revoke invitations"},
	{"teams.create", "create teams"},
	{"teams.get", "see teams and their members"},
	{"teams.update", "add and remove team members"},
	{"teams.delete", "delete teams"},
	{"roles.create", "create custom roles"},
	{"roles.get", "see roles"},
	{"roles.delete", "delete custom roles"},
	{"bindings.create", "grant roles (only roles whose permissions the granter holds)"},
	{"bindings.list", "see who holds which role"},
	{"bindings.delete", "revoke roles"},
	{"serviceAccounts.create", "create service accounts"},
	{"serviceAccounts.get", "see service accounts"},
	{"serviceAccounts.delete", "delete service accounts"},
	{"tokens.create", "create API tokens for service accounts"},
	{"tokens.list", "list API tokens of service accounts (never their secrets)"},
	{"tokens.revoke", "revoke API tokens of service accounts"},
	{"registries.create", "create registries"},
	{"registries.get", "see registries"},
	{"registries.update", "change registry settings"},
	{"registries.delete", "delete registries"},
	{"servers.create", "create servers"},
	{"servers.get", "see servers"},
	{"servers.update", "change servers"},
	{"servers.delete", "delete servers"},
	{"versions.get", "see server versions"},
	{"versions.publish", "publish server versions"},
	{"versions.deprecate", "deprecate or yank server versions"},
	{"versions.record_tools", "record the tools a version's server first listed (gateway identity)"},
	{"entries.get", "see registry entries (pins)"},
	{"entries.pin", "pin and unpin servers in registries"},
	{"approvals.get", "see approval requests"},
	{"approvals.approve", "approve or reject approval requests"},
	{"secrets.list", "see secret and variable names (never values)"},
	{"secrets.write", "set and delete secrets and variables"},
	{"secrets.resolve", "resolve secret values (deploy and gateway identities)"},
	{"deployments.get", "see deployments"},
	{"deployments.rollout", "roll out, roll back and restart deployments, read their logs"},
	{"deployments.resolve", "resolve where a deployment's upstream is (gateway identity)"},
	{"deployments.report", "report call outcomes for canary analysis (gateway identity)"},
	{"tools.list", "see tools"},
	{"tools.invoke", "call tools through the MCP gateway"},
	{"audit.read", "read the audit log"},
	{"audit.export", "export the audit log"},
	{"budgets.manage", "set usage budgets"},
}

// SelfPermissions are held by every authenticated principal on its own
// identity (GetCurrentUser, its own tokens), and on the installation for
// discovery (listing the organizations it may see, the audit public key).
var SelfPermissions = map[string]bool{
	"users.get":     true,
	"orgs.list":     true,
	"audit.key.get": true,
	"access.check":  true,
}

// Role is a named set of permissions.
type Role struct {
	// Name is `roles/{id}` for built-in roles, `orgs/{org}/roles/{id}` for
	// custom ones.
	Name        string
	Title       string
	Description string
	Permissions map[string]bool
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// serviceOnly are the permissions of the catalog only the services'
// identities hold: no role grants them.
var serviceOnly = []string{"secrets.resolve", "deployments.resolve", "deployments.report", "versions.record_tools"}

// allExcept is every permission but except and the service-only ones.
func allExcept(except ...string) map[string]bool {
	ex := set(append(except, serviceOnly...)...)
	m := map[string]bool{}
	for _, p := range Permissions {
		if !ex[p.Name] {
			m[p.Name] = true
		}
	}
	return m
}

var readOnly = []string{"orgs.get", "teams.get", "roles.get", "registries.get", "servers.get", "versions.get",
	"entries.get", "approvals.get", "deployments.get", "tools.list"}

// Built-in roles.
var (
	RoleOwner = Role{Name: "roles/owner", Title: "Owner",
		Description: "Everything, including deleting the organization and granting owner.",
		Permissions: allExcept("orgs.create")}
	RoleAdmin = Role{Name: "roles/admin", Title: "Admin",
		Description: "Everything but deleting the organization; cannot grant owner.",
		Permissions: allExcept("orgs.create", "orgs.delete")}
	RoleDeveloper = Role{Name: "roles/developer", Title: "Developer",
		Description: "Builds and ships servers: publishes versions, pins in registries that allow it, deploys, sets secrets.",
		Permissions: set(append([]string{"members.list", "servers.create", "servers.update", "versions.publish",
			"versions.deprecate", "entries.pin", "secrets.list", "secrets.write", "deployments.rollout",
			"tools.invoke", "audit.read", "bindings.list", "serviceAccounts.get"}, readOnly...)...)}
	RoleUser = Role{Name: "roles/user", Title: "User",
		Description: "Uses the MCP servers of the organization: sees them and calls their tools.",
		Permissions: set("orgs.get", "registries.get", "servers.get", "versions.get", "entries.get", "tools.list", "tools.invoke")}
	RoleAuditor = Role{Name: "roles/auditor", Title: "Auditor",
		Description: "Reads everything, including the audit log; changes nothing.",
		Permissions: set(append([]string{"members.list", "invitations.list", "bindings.list", "serviceAccounts.get",
			"tokens.list", "secrets.list", "audit.read", "audit.export"}, readOnly...)...)}
	// RoleInstallationOwner is held on the installation by its bootstrap
	// admin: every permission everywhere, including creating organizations.
	RoleInstallationOwner = Role{Name: "roles/installationOwner", Title: "Installation owner",
		Description: "The bootstrap admin: everything on every organization, and creating organizations.",
		Permissions: allExcept()}
)

// BuiltinRoles are the roles every organization has.
var BuiltinRoles = []Role{RoleOwner, RoleAdmin, RoleDeveloper, RoleUser, RoleAuditor}

// BuiltinRole returns the built-in role name (including the installation
// owner), or false.
func BuiltinRole(name string) (Role, bool) {
	for _, r := range append(BuiltinRoles, RoleInstallationOwner) {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Known reports whether name is a permission of the catalog.
func Known(name string) bool {
	for _, p := range Permissions {
		if p.Name == name {
			return true
		}
	}
	return SelfPermissions[name]
}

// Sorted returns the permissions of r, sorted.
func (r Role) Sorted() []string {
	out := make([]string, 0, len(r.Permissions))
	for p := range r.Permissions {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
