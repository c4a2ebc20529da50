package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pyleeai/pylee/kit/aip"
)

// The pattern of every resource name. Validators match names against them
// with Parse (ids checked by aip.ValidateSegmentID) or ParseLoose.
var (
	OrgPattern            = aip.MustPattern("orgs/{org}")
	RegistryPattern       = aip.MustPattern("orgs/{org}/registries/{registry}")
	ServerPattern         = aip.MustPattern("orgs/{org}/servers/{server}")
	VersionPattern        = aip.MustPattern("orgs/{org}/servers/{server}/versions/{version}")
	ToolPattern           = aip.MustPattern("orgs/{org}/servers/{server}/tools/{tool}")
	EntryPattern          = aip.MustPattern("orgs/{org}/registries/{registry}/entries/{server}")
	ApprovalPattern       = aip.MustPattern("orgs/{org}/registries/{registry}/approvals/{approval}")
	TeamPattern           = aip.MustPattern("orgs/{org}/teams/{team}")
	RolePattern           = aip.MustPattern("orgs/{org}/roles/{role}")
	ServiceAccountPattern = aip.MustPattern("orgs/{org}/serviceAccounts/{service_account}")
	MemberPattern         = aip.MustPattern("orgs/{org}/members/{user}")
	InvitationPattern     = aip.MustPattern("orgs/{org}/invitations/{invitation}")
	EventPattern          = aip.MustPattern("orgs/{org}/events/{event}")
	UserPattern           = aip.MustPattern("users/{user}")
)

// The Parse functions check a name's form: its collections, and ids that
// are non-empty, free of slashes and valid UTF-8. They do not apply the id
// rules of client-chosen ids (aip.ValidateSegmentID): names are validated
// against the patterns at the edge, and some ids (users, tools, versions)
// are not slugs.

const orgPrefix = "orgs/"

