package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/names"
)

// orgID is the id of an organization given by id or by name (orgs/{org}).
func orgID(s string) string {
	if o, err := names.ParseOrg(s); err == nil {
		return o.Org
	}
	return s
}

// orgOf returns the organization a command works in: --org, else the
// current context's.
func (g *globals) orgOf(flag string) (string, error) {
	org := orgID(flag)
	if org == "" {
		org = g.contextOrg
	}
	if org == "" {
		return "", errors.New("give the organization with --org (or save one with pylee login --org)")
	}
	return org, nil
}

// soleOrg returns --org, the context's, or else the caller's only
// organization (a fresh pylee up with one organization needs no --org).
func (g *globals) soleOrg(ctx context.Context, c *client.Client, flag string) (string, error) {
	if o, err := g.orgOf(flag); err == nil {
		return o, nil
	}
	list := &orgsv1.ListOrganizationsResponse{}
	if err := c.Do(ctx, http.MethodGet, "/v1/orgs", nil, nil, list); err != nil {
		return "", err
	}
	if len(list.GetOrganizations()) != 1 {
		return "", fmt.Errorf("give the organization with --org (or save one with pylee login --org): you see %d", len(list.GetOrganizations()))
	}
	return strings.TrimPrefix(list.GetOrganizations()[0].GetName(), "orgs/"), nil
}

// kind is a collection of an organization's resources that commands take
// by id or by full name.
type kind struct {
	noun    string
	pattern aip.Pattern // orgs/{org}/<collection>/{id}
}

var (
	serverKind   = kind{"server", names.ServerPattern}
	registryKind = kind{"registry", names.RegistryPattern}
	teamKind     = kind{"team", names.TeamPattern}
)

// ref turns an id into the name of a resource of kind k in the command's
// organization; full names pass through.
func (g *globals) ref(org string, k kind, id string) (string, error) {
	if strings.HasPrefix(id, "orgs/") {
		return id, nil
	}
	o, err := g.orgOf(org)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("give the %s", k.noun)
	}
	return k.pattern.Format(o, id), nil
}

func optionalOrg(cmd *cobra.Command, org *string) {
	cmd.Flags().StringVar(org, "org", "", "organization id (default: the current context's)")
}

// enumFlag parses an enum flag given as the API's name of the value
// (STATE_PENDING: what every output format shows) or without its prefix,
// in any case, with - for _ (pending, read-only).
func enumFlag(flag, prefix, v string, values map[string]int32) (int32, error) {
	name := strings.ToUpper(strings.ReplaceAll(v, "-", "_"))
	if !strings.HasPrefix(name, prefix) {
		name = prefix + name
	}
	if n, ok := values[name]; ok && n != 0 {
		return n, nil
	}
	var want []string
	for k, n := range values {
		if n != 0 {
			want = append(want, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, prefix), "_", "-")))
		}
	}
	return 0, fmt.Errorf("--%s %q: want one of %s (or the API's %s… names)", flag, v, strings.Join(sorted(want), ", "), prefix)
}

func newServerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "Manage MCP servers and their versions"}
	var org, serverName, title, description, repoURL, repoSource, repoSubfolder, website string
	fields := func(c *cobra.Command) {
		c.Flags().StringVar(&title, "title", "", "human-readable title")
		c.Flags().StringVar(&description, "description", "", "what the server does")
		c.Flags().StringVar(&repoURL, "repository-url", "", "source repository URL")
		c.Flags().StringVar(&repoSource, "repository-source", "", "repository host, e.g. github")
		c.Flags().StringVar(&repoSubfolder, "repository-subfolder", "", "path of the server in a monorepo")
		c.Flags().StringVar(&website, "website-url", "", "website URL")
	}
	build := func() *registryv1.Server {
		s := &registryv1.Server{ServerName: serverName, Title: title, Description: description, WebsiteUrl: website}
		if repoURL != "" || repoSource != "" || repoSubfolder != "" {
			s.Repository = &registryv1.Repository{Url: repoURL, Source: repoSource, Subfolder: repoSubfolder}
		}
		return s
	}
	printServer := func(s *registryv1.Server) func(w *tabwriter.Writer) {
		return func(w *tabwriter.Writer) {
			row(w, "NAME", "SERVER NAME", "TITLE", "UPDATED")
			row(w, s.Name, s.ServerName, s.Title, fmtTime(s.UpdateTime))
		}
	}
	create := &cobra.Command{
		Use: "create ID --server-name NAMESPACE/NAME", Short: "Create a server", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o, err := g.orgOf(org)
			if err != nil {
				return err
			}
			s := &registryv1.Server{}
			return g.call(c, http.MethodPost, "/v1/orgs/"+o+"/servers", url.Values{"server_id": {args[0]}}, build(), s, printServer(s))
		},
	}
	create.Flags().StringVar(&serverName, "server-name", "", "the official reverse-DNS name, e.g. com.acme/github (required)")
	_ = create.MarkFlagRequired("server-name")
	fields(create)
	var search string
	list := &cobra.Command{
		Use: "list", Short: "List servers", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := g.orgOf(org)
			if err != nil {
				return err
			}
			resp := &registryv1.ListServersResponse{}
			q := url.Values{"page_size": {"1000"}}
			if search != "" {
				q.Set("search", search)
			}
			return g.call(c, http.MethodGet, "/v1/orgs/"+o+"/servers", q, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "SERVER NAME", "TITLE", "UPDATED")
				for _, s := range resp.Servers {
					row(w, s.Name, s.ServerName, s.Title, fmtTime(s.UpdateTime))
				}
			})
		},
	}
	list.Flags().StringVar(&search, "search", "", "text in the name, title or description")
	get := &cobra.Command{
		Use: "get SERVER", Short: "Show a server", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, serverKind, args[0])
			if err != nil {
				return err
			}
			s := &registryv1.Server{}
			return g.call(c, http.MethodGet, "/v1/"+name, nil, nil, s, printServer(s))
		},
	}
	update := &cobra.Command{
		Use: "update SERVER", Short: "Change a server's title, description, repository or website", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, serverKind, args[0])
			if err != nil {
				return err
			}
			var mask []string
			for flag, field := range map[string]string{"title": "title", "description": "description", "website-url": "website_url",
				"repository-url": "repository", "repository-source": "repository", "repository-subfolder": "repository"} {
				if c.Flags().Changed(flag) && !contains(mask, field) {
					mask = append(mask, field)
				}
			}
			if len(mask) == 0 {
				return errors.New("nothing to update: give at least one of --title, --description, --website-url, --repository-*")
			}
			in := build()
			in.Name = name
			s := &registryv1.Server{}
			return g.call(c, http.MethodPatch, "/v1/"+name, url.Values{"update_mask": {strings.Join(sorted(mask), ",")}}, in, s, printServer(s))
		},
	}
	fields(update)
	var yes bool
	del := &cobra.Command{
		Use: "delete SERVER [--yes]", Short: "Delete a server and its versions (refused while a registry pins it; asks first)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, serverKind, args[0])
			if err != nil {
				return err
			}
			if _, err := g.client(); err != nil {
				return err
			}
			if err := g.confirmDelete(yes, "server", name, serverID(name), "and all its versions"); err != nil {
				return err
			}
			return g.call(c, http.MethodDelete, "/v1/"+name, nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted "+name) })
		},
	}
	yesFlag(del, &yes)
	for _, c := range []*cobra.Command{create, list, get, update, del} {
		optionalOrg(c, &org)
	}
	cmd.AddCommand(create, list, get, update, del, newVersionCmdGroup(g), newServerDeployCmd(g))
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func printVersion(v *registryv1.ServerVersion) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "NAME", "VERSION", "STATUS", "LATEST", "TOOLS", "CREATED")
		row(w, v.Name, v.Version, v.Status.String(), fmt.Sprint(v.IsLatest), fmt.Sprint(len(v.Tools)), fmtTime(v.CreateTime))
	}
}

// readTools reads a tool list: an MCP tools/list result ({"tools": [...]})
// or a bare array.
func readTools(path string) ([]*registryv1.Tool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Tools []json.RawMessage `json:"tools"`
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &wrapped); err == nil && wrapped.Tools != nil {
		raws = wrapped.Tools
	} else if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("%s: want {\"tools\": [...]} or an array of tools: %v", path, err)
	}
	out := make([]*registryv1.Tool, len(raws))
	for i, r := range raws {
		out[i] = &registryv1.Tool{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(r, out[i]); err != nil {
			return nil, fmt.Errorf("%s: tool %d: %v", path, i, err)
		}
	}
	return out, nil
}

