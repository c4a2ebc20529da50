package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// User is a person (or the bootstrap admin) known to the installation.
type User struct{ ent.Schema }

// Fields of User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("email").Optional().Nillable().Unique(),
		field.String("display_name").Default(""),
		field.Time("create_time").Immutable(),
	}
}

// ServiceAccount is a non-human principal of an organization.
type ServiceAccount struct{ ent.Schema }

// Fields of ServiceAccount. The id is the resource name.
func (ServiceAccount) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/serviceAccounts/{sa}
		field.String("organization").Immutable(),
		field.String("display_name").Default(""),
		field.String("description").Default(""),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of ServiceAccount.
func (ServiceAccount) Indexes() []ent.Index { return []ent.Index{index.Fields("organization")} }

// Binding grants a role to a principal on a resource and below.
type Binding struct{ ent.Schema }

// Fields of Binding. The id is the resource name.
func (Binding) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // {resource}/bindings/{id}
		field.String("resource").Immutable(),
		field.String("organization").Immutable(),
		field.String("role").Immutable(),
		field.String("principal").Immutable(),
		field.String("creator").Default("").Immutable(),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of Binding.
func (Binding) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("resource", "role", "principal").Unique(),
		index.Fields("principal"),
		index.Fields("organization"),
	}
}

// Team groups principals of an organization.
type Team struct{ ent.Schema }

// Fields of Team. The id is the resource name.
func (Team) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/teams/{team}
		field.String("organization").Immutable(),
		field.String("display_name").Default(""),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of Team.
func (Team) Indexes() []ent.Index { return []ent.Index{index.Fields("organization")} }

// TeamMember puts a principal in a team.
type TeamMember struct{ ent.Schema }

// Fields of TeamMember.
func (TeamMember) Fields() []ent.Field {
	return []ent.Field{
		field.String("team").Immutable(),
		field.String("member").Immutable(),
	}
}

// Indexes of TeamMember.
func (TeamMember) Indexes() []ent.Index {
	return []ent.Index{index.Fields("team", "member").Unique(), index.Fields("member")}
}

// CustomRole is an organization's own role.
type CustomRole struct{ ent.Schema }

// Fields of CustomRole. The id is the resource name.
func (CustomRole) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/roles/{role}
		field.String("organization").Immutable(),
		field.String("title").Default(""),
		field.String("description").Default(""),
		field.JSON("permissions", []string{}),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of CustomRole.
func (CustomRole) Indexes() []ent.Index { return []ent.Index{index.Fields("organization")} }

// Invitation invites an email address to an organization with a role; its
// one-time token is stored only as a hash.
type Invitation struct{ ent.Schema }

// Fields of Invitation. The id is the resource name.
func (Invitation) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // orgs/{org}/invitations/{id}
		field.String("organization").Immutable(),
		field.String("email").Immutable(),
		field.String("role").Immutable(),
		field.Bytes("token_hash").Unique().Immutable().Sensitive(),
		field.Time("expire_time").Immutable(),
		field.String("state").Default("pending"),
		field.String("inviter").Immutable(),
		field.String("accepted_by").Default(""),
		field.Time("create_time").Immutable(),
	}
}

// Indexes of Invitation.
func (Invitation) Indexes() []ent.Index { return []ent.Index{index.Fields("organization")} }
