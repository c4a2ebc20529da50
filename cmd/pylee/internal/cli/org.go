package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/names"
)

func newOrgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "org",
		Aliases: []string{"orgs"},
		Short:   "Manage organizations",
	}
	cmd.AddCommand(newOrgCreateCmd(g), newOrgGetCmd(g), newOrgListCmd(g), newOrgUpdateCmd(g), newOrgDeleteCmd(g))
	return cmd
}

// orgPath is the REST path of organization id (or of an `orgs/{id}` name).
func orgPath(id string) string {
	return "/v1/orgs/" + url.PathEscape(orgID(id))
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Local().Format(time.RFC3339)
}

func (g *globals) printOrgs(orgs []*orgsv1.Organization, next string, whole *orgsv1.ListOrganizationsResponse) error {
	return g.printMessage(whole, func(w *tabwriter.Writer) {
		row(w, "NAME", "DISPLAY NAME", "DESCRIPTION", "CREATED")
		for _, o := range orgs {
			row(w, o.Name, o.DisplayName, o.Description, fmtTime(o.CreateTime))
		}
		morePages(w, next)
	})
}

func (g *globals) printOrg(o *orgsv1.Organization) error {
	return g.printMessage(o, func(w *tabwriter.Writer) {
		row(w, "NAME", "DISPLAY NAME", "DESCRIPTION", "CREATED", "UPDATED", "ETAG")
		row(w, o.Name, o.DisplayName, o.Description, fmtTime(o.CreateTime), fmtTime(o.UpdateTime), o.Etag)
	})
}

type orgFields struct {
	displayName, description, overview string
}

func (f *orgFields) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.displayName, "display-name", "", "human-readable name")
	cmd.Flags().StringVar(&f.description, "description", "", "one-line description")
	cmd.Flags().StringVar(&f.overview, "overview", "", "overview in Markdown")
}

func newOrgCreateCmd(g *globals) *cobra.Command {
	var f orgFields
	var requestID string
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Create an organization",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{"organization_id": {args[0]}}
			if requestID != "" {
				q.Set("request_id", requestID)
			}
			out := &orgsv1.Organization{}
			in := &orgsv1.Organization{DisplayName: f.displayName, Description: f.description, Overview: f.overview}
			if err := c.Do(cmd.Context(), http.MethodPost, "/v1/orgs", q, in, out); err != nil {
				return err
			}
			return g.printOrg(out)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: a retry with the same key returns the first result")
	return cmd
}

func newOrgGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show an organization",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out := &orgsv1.Organization{}
			if err := c.Do(cmd.Context(), http.MethodGet, orgPath(args[0]), nil, nil, out); err != nil {
				return err
			}
			return g.printOrg(out)
		},
	}
}

func newOrgListCmd(g *globals) *cobra.Command {
	var filter, pageToken string
	var pageSize int32
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List organizations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			whole := &orgsv1.ListOrganizationsResponse{}
			tok := pageToken
			for {
				q := url.Values{}
				if filter != "" {
					q.Set("filter", filter)
				}
				if pageSize > 0 {
					q.Set("page_size", strconv.Itoa(int(pageSize)))
				}
				if tok != "" {
					q.Set("page_token", tok)
				}
				page := &orgsv1.ListOrganizationsResponse{}
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/orgs", q, nil, page); err != nil {
					return err
				}
				whole.Organizations = append(whole.Organizations, page.Organizations...)
				whole.NextPageToken = page.NextPageToken
				tok = page.NextPageToken
				if !all || tok == "" {
					break
				}
			}
			return g.printOrgs(whole.Organizations, whole.NextPageToken, whole)
		},
	}
	cmd.Flags().StringVar(&filter, "filter", "", `filter, e.g. 'display_name : "acme"'`)
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "organizations per page (default 50, at most 1000)")
	cmd.Flags().StringVar(&pageToken, "page-token", "", "token of the page to show, from a previous list")
	cmd.Flags().BoolVar(&all, "all", false, "follow page tokens and list everything")
	return cmd
}

func newOrgUpdateCmd(g *globals) *cobra.Command {
	var f orgFields
	var etag string
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change the fields of an organization given as flags",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var mask []string
			for flag, field := range map[string]string{"display-name": "display_name", "description": "description", "overview": "overview"} {
				if cmd.Flags().Changed(flag) {
					mask = append(mask, field)
				}
			}
			if len(mask) == 0 {
				return errNoChange
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			in := &orgsv1.Organization{DisplayName: f.displayName, Description: f.description, Overview: f.overview, Etag: etag}
			out := &orgsv1.Organization{}
			q := url.Values{"update_mask": {strings.Join(sorted(mask), ",")}}
			if err := c.Do(cmd.Context(), http.MethodPatch, orgPath(args[0]), q, in, out); err != nil {
				return err
			}
			return g.printOrg(out)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&etag, "etag", "", "apply only if the organization still has this etag")
	return cmd
}

func newOrgDeleteCmd(g *globals) *cobra.Command {
	var etag string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete ID [--yes]",
		Short: "Delete an organization and everything in it (asks first; --yes in scripts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			id := orgID(args[0])
			name := names.Org{Org: id}.String()
			if err := g.confirmDelete(yes, "organization", name, id,
				"and everything in it: registries, servers and their versions, approvals, teams, roles, service accounts, tokens, bindings and invitations (its audit log stays)"); err != nil {
				return err
			}
			var q url.Values
			if etag != "" {
				q = url.Values{"etag": {etag}}
			}
			if err := c.Do(cmd.Context(), http.MethodDelete, orgPath(id), q, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, "deleted "+printable(name))
			return err
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", "delete only if the organization still has this etag")
	yesFlag(cmd, &yes)
	return cmd
}