func newVersionCmdGroup(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "version", Short: "Publish and manage immutable server versions"}
	var org, server, version, file, notes, toolsFile string
	serverFlag := func(c *cobra.Command) {
		c.Flags().StringVar(&server, "server", "", "server id, or its full name orgs/{org}/servers/{id} (required)")
		_ = c.MarkFlagRequired("server")
		optionalOrg(c, &org)
	}
	create := &cobra.Command{
		Use:   "create --server S --version V [--file server.json] [--notes TEXT] [--tools tools.json]",
		Short: "Publish a version, from a server.json document or from the server's fields",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			tools, err := readTools(toolsFile)
			if err != nil {
				return err
			}
			v := &registryv1.ServerVersion{}
			if file == "" {
				return g.call(c, http.MethodPost, "/v1/"+parent+"/versions", nil,
					&registryv1.ServerVersion{Version: version, ReleaseNotes: notes, Tools: tools}, v, printVersion(v))
			}
			doc, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			return g.call(c, http.MethodPost, "/v1/"+parent+"/versions:import", nil,
				&registryv1.ImportServerJsonRequest{ServerJson: string(doc), Version: version, ReleaseNotes: notes, Tools: tools}, v, printVersion(v))
		},
	}
	serverFlag(create)
	create.Flags().StringVar(&version, "version", "", "SemVer version (default: the document's)")
	create.Flags().StringVarP(&file, "file", "f", "", "an official server.json document")
	create.Flags().StringVar(&notes, "notes", "", "release notes")
	create.Flags().StringVar(&toolsFile, "tools", "", `the tools: a tools/list result {"tools": [...]} or an array`)

	list := &cobra.Command{
		Use: "list --server S", Short: "List versions, highest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			resp := &registryv1.ListVersionsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+parent+"/versions", url.Values{"page_size": {"1000"}}, nil, resp, func(w *tabwriter.Writer) {
				row(w, "VERSION", "STATUS", "LATEST", "TOOLS", "CREATED", "BY")
				for _, v := range resp.Versions {
					row(w, v.Version, v.Status.String(), fmt.Sprint(v.IsLatest), fmt.Sprint(len(v.Tools)), fmtTime(v.CreateTime), v.Creator)
				}
			})
		},
	}
	serverFlag(list)
	get := &cobra.Command{
		Use: "get VERSION --server S", Short: "Show a version (VERSION may be latest)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			v := &registryv1.ServerVersion{}
			return g.call(c, http.MethodGet, "/v1/"+parent+"/versions/"+url.PathEscape(args[0]), nil, nil, v, printVersion(v))
		},
	}
	serverFlag(get)
	var bump, pre string
	suggest := &cobra.Command{
		Use: "suggest --server S --bump patch|minor|major [--prerelease rc]", Short: "Suggest the next version", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			resp := &registryv1.SuggestNextVersionResponse{}
			q := url.Values{"bump": {bump}}
			if pre != "" {
				q.Set("prerelease", pre)
			}
			return g.call(c, http.MethodGet, "/v1/"+parent+"/versions:suggestNext", q, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NEXT", "FROM")
				row(w, resp.Version, resp.From)
			})
		},
	}
	serverFlag(suggest)
	suggest.Flags().StringVar(&bump, "bump", "patch", "patch, minor or major")
	suggest.Flags().StringVar(&pre, "prerelease", "", "prerelease identifier, e.g. rc")
	var message string
	setStatus := func(use, short string, status registryv1.ServerVersion_Status) *cobra.Command {
		c := &cobra.Command{
			Use: use + " VERSION --server S [--message TEXT]", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				parent, err := g.ref(org, serverKind, server)
				if err != nil {
					return err
				}
				v := &registryv1.ServerVersion{}
				return g.call(c, http.MethodPost, "/v1/"+parent+"/versions/"+url.PathEscape(args[0])+":setStatus", nil,
					&registryv1.SetVersionStatusRequest{Status: status, Message: message}, v, printVersion(v))
			},
		}
		serverFlag(c)
		c.Flags().StringVar(&message, "message", "", "why, shown to whoever uses the version")
		return c
	}
	diff := &cobra.Command{
		Use: "diff BASE TARGET --server S", Short: "Show the tools added, removed and changed between two versions", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			d := &registryv1.ToolDiff{}
			return g.call(c, http.MethodGet, "/v1/"+parent+"/versions:diff", url.Values{"base": {args[0]}, "target": {args[1]}}, nil, d,
				func(w *tabwriter.Writer) { printDiff(w, d) })
		},
	}
	serverFlag(diff)
	var out string
	export := &cobra.Command{
		Use: "export VERSION --server S [-f FILE]", Short: "Write a version's server.json", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			parent, err := g.ref(org, serverKind, server)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			resp := &registryv1.ExportServerJsonResponse{}
			if err := cl.Do(c.Context(), http.MethodGet, "/v1/"+parent+"/versions/"+url.PathEscape(args[0])+":exportServerJson", nil, nil, resp); err != nil {
				return err
			}
			if out == "" || out == "-" {
				return g.writeDocument([]byte(resp.ServerJson), true)
			}
			return os.WriteFile(out, []byte(resp.ServerJson), 0o644)
		},
	}
	serverFlag(export)
	export.Flags().StringVarP(&out, "file", "f", "", "file to write (default: standard output)")
	cmd.AddCommand(create, list, get, suggest,
		setStatus("deprecate", "Deprecate a version", registryv1.ServerVersion_STATUS_DEPRECATED),
		setStatus("yank", "Yank a version: it can no longer be newly pinned", registryv1.ServerVersion_STATUS_YANKED),
		setStatus("activate", "Make a deprecated or yanked version active again", registryv1.ServerVersion_STATUS_ACTIVE),
		diff, export)
	return cmd
}