// OrgID returns the id of the organization an organization-scoped name
// belongs to ("acme" for orgs/acme/servers/gh), or "" if none. It does not
// allocate: access decisions call it on every request.
func OrgID(name string) string {
	rest, ok := strings.CutPrefix(name, orgPrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// OrgOf returns the name of the organization an organization-scoped name
// belongs to ("orgs/acme" for orgs/acme/servers/gh), or "" if none.
func OrgOf(name string) string {
	id := OrgID(name)
	if id == "" {
		return ""
	}
	return name[:len(orgPrefix)+len(id)]
}

// Org is an organization: orgs/{org}.
type Org struct{ Org string }

// String returns the name.
func (o Org) String() string { return OrgPattern.Format(o.Org) }

// ParseOrg parses orgs/{org}.
func ParseOrg(name string) (Org, error) {
	v, err := parse(OrgPattern, name)
	if err != nil {
		return Org{}, err
	}
	return Org{Org: v[0]}, nil
}

// Registry is a registry: orgs/{org}/registries/{registry}.
type Registry struct{ Org, Registry string }

// String returns the name.
func (r Registry) String() string { return RegistryPattern.Format(r.Org, r.Registry) }

// ParseRegistry parses orgs/{org}/registries/{registry}.
func ParseRegistry(name string) (Registry, error) {
	v, err := parse(RegistryPattern, name)
	if err != nil {
		return Registry{}, err
	}
	return Registry{Org: v[0], Registry: v[1]}, nil
}

// Server is a server: orgs/{org}/servers/{server}.
type Server struct{ Org, Server string }

// String returns the name.
func (s Server) String() string { return ServerPattern.Format(s.Org, s.Server) }

// ParseServer parses orgs/{org}/servers/{server}.
func ParseServer(name string) (Server, error) {
	v, err := parse(ServerPattern, name)
	if err != nil {
		return Server{}, err
	}
	return Server{Org: v[0], Server: v[1]}, nil
}

// Tool is a tool of a server: orgs/{org}/servers/{server}/tools/{tool}.
type Tool struct{ Org, Server, Tool string }

// String returns the name.
func (t Tool) String() string { return ToolPattern.Format(t.Org, t.Server, t.Tool) }

// ServerName is the server the tool belongs to.
func (t Tool) ServerName() Server { return Server{Org: t.Org, Server: t.Server} }

// ParseTool parses orgs/{org}/servers/{server}/tools/{tool}.
func ParseTool(name string) (Tool, error) {
	v, err := parse(ToolPattern, name)
	if err != nil {
		return Tool{}, err
	}
	return Tool{Org: v[0], Server: v[1], Tool: v[2]}, nil
}

// Entry is a server's entry in a registry:
// orgs/{org}/registries/{registry}/entries/{server}.
type Entry struct{ Org, Registry, Server string }

// String returns the name.
func (e Entry) String() string { return EntryPattern.Format(e.Org, e.Registry, e.Server) }

// Approval is an approval request of a registry:
// orgs/{org}/registries/{registry}/approvals/{approval}.
type Approval struct{ Org, Registry, Approval string }

// String returns the name.
func (a Approval) String() string { return ApprovalPattern.Format(a.Org, a.Registry, a.Approval) }

// Team is a team: orgs/{org}/teams/{team}.
type Team struct{ Org, Team string }

// String returns the name.
func (t Team) String() string { return TeamPattern.Format(t.Org, t.Team) }

// ParseTeam parses orgs/{org}/teams/{team}.
func ParseTeam(name string) (Team, error) {
	v, err := parse(TeamPattern, name)
	if err != nil {
		return Team{}, err
	}
	return Team{Org: v[0], Team: v[1]}, nil
}

// Role is a custom role: orgs/{org}/roles/{role}.
type Role struct{ Org, Role string }

// String returns the name.
func (r Role) String() string { return RolePattern.Format(r.Org, r.Role) }

// ServiceAccount is a service account:
// orgs/{org}/serviceAccounts/{service_account}.
type ServiceAccount struct{ Org, ServiceAccount string }

// String returns the name.
func (s ServiceAccount) String() string { return ServiceAccountPattern.Format(s.Org, s.ServiceAccount) }

// Member is a user's membership of an organization: orgs/{org}/members/{user}.
type Member struct{ Org, User string }

// String returns the name.
func (m Member) String() string { return MemberPattern.Format(m.Org, m.User) }

// UserName is the member's user.
func (m Member) UserName() User { return User{User: m.User} }

// ParseMember parses orgs/{org}/members/{user}.
func ParseMember(name string) (Member, error) {
	v, err := parse(MemberPattern, name)
	if err != nil {
		return Member{}, err
	}
	return Member{Org: v[0], User: v[1]}, nil
}

// Invitation is an invitation: orgs/{org}/invitations/{invitation}.
type Invitation struct{ Org, Invitation string }

// String returns the name.
func (i Invitation) String() string { return InvitationPattern.Format(i.Org, i.Invitation) }

// Event is an audit event: orgs/{org}/events/{event}.
type Event struct{ Org, Event string }

// String returns the name.
func (e Event) String() string { return EventPattern.Format(e.Org, e.Event) }

// User is a user: users/{user}.
type User struct{ User string }

// String returns the name.
func (u User) String() string { return UserPattern.Format(u.User) }

// ParseUser parses users/{user}.
func ParseUser(name string) (User, error) {
	v, err := parse(UserPattern, name)
	if err != nil {
		return User{}, err
	}
	return User{User: v[0]}, nil
}

// Token is an API token of a principal (a user or a service account):
// {parent}/tokens/{token}.
type Token struct{ Parent, Token string }

// String returns the name.
func (t Token) String() string { return t.Parent + tokensSep + t.Token }

const tokensSep = "/tokens/"

// ParseToken parses {parent}/tokens/{token}; the parent is not checked.
func ParseToken(name string) (Token, error) {
	parent, id, ok := cutLast(name, tokensSep)
	if !ok {
		return Token{}, errors.New("must have the form {parent}/tokens/{token}")
	}
	return Token{Parent: parent, Token: id}, nil
}

// Binding is a role binding on a resource (an organization, registry,
// server or tool): {resource}/bindings/{binding}.
type Binding struct{ Resource, Binding string }

// String returns the name.
func (b Binding) String() string { return b.Resource + bindingsSep + b.Binding }

const bindingsSep = "/bindings/"

// ParseBinding parses {resource}/bindings/{binding}; the resource is not
// checked.
func ParseBinding(name string) (Binding, error) {
	resource, id, ok := cutLast(name, bindingsSep)
	if !ok {
		return Binding{}, errors.New("must have the form {resource}/bindings/{binding}")
	}
	return Binding{Resource: resource, Binding: id}, nil
}

// cutLast splits `{parent}<sep>{id}` at its last sep; parent and id must
// be non-empty and id free of slashes.
func cutLast(name, sep string) (parent, id string, ok bool) {
	i := strings.LastIndex(name, sep)
	if i <= 0 || !utf8.ValidString(name) {
		return "", "", false
	}
	id = name[i+len(sep):]
	if id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return name[:i], id, true
}

func parse(p aip.Pattern, name string) ([]string, error) {
	if !utf8.ValidString(name) {
		return nil, fmt.Errorf("must have the form %s in valid UTF-8", p)
	}
	return p.ParseLoose(name)
}
