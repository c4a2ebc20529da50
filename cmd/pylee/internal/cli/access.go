package cli

import (
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/names"
)

// call runs one REST call and prints the answer with table.
func (g *globals) call(cmd *cobra.Command, method, path string, q url.Values, body, out proto.Message, table func(w *tabwriter.Writer)) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	if out == nil {
		out = &emptypb.Empty{}
	}
	if err := c.Do(cmd.Context(), method, path, q, body, out); err != nil {
		return err
	}
	return g.printMessage(out, table)
}

// orgPathOf is the name of an organization given by id or by name.
func orgPathOf(org string) string { return names.Org{Org: orgID(org)}.String() }

// userID is the id of a user given by id or by name (users/{user}).
func userID(s string) string {
	if u, err := names.ParseUser(s); err == nil {
		return u.User
	}
	return s
}

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the current credential is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := &orgsv1.User{}
			return g.call(cmd, http.MethodGet, "/v1/users/me", nil, nil, u, func(w *tabwriter.Writer) {
				row(w, "NAME", "KIND", "DISPLAY NAME")
				row(w, u.Name, u.Kind, u.DisplayName)
			})
		},
	}
}

func newServiceAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "service-account", Aliases: []string{"sa"}, Short: "Manage service accounts"}
	var org, display string
	create := &cobra.Command{
		Use: "create ID --org ORG", Short: "Create a service account", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sa := &orgsv1.ServiceAccount{}
			return g.call(c, http.MethodPost, "/v1/"+orgPathOf(org)+"/serviceAccounts", url.Values{"service_account_id": {args[0]}},
				&orgsv1.ServiceAccount{DisplayName: display}, sa, func(w *tabwriter.Writer) { row(w, "NAME"); row(w, sa.Name) })
		},
	}
	create.Flags().StringVar(&display, "display-name", "", "human-readable name")
	list := &cobra.Command{
		Use: "list --org ORG", Short: "List service accounts", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListServiceAccountsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+orgPathOf(org)+"/serviceAccounts", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "DISPLAY NAME", "CREATED")
				for _, sa := range resp.ServiceAccounts {
					row(w, sa.Name, sa.DisplayName, fmtTime(sa.CreateTime))
				}
			})
		},
	}
	del := &cobra.Command{
		Use: "delete ID --org ORG", Short: "Delete a service account with its tokens and bindings", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+names.ServiceAccount{Org: orgID(org), ServiceAccount: args[0]}.String(), nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted") })
		},
	}
	for _, c := range []*cobra.Command{create, list, del} {
		orgFlag(c, &org)
		cmd.AddCommand(c)
	}
	return cmd
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens of service accounts (or your own with --service-account=\"\")"}
	var org, sa, display, expire string
	parent := func() string {
		if sa == "" {
			return "users/me"
		}
		return names.ServiceAccount{Org: orgID(org), ServiceAccount: sa}.String()
	}
	create := &cobra.Command{
		Use: "create", Short: "Create a token; its secret is printed once", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			in := &orgsv1.Token{DisplayName: display}
			if expire != "" {
				t, err := parseWhen(expire)
				if err != nil {
					return err
				}
				ts, _ := timeParse(t)
				in.ExpireTime = ts
			}
			tok := &orgsv1.Token{}
			return g.call(c, http.MethodPost, "/v1/"+parent()+"/tokens", nil, in, tok, func(w *tabwriter.Writer) {
				row(w, "NAME", "SECRET (shown once)")
				row(w, tok.Name, tok.Secret)
			})
		},
	}
	create.Flags().StringVar(&display, "display-name", "", "human-readable name")
	create.Flags().StringVar(&expire, "expire", "", "expiry: an RFC 3339 time")
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListTokensResponse{}
			return g.call(c, http.MethodGet, "/v1/"+parent()+"/tokens", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "DISPLAY NAME", "CREATED", "EXPIRES", "LAST USED")
				for _, t := range resp.Tokens {
					row(w, t.Name, t.DisplayName, fmtTime(t.CreateTime), fmtTime(t.ExpireTime), fmtTime(t.LastUseTime))
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+names.Token{Parent: parent(), Token: args[0]}.String(), nil, nil, nil, func(w *tabwriter.Writer) { row(w, "revoked") })
		},
	}
	for _, c := range []*cobra.Command{create, list, revoke} {
		c.Flags().StringVar(&org, "org", "", "organization of the service account")
		c.Flags().StringVar(&sa, "service-account", "", "service account id (empty: your own tokens)")
		cmd.AddCommand(c)
	}
	return cmd
}

func newBindingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "binding", Short: "Grant and revoke roles on an organization, registry, server or tool"}
	var role, principal string
	create := &cobra.Command{
		Use: "create RESOURCE --role ROLE --principal PRINCIPAL", Short: "Grant a role, e.g. create orgs/acme/servers/github --role roles/user --principal users/jane",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b := &orgsv1.Binding{}
			return g.call(c, http.MethodPost, "/v1/"+args[0]+"/bindings", nil, &orgsv1.Binding{Role: role, Principal: principal}, b,
				func(w *tabwriter.Writer) { row(w, "NAME", "ROLE", "PRINCIPAL"); row(w, b.Name, b.Role, b.Principal) })
		},
	}
	create.Flags().StringVar(&role, "role", "", "roles/{owner|admin|developer|user|auditor} or orgs/{org}/roles/{id}")
	create.Flags().StringVar(&principal, "principal", "", "users/{id}, orgs/{org}/teams/{team} or orgs/{org}/serviceAccounts/{sa}")
	list := &cobra.Command{
		Use: "list RESOURCE", Short: "List the bindings on a resource", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			resp := &orgsv1.ListBindingsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+args[0]+"/bindings", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "ROLE", "PRINCIPAL", "CREATOR")
				for _, b := range resp.Bindings {
					row(w, b.Name, b.Role, b.Principal, b.Creator)
				}
			})
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Revoke a binding by its name", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+args[0], nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted") })
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func newTeamCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "team", Short: "Manage teams"}
	var org, display string
	create := &cobra.Command{
		Use: "create ID --org ORG", Short: "Create a team", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t := &orgsv1.Team{}
			return g.call(c, http.MethodPost, "/v1/"+orgPathOf(org)+"/teams", url.Values{"team_id": {args[0]}}, &orgsv1.Team{DisplayName: display}, t,
				func(w *tabwriter.Writer) { row(w, "NAME"); row(w, t.Name) })
		},
	}
	create.Flags().StringVar(&display, "display-name", "", "human-readable name")
	list := &cobra.Command{
		Use: "list --org ORG", Short: "List teams and their members", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListTeamsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+orgPathOf(org)+"/teams", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "DISPLAY NAME", "MEMBERS")
				for _, t := range resp.Teams {
					row(w, t.Name, t.DisplayName, strings.Join(t.Members, ","))
				}
			})
		},
	}
	del := &cobra.Command{
		Use: "delete ID --org ORG", Short: "Delete a team", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+names.Team{Org: orgID(org), Team: args[0]}.String(), nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted") })
		},
	}
	member := func(verb string) *cobra.Command {
		return &cobra.Command{
			Use: verb + "-member TEAM MEMBER --org ORG", Short: verb + " a team member", Args: cobra.ExactArgs(2),
			RunE: func(c *cobra.Command, args []string) error {
				t := &orgsv1.Team{}
				return g.call(c, http.MethodPost, "/v1/"+names.Team{Org: orgID(org), Team: args[0]}.String()+":"+verb+"Member", nil,
					&orgsv1.AddTeamMemberRequest{Member: args[1]}, t,
					func(w *tabwriter.Writer) { row(w, "NAME", "MEMBERS"); row(w, t.Name, strings.Join(t.Members, ",")) })
			},
		}
	}
	for _, c := range []*cobra.Command{create, list, del, member("add"), member("remove")} {
		orgFlag(c, &org)
		cmd.AddCommand(c)
	}
	return cmd
}

func newRoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "List roles and manage custom roles"}
	var org, title string
	var perms []string
	list := &cobra.Command{
		Use: "list --org ORG", Short: "List built-in and custom roles", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListRolesResponse{}
			return g.call(c, http.MethodGet, "/v1/"+orgPathOf(org)+"/roles", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "TITLE", "PERMISSIONS")
				for _, r := range resp.Roles {
					row(w, r.Name, r.Title, strings.Join(r.Permissions, ","))
				}
			})
		},
	}
	create := &cobra.Command{
		Use: "create ID --org ORG --permission P ...", Short: "Create a custom role", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r := &orgsv1.Role{}
			return g.call(c, http.MethodPost, "/v1/"+orgPathOf(org)+"/roles", url.Values{"role_id": {args[0]}},
				&orgsv1.Role{Title: title, Permissions: perms}, r, func(w *tabwriter.Writer) { row(w, "NAME"); row(w, r.Name) })
		},
	}
	create.Flags().StringVar(&title, "title", "", "human-readable name")
	create.Flags().StringSliceVar(&perms, "permission", nil, "a permission (repeat or comma-separate)")
	del := &cobra.Command{
		Use: "delete ID --org ORG", Short: "Delete a custom role no binding uses", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+names.Role{Org: orgID(org), Role: args[0]}.String(), nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted") })
		},
	}
	for _, c := range []*cobra.Command{list, create, del} {
		orgFlag(c, &org)
		cmd.AddCommand(c)
	}
	return cmd
}

func timeParse(s string) (*timestamppb.Timestamp, error) {
	t, err := parseTime(s)
	if err != nil {
		return nil, err
	}
	return timestamppb.New(t), nil
}

func newMemberCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "List and remove an organization's members"}
	var org string
	list := &cobra.Command{
		Use: "list --org ORG", Short: "List members and their roles", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListMembersResponse{}
			return g.call(c, http.MethodGet, "/v1/"+orgPathOf(org)+"/members", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "PRINCIPAL", "ROLES")
				for _, m := range resp.Members {
					row(w, m.Principal, strings.Join(m.Roles, "; "))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove USER --org ORG", Short: "Remove a user (all its roles) from the organization", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.call(c, http.MethodDelete, "/v1/"+names.Member{Org: orgID(org), User: userID(args[0])}.String(), nil, nil, nil,
				func(w *tabwriter.Writer) { row(w, "removed") })
		},
	}
	for _, c := range []*cobra.Command{list, remove} {
		orgFlag(c, &org)
		cmd.AddCommand(c)
	}
	return cmd
}

func newInviteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "invite", Short: "Invite people to an organization"}
	var org, role string
	create := &cobra.Command{
		Use: "create EMAIL --org ORG --role ROLE", Short: "Invite by email; prints the one-time invitation token", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			inv := &orgsv1.Invitation{}
			return g.call(c, http.MethodPost, "/v1/"+orgPathOf(org)+"/invitations", nil, &orgsv1.Invitation{Email: args[0], Role: role}, inv,
				func(w *tabwriter.Writer) {
					row(w, "NAME", "EMAIL", "ROLE", "EXPIRES", "TOKEN (shown once)")
					row(w, inv.Name, inv.Email, inv.Role, fmtTime(inv.ExpireTime), inv.Token)
				})
		},
	}
	create.Flags().StringVar(&role, "role", "roles/user", "role granted on acceptance")
	list := &cobra.Command{
		Use: "list --org ORG", Short: "List invitations", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			resp := &orgsv1.ListInvitationsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+orgPathOf(org)+"/invitations", nil, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "EMAIL", "ROLE", "STATE", "EXPIRES")
				for _, i := range resp.Invitations {
					row(w, i.Name, i.Email, i.Role, i.State, fmtTime(i.ExpireTime))
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID --org ORG", Short: "Revoke a pending invitation", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			inv := &orgsv1.Invitation{}
			return g.call(c, http.MethodPost, "/v1/"+names.Invitation{Org: orgID(org), Invitation: args[0]}.String()+":revoke", nil, &emptypb.Empty{}, inv,
				func(w *tabwriter.Writer) { row(w, "NAME", "STATE"); row(w, inv.Name, inv.State) })
		},
	}
	for _, c := range []*cobra.Command{create, list, revoke} {
		orgFlag(c, &org)
		cmd.AddCommand(c)
	}
	accept := &cobra.Command{
		Use: "accept TOKEN", Short: "Accept an invitation (without a login, you get an API token, once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			resp := &orgsv1.AcceptInvitationResponse{}
			return g.call(c, http.MethodPost, "/v1/invitations:accept", nil, &orgsv1.AcceptInvitationRequest{Token: args[0]}, resp,
				func(w *tabwriter.Writer) {
					row(w, "USER", "ORGANIZATION", "API TOKEN (shown once)")
					row(w, resp.User.GetName(), resp.Organization, resp.Token.GetSecret())
				})
		},
	}
	cmd.AddCommand(accept)
	return cmd
}