func printDiff(w *tabwriter.Writer, d *registryv1.ToolDiff) {
	row(w, "CHANGE", "TOOL", "DETAIL")
	for _, t := range d.Added {
		row(w, "added", t.Name, t.Description)
	}
	for _, t := range d.Removed {
		row(w, "removed", t.Name, "")
	}
	for _, t := range d.Changed {
		row(w, "changed", t.Name, strings.Join(t.Changes, "; "))
	}
}

// registryFlags are the settings flags of registry create and update.
type registryFlags struct {
	description, parent, toolPolicy, rollout string
	autoUpgrade, approvalRequired            bool
	requireRecordedTools                     bool
	minApprovals                             int32
	ownerTeams, namespaces, steps            []string
	maxErrorRate                             float64
	limits                                   registryv1.McpLimits
}

// limitFlags are the flags of the MCP gateway's limits (McpLimits).
var limitFlags = []string{"rate-per-caller", "rate-per-server", "sessions-per-caller", "max-request-bytes"}

func (f *registryFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.description, "description", "", "what the registry is for")
	c.Flags().StringVar(&f.parent, "parent", "", "parent registry id whose settings this one inherits")
	c.Flags().BoolVar(&f.autoUpgrade, "auto-upgrade", false, "entries may pin SemVer ranges and follow new versions")
	c.Flags().BoolVar(&f.approvalRequired, "approval-required", false, "pins, unpins and settings changes need approval")
	c.Flags().Int32Var(&f.minApprovals, "min-approvals", 1, "distinct approvers a request needs")
	c.Flags().StringSliceVar(&f.ownerTeams, "owner-team", nil, "owner team id (repeatable)")
	c.Flags().StringSliceVar(&f.namespaces, "namespace", nil, "allowed server-name namespace, e.g. com.acme (repeatable)")
	c.Flags().StringVar(&f.toolPolicy, "tool-policy", "", "all or read-only")
	c.Flags().StringVar(&f.rollout, "rollout", "", "direct or canary")
	c.Flags().StringSliceVar(&f.steps, "canary-step", nil, "canary step WEIGHT:PAUSE, e.g. 10:5m (repeatable, in order)")
	c.Flags().Float64Var(&f.maxErrorRate, "max-error-rate", 0, "canary error rate (0 to 1) above which it rolls back")
	c.Flags().BoolVar(&f.requireRecordedTools, "require-recorded-tools", false,
		"only versions published with their tools may be pinned; the MCP gateway serves no tool of one without")
	c.Flags().Int32Var(&f.limits.RequestsPerMinutePerCaller, "rate-per-caller", 0, "MCP requests per minute one caller may send to the registry's servers (0: inherited; no limit at the top)")
	c.Flags().Int32Var(&f.limits.RequestsPerMinutePerServer, "rate-per-server", 0, "MCP requests per minute all callers may send to one server (0: inherited; no limit at the top)")
	c.Flags().Int32Var(&f.limits.SessionsPerCaller, "sessions-per-caller", 0, "MCP sessions one caller may hold open with one server (0: inherited; no limit at the top)")
	c.Flags().Int32Var(&f.limits.MaxRequestBytes, "max-request-bytes", 0, "largest MCP message a client may send (0: inherited; 4 MiB at the top, the most)")
}

// build returns the registry and the fields the flags set.
func (f *registryFlags) build(g *globals, c *cobra.Command, org string) (*registryv1.Registry, []string, error) {
	r := &registryv1.Registry{Description: f.description}
	var mask []string
	changed := c.Flags().Changed
	if changed("description") {
		mask = append(mask, "description")
	}
	if changed("parent") {
		mask = append(mask, "parent")
		if f.parent != "" {
			p, err := g.ref(org, registryKind, f.parent)
			if err != nil {
				return nil, nil, err
			}
			r.Parent = p
		}
	}
	if changed("auto-upgrade") {
		r.AutoUpgrade, mask = &f.autoUpgrade, append(mask, "auto_upgrade")
	}
	if changed("approval-required") {
		r.ApprovalRequired, mask = &f.approvalRequired, append(mask, "approval_required")
	}
	if changed("min-approvals") {
		r.MinApprovals, mask = &f.minApprovals, append(mask, "min_approvals")
	}
	if changed("owner-team") {
		for _, t := range f.ownerTeams {
			name, err := g.ref(org, teamKind, t)
			if err != nil {
				return nil, nil, err
			}
			r.OwnerTeams = append(r.OwnerTeams, name)
		}
		mask = append(mask, "owner_teams")
	}
	if changed("namespace") {
		r.Namespaces, mask = f.namespaces, append(mask, "namespaces")
	}
	if changed("tool-policy") {
		if f.toolPolicy != "" && f.toolPolicy != "inherit" {
			p, err := enumFlag("tool-policy", "TOOL_POLICY_", f.toolPolicy, registryv1.ToolPolicy_value)
			if err != nil {
				return nil, nil, err
			}
			r.ToolPolicy = registryv1.ToolPolicy(p)
		}
		mask = append(mask, "tool_policy")
	}
	if changed("require-recorded-tools") {
		r.RequireRecordedTools, mask = &f.requireRecordedTools, append(mask, "require_recorded_tools")
	}
	for _, name := range limitFlags {
		if changed(name) {
			// The limits are set together: one not given is inherited.
			r.McpLimits, mask = &registryv1.McpLimits{RequestsPerMinutePerCaller: f.limits.RequestsPerMinutePerCaller,
				RequestsPerMinutePerServer: f.limits.RequestsPerMinutePerServer, SessionsPerCaller: f.limits.SessionsPerCaller,
				MaxRequestBytes: f.limits.MaxRequestBytes}, append(mask, "mcp_limits")
			break
		}
	}
	if changed("rollout") || changed("canary-step") || changed("max-error-rate") {
		p := &registryv1.RolloutPolicy{MaxErrorRate: f.maxErrorRate}
		strategy, err := enumFlag("rollout", "STRATEGY_", f.rollout, registryv1.RolloutPolicy_Strategy_value)
		if err != nil {
			return nil, nil, err
		}
		p.Strategy = registryv1.RolloutPolicy_Strategy(strategy)
		for _, s := range f.steps {
			w, d, ok := strings.Cut(s, ":")
			weight, err := strconv.Atoi(w)
			if err != nil {
				return nil, nil, fmt.Errorf("--canary-step %q: want WEIGHT:PAUSE such as 10:5m", s)
			}
			step := &registryv1.CanaryStep{WeightPercent: int32(weight)}
			if ok {
				pause, err := time.ParseDuration(d)
				if err != nil {
					return nil, nil, fmt.Errorf("--canary-step %q: %v", s, err)
				}
				step.Pause = durationpb.New(pause)
			}
			p.Steps = append(p.Steps, step)
		}
		r.RolloutPolicy, mask = p, append(mask, "rollout_policy")
	}
	return r, mask, nil
}

func printRegistry(r *registryv1.Registry) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "NAME", "PARENT", "AUTO-UPGRADE", "APPROVALS", "TOOLS", "ROLLOUT")
		registryRow(w, r)
	}
}

func registryRow(w *tabwriter.Writer, r *registryv1.Registry) {
	e := r.GetEffective()
	approvals := "none"
	if e.GetApprovalRequired() {
		approvals = fmt.Sprintf("%d required", e.GetMinApprovals())
	}
	row(w, r.Name, r.Parent, fmt.Sprint(e.GetAutoUpgrade()), approvals, e.GetToolPolicy().String(), e.GetRolloutPolicy().GetStrategy().String())
}

func printEntry(e *registryv1.Entry) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "ENTRY", "SERVER NAME", "VERSION", "RANGE", "STATUS", "REVISION")
		row(w, e.Name, e.ServerName, e.Version, e.VersionRange, e.VersionStatus.String(), fmt.Sprint(e.Revision))
	}
}

func printApproval(a *registryv1.Approval) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "APPROVAL", "KIND", "STATE", "APPROVALS", "REQUESTER", "CHANGE")
		approvalRow(w, a)
		if d := a.GetToolDiff(); d != nil && len(d.Added)+len(d.Removed)+len(d.Changed) > 0 {
			row(w)
			printDiff(w, d)
		}
		if a.Failure != "" {
			row(w)
			row(w, "FAILURE", a.Failure)
		}
	}
}

func approvalRow(w *tabwriter.Writer, a *registryv1.Approval) {
	change := a.Entry
	switch a.Kind {
	case registryv1.Approval_KIND_PIN:
		change = fmt.Sprintf("pin %s to %s", a.Entry, a.Version)
		if a.VersionRange != "" {
			change += " (" + a.VersionRange + ")"
		}
		if a.CurrentVersion != "" {
			change += " (now " + a.CurrentVersion + ")"
		}
	case registryv1.Approval_KIND_UNPIN:
		change = "unpin " + a.Entry
	case registryv1.Approval_KIND_UPDATE_REGISTRY:
		change = "update " + strings.Join(a.GetUpdateMask().GetPaths(), ",")
	}
	row(w, a.Name, a.Kind.String(), a.State.String(), fmt.Sprintf("%d/%d", len(a.Approvals), a.MinApprovals), a.Requester, change)
}

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Manage registries, their entries (pins) and promotions"}
	var org string
	var f registryFlags
	create := &cobra.Command{
		Use: "create ID [settings flags]", Short: "Create a registry", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o, err := g.orgOf(org)
			if err != nil {
				return err
			}
			in, _, err := f.build(g, c, org)
			if err != nil {
				return err
			}
			r := &registryv1.Registry{}
			return g.call(c, http.MethodPost, "/v1/orgs/"+o+"/registries", url.Values{"registry_id": {args[0]}}, in, r, printRegistry(r))
		},
	}
	f.register(create)
	list := &cobra.Command{
		Use: "list", Short: "List registries", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := g.orgOf(org)
			if err != nil {
				return err
			}
			resp := &registryv1.ListRegistriesResponse{}
			return g.call(c, http.MethodGet, "/v1/orgs/"+o+"/registries", url.Values{"page_size": {"1000"}}, nil, resp, func(w *tabwriter.Writer) {
				row(w, "NAME", "PARENT", "AUTO-UPGRADE", "APPROVALS", "TOOLS", "ROLLOUT")
				for _, r := range resp.Registries {
					registryRow(w, r)
				}
			})
		},
	}
	get := &cobra.Command{
		Use: "get REGISTRY", Short: "Show a registry with its settings in force", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, registryKind, args[0])
			if err != nil {
				return err
			}
			r := &registryv1.Registry{}
			return g.call(c, http.MethodGet, "/v1/"+name, nil, nil, r, printRegistry(r))
		},
	}
	var reason string
	update := &cobra.Command{
		Use: "update REGISTRY [settings flags]", Short: "Change a registry's settings (an approval request where approval is required)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, registryKind, args[0])
			if err != nil {
				return err
			}
			in, mask, err := f.build(g, c, org)
			if err != nil {
				return err
			}
			if len(mask) == 0 {
				return errors.New("nothing to update: give at least one settings flag")
			}
			in.Name = name
			resp := &registryv1.UpdateRegistryResponse{}
			return g.call(c, http.MethodPatch, "/v1/"+name, url.Values{"update_mask": {strings.Join(mask, ",")}}, in, resp, func(w *tabwriter.Writer) {
				if a := resp.GetApproval(); a != nil {
					printApproval(a)(w)
					return
				}
				printRegistry(resp.GetRegistry())(w)
			})
		},
	}
	f.register(update)
	var registryFlag, server, version, rng string
	entryFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&registryFlag, "registry", "", "registry id or name (required)")
		_ = c.MarkFlagRequired("registry")
		c.Flags().StringVar(&server, "server", "", "server id (required)")
		_ = c.MarkFlagRequired("server")
		c.Flags().StringVar(&reason, "reason", "", "why; shown to approvers and in the audit log")
	}
	pinResult := func(resp *registryv1.PinEntryResponse) func(w *tabwriter.Writer) {
		return func(w *tabwriter.Writer) {
			if a := resp.GetApproval(); a != nil {
				printApproval(a)(w)
				return
			}
			printEntry(resp.GetEntry())(w)
		}
	}
	pin := &cobra.Command{
		Use: "pin --registry R --server S --version V | --range R", Short: "Pin a server to a version (or a range, in an auto-upgrading registry)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registryFlag)
			if err != nil {
				return err
			}
			entry, err := entryName(reg, server)
			if err != nil {
				return err
			}
			resp := &registryv1.PinEntryResponse{}
			return g.call(c, http.MethodPut, "/v1/"+entry, nil,
				&registryv1.PinEntryRequest{Version: version, VersionRange: rng, Reason: reason}, resp, pinResult(resp))
		},
	}
	entryFlags(pin)
	pin.Flags().StringVar(&version, "version", "", "exact version")
	pin.Flags().StringVar(&rng, "range", "", "SemVer range, e.g. ^1.2 (auto-upgrading registries)")
	unpin := &cobra.Command{
		Use: "unpin --registry R --server S", Short: "Remove a server from a registry", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registryFlag)
			if err != nil {
				return err
			}
			entry, err := entryName(reg, server)
			if err != nil {
				return err
			}
			resp := &registryv1.UnpinEntryResponse{}
			q := url.Values{}
			if reason != "" {
				q.Set("reason", reason)
			}
			return g.call(c, http.MethodDelete, "/v1/"+entry, q, nil, resp, func(w *tabwriter.Writer) {
				if resp.Approval != nil {
					printApproval(resp.Approval)(w)
					return
				}
				row(w, "unpinned")
			})
		},
	}
	entryFlags(unpin)
	var to string
	promote := &cobra.Command{
		Use: "promote --registry FROM --server S --to TO", Short: "Pin the version a server has in one registry in another", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registryFlag)
			if err != nil {
				return err
			}
			entry, err := entryName(reg, server)
			if err != nil {
				return err
			}
			target, err := g.ref(org, registryKind, to)
			if err != nil {
				return err
			}
			resp := &registryv1.PinEntryResponse{}
			return g.call(c, http.MethodPost, "/v1/"+entry+":promote", nil,
				&registryv1.PromoteEntryRequest{TargetRegistry: target, Reason: reason}, resp, pinResult(resp))
		},
	}
	entryFlags(promote)
	promote.Flags().StringVar(&to, "to", "", "target registry (required)")
	_ = promote.MarkFlagRequired("to")
	entries := &cobra.Command{
		Use: "entries REGISTRY", Short: "List a registry's entries", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			reg, err := g.ref(org, registryKind, args[0])
			if err != nil {
				return err
			}
			resp := &registryv1.ListEntriesResponse{}
			return g.call(c, http.MethodGet, "/v1/"+reg+"/entries", url.Values{"page_size": {"1000"}}, nil, resp, func(w *tabwriter.Writer) {
				row(w, "SERVER", "SERVER NAME", "VERSION", "RANGE", "STATUS", "REVISION", "UPDATED")
				for _, e := range resp.Entries {
					row(w, serverID(e.Server), e.ServerName, e.Version, e.VersionRange, e.VersionStatus.String(), fmt.Sprint(e.Revision), fmtTime(e.UpdateTime))
				}
			})
		},
	}
	var etag string
	var yes bool
	del := &cobra.Command{
		Use: "delete REGISTRY [--yes]", Short: "Delete a registry without entries or child registries (asks first)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.ref(org, registryKind, args[0])
			if err != nil {
				return err
			}
			if _, err := g.client(); err != nil {
				return err
			}
			id := name
			if r, err := names.ParseRegistry(name); err == nil {
				id = r.Registry
			}
			if err := g.confirmDelete(yes, "registry", name, id, "with its settings and approval requests"); err != nil {
				return err
			}
			var q url.Values
			if etag != "" {
				q = url.Values{"etag": {etag}}
			}
			return g.call(c, http.MethodDelete, "/v1/"+name, q, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted "+name) })
		},
	}
	del.Flags().StringVar(&etag, "etag", "", "delete only if the registry still has this etag")
	yesFlag(del, &yes)
	for _, c := range []*cobra.Command{create, list, get, update, pin, unpin, promote, entries, del} {
		optionalOrg(c, &org)
	}
	update.Flags().StringVar(&reason, "reason", "", "why; shown to approvers")
	cmd.AddCommand(create, list, get, update, pin, unpin, promote, entries, del)
	return cmd
}

// serverID is the id of a server given by id or full name.
func serverID(s string) string {
	if sv, err := names.ParseServer(s); err == nil {
		return sv.Server
	}
	return s
}

// inRegistry parses reg, a registry's name, for the names of what it holds.
func inRegistry(reg string) (names.Registry, error) {
	r, err := names.ParseRegistry(reg)
	if err != nil {
		return names.Registry{}, fmt.Errorf("registry %q: %v", reg, err)
	}
	return r, nil
}

// entryName is the name of server's entry in the registry named reg.
func entryName(reg, server string) (string, error) {
	r, err := inRegistry(reg)
	if err != nil {
		return "", err
	}
	return names.Entry{Org: r.Org, Registry: r.Registry, Server: serverID(server)}.String(), nil
}

func newApprovalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "approval", Short: "Review approval requests"}
	var org, registry, comment, state string
	name := func(id string) (string, error) {
		if strings.HasPrefix(id, "orgs/") {
			return id, nil
		}
		reg, err := g.ref(org, registryKind, registry)
		if err != nil {
			return "", fmt.Errorf("%v (or give the approval's full name)", err)
		}
		r, err := inRegistry(reg)
		if err != nil {
			return "", err
		}
		return names.Approval{Org: r.Org, Registry: r.Registry, Approval: id}.String(), nil
	}
	list := &cobra.Command{
		Use: "list --registry R [--state pending]", Short: "List approval requests, newest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registry)
			if err != nil {
				return err
			}
			q := url.Values{"page_size": {"1000"}}
			if state != "" {
				n, err := enumFlag("state", "STATE_", state, registryv1.Approval_State_value)
				if err != nil {
					return err
				}
				q.Set("state", registryv1.Approval_State(n).String())
			}
			resp := &registryv1.ListApprovalsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+reg+"/approvals", q, nil, resp, func(w *tabwriter.Writer) {
				row(w, "APPROVAL", "KIND", "STATE", "APPROVALS", "REQUESTER", "CHANGE")
				for _, a := range resp.Approvals {
					approvalRow(w, a)
				}
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, applied, rejected, cancelled or failed (or STATE_PENDING…)")
	show := &cobra.Command{
		Use: "show ID --registry R", Short: "Show a request with the tool changes it brings", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := name(args[0])
			if err != nil {
				return err
			}
			a := &registryv1.Approval{}
			return g.call(c, http.MethodGet, "/v1/"+n, nil, nil, a, printApproval(a))
		},
	}
	decide := func(verb, short string) *cobra.Command {
		c := &cobra.Command{
			Use: verb + " ID --registry R [--comment TEXT]", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				n, err := name(args[0])
				if err != nil {
					return err
				}
				a := &registryv1.Approval{}
				return g.call(c, http.MethodPost, "/v1/"+n+":"+verb, nil, &registryv1.ApproveRequest{Comment: comment}, a, printApproval(a))
			},
		}
		c.Flags().StringVar(&comment, "comment", "", "a comment")
		return c
	}
	cmds := []*cobra.Command{list, show, decide("approve", "Approve a request; the last approval needed applies it"),
		decide("reject", "Reject a request"), decide("cancel", "Withdraw a request")}
	for _, c := range cmds {
		optionalOrg(c, &org)
		c.Flags().StringVar(&registry, "registry", "", "registry id or name")
	}
	cmd.AddCommand(cmds...)
	return cmd
}
