package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/connect"
)

func newDevCmd(g *globals) *cobra.Command {
	var org, registry, server, file string
	var watch, secrets, variables []string
	cmd := &cobra.Command{
		Use:   "dev [--file server.json] [--server S] -- CMD [ARGS...]",
		Short: "Run a server under development behind the gateway, with production's checks, restarting it when its files change",
		Long: `dev runs the MCP server you are writing (a command speaking stdio, or the packages of
--file server.json) through Pylee itself: it publishes a development version
(0.0.0-dev.<time>) of the server in a registry (--registry, default "dev", created when
missing), pins it, and the deploy service runs it. Calls reach it through the MCP gateway with
the same authentication, per-tool authorization, secret resolution (your own scope, the
registry's, the organization's), drift guard and audit as in production. When a file under
--watch changes (default: the directory of the command's script, or the current one), a new
development version is published and pinned, and the next session reaches the new process. Each
change being a version of its own, the gateway's drift guard compares the changed server's tools
with its own first listing (recorded once per version), not with the previous one's.

Values the server needs are declared with --secret NAME and --variable NAME (or in --file); set
them with pylee secret set NAME --me. The Pylee you are logged in to must run on this machine and
allow the command runtime (pylee up does; pylee serve needs --deploy-allow-command).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			o, err := g.soleOrg(cmd.Context(), c, org)
			if err != nil {
				return err
			}
			d := devRun{g: g, c: c, org: o, registry: registry, out: g.stdout}
			doc, dirs, err := d.document(file, args, secrets, variables)
			if err != nil {
				return err
			}
			if server == "" {
				server = devServerID(doc, args)
			}
			d.server = server
			if len(watch) > 0 {
				dirs = watch
			}
			return d.run(cmd.Context(), doc, dirs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&org, "org", "", "organization (default: the login context's)")
	f.StringVar(&registry, "registry", "dev", "registry the development version is pinned in (created when missing)")
	f.StringVar(&server, "server", "", "server id (default: from --file's name, or the command's)")
	f.StringVar(&file, "file", "", "server.json to run (its packages or _meta command), instead of a command")
	f.StringSliceVar(&watch, "watch", nil, "files or directories whose changes restart the server")
	f.StringSliceVar(&secrets, "secret", nil, "a secret the server needs in its environment (resolved by Pylee)")
	f.StringSliceVar(&variables, "variable", nil, "a variable the server needs in its environment (resolved by Pylee)")
	return cmd
}

type devRun struct {
	g                      *globals
	c                      *client.Client
	org, registry, server  string
	out                    interface{ Write([]byte) (int, error) }
	lastInstances          map[string]bool
	registryPath, srvPath  string
	entryPath, deployPath  string
	serverName, versionTag string
}

var notID = regexp.MustCompile(`[^a-z0-9-]+`)

// devServerID names the server after the document or the command.
func devServerID(doc map[string]any, args []string) string {
	base := ""
	if n, _ := doc["name"].(string); n != "" {
		base = n[strings.LastIndex(n, "/")+1:]
	} else if len(args) > 0 {
		base = filepath.Base(args[len(args)-1])
		base = strings.TrimSuffix(base, filepath.Ext(base))
		if base == "index" || base == "main" || base == "server" {
			if wd, err := os.Getwd(); err == nil {
				base = filepath.Base(wd)
			}
		}
	}
	id := strings.Trim(notID.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if id == "" || id[0] < 'a' || id[0] > 'z' {
		id = "dev-" + id
	}
	if len(id) > 50 {
		id = strings.TrimRight(id[:50], "-")
	}
	return id
}

// document builds the development version's server.json: --file's, or a
// command in _meta run in this directory; and the directories to watch.
func (d *devRun) document(file string, args, secrets, variables []string) (map[string]any, []string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, nil, err
	}
	doc := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	dirs := []string{wd}
	if len(args) == 0 {
		if file == "" {
			return nil, nil, errors.New("give the server's command after --, or --file server.json")
		}
		return doc, dirs, nil
	}
	command, err := exec.LookPath(args[0])
	if err != nil {
		return nil, nil, fmt.Errorf("the command %q: %w", args[0], err)
	}
	if command, err = filepath.Abs(command); err != nil {
		return nil, nil, err
	}
	var cmdArgs []any
	for i, a := range args[1:] {
		// The deploy service runs the command elsewhere: paths that name
		// files here are made absolute.
		if _, err := os.Stat(a); err == nil && !strings.HasPrefix(a, "-") {
			abs, _ := filepath.Abs(a)
			if i == len(args)-2 || len(dirs) == 1 {
				dirs = []string{filepath.Dir(abs)}
			}
			a = abs
		}
		cmdArgs = append(cmdArgs, a)
	}
	if len(args) == 1 {
		if st, err := os.Stat(args[0]); err == nil && !st.IsDir() {
			dirs = []string{filepath.Dir(command)}
		}
	}
	var env []any
	for _, s := range secrets {
		env = append(env, map[string]any{"name": s, "isRequired": true, "isSecret": true})
	}
	for _, v := range variables {
		env = append(env, map[string]any{"name": v, "isRequired": true})
	}
	meta, _ := doc["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["ai.pylee/command"] = map[string]any{"command": command, "args": cmdArgs, "cwd": wd, "environmentVariables": env}
	doc["_meta"] = meta
	if doc["description"] == nil {
		doc["description"] = "Under development with pylee dev: " + strings.Join(args, " ")
	}
	return doc, dirs, nil
}

func (d *devRun) printf(format string, a ...any) { fmt.Fprintf(d.out, format, a...) }

func (d *devRun) run(ctx context.Context, doc map[string]any, dirs []string) error {
	d.registryPath = "/v1/orgs/" + url.PathEscape(d.org) + "/registries/" + url.PathEscape(d.registry)
	d.srvPath = "/v1/orgs/" + url.PathEscape(d.org) + "/servers/" + url.PathEscape(d.server)
	d.entryPath = d.registryPath + "/entries/" + url.PathEscape(d.server)
	d.deployPath = d.registryPath + "/deployments/" + url.PathEscape(d.server)
	if err := d.ensure(ctx, doc); err != nil {
		return err
	}
	if err := d.release(ctx, doc, nil); err != nil {
		return err
	}
	t := connect.Target{Org: d.org, Registry: d.registry, Server: d.server, BaseURL: d.g.apiURL}
	d.printf("pylee dev: %s %s serves\n  MCP URL: %s\n  connect: pylee connect vscode --org %s --registry %s --server %s\n",
		d.server, d.versionTag, t.URL(), d.org, d.registry, d.server)
	return d.watch(ctx, dirs, doc)
}

// release publishes a new development version (0.0.0-dev.<ms>) of doc,
// pins it and waits until it serves from instances not in before. Each
// change is a version of its own, so the gateway's drift guard compares a
// changed server's tools with its own first listing, not the last one's.
func (d *devRun) release(ctx context.Context, doc map[string]any, before map[string]bool) error {
	tag := fmt.Sprintf("0.0.0-dev.%d", time.Now().UnixMilli())
	if tag <= d.versionTag { // two changes in one millisecond
		tag = d.versionTag + "1"
	}
	doc["name"], doc["version"] = d.serverName, tag
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := d.c.Do(ctx, http.MethodPost, d.srvPath+"/versions:import", nil,
		&registryv1.ImportServerJsonRequest{ServerJson: string(raw)}, &registryv1.ServerVersion{}); err != nil {
		return fmt.Errorf("publish the development version: %w", err)
	}
	pin := &registryv1.PinEntryResponse{}
	if err := d.c.Do(ctx, http.MethodPut, d.entryPath, nil, &registryv1.PinEntryRequest{Version: tag, Reason: "pylee dev"}, pin); err != nil {
		return fmt.Errorf("pin the development version: %w", err)
	}
	if pin.GetApproval() != nil {
		return fmt.Errorf("registry %s needs approvals for pins: use a development registry (--registry)", d.registry)
	}
	d.versionTag = tag
	return d.waitServing(ctx, before)
}

// ensure creates the registry and the server when they are missing.
func (d *devRun) ensure(ctx context.Context, doc map[string]any) error {
	reg := &registryv1.Registry{}
	if err := d.c.Do(ctx, http.MethodGet, d.registryPath, nil, nil, reg); err != nil {
		if !notFound(err) {
			return err
		}
		q := url.Values{"registry_id": {d.registry}}
		if err := d.c.Do(ctx, http.MethodPost, "/v1/orgs/"+url.PathEscape(d.org)+"/registries", q,
			&registryv1.Registry{Description: "Servers under development (pylee dev)"}, reg); err != nil {
			return fmt.Errorf("create registry %s: %w", d.registry, err)
		}
		d.printf("created registry %s\n", d.registry)
	}
	srv := &registryv1.Server{}
	if err := d.c.Do(ctx, http.MethodGet, d.srvPath, nil, nil, srv); err != nil {
		if !notFound(err) {
			return err
		}
		name, _ := doc["name"].(string)
		if name == "" {
			name = "dev.pylee.local/" + d.server
		}
		if err := d.c.Do(ctx, http.MethodPost, "/v1/orgs/"+url.PathEscape(d.org)+"/servers", url.Values{"server_id": {d.server}},
			&registryv1.Server{ServerName: name, Description: "Under development (pylee dev)"}, srv); err != nil {
			return fmt.Errorf("create server %s: %w", d.server, err)
		}
		d.printf("created server %s (%s)\n", d.server, name)
	}
	d.serverName = srv.GetServerName()
	return nil
}

func notFound(err error) bool {
	var api *client.APIError
	return errors.As(err, &api) && api.HTTPStatus == http.StatusNotFound
}

// waitServing waits until the deployment serves the development version
// from an instance not in before.
func (d *devRun) waitServing(ctx context.Context, before map[string]bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		dep := &deployv1.Deployment{}
		err := d.c.Do(ctx, http.MethodGet, d.deployPath, nil, nil, dep)
		if err == nil && dep.GetVersion() == d.versionTag {
			switch dep.GetPhase() {
			case deployv1.Deployment_PHASE_SERVING:
				now := map[string]bool{}
				fresh := false
				for _, in := range dep.GetInstances() {
					key := in.GetId() + "@" + in.GetStartTime().AsTime().String()
					now[key] = true
					if in.GetState() == deployv1.Instance_STATE_HEALTHY && !before[key] {
						fresh = true
					}
				}
				if fresh || (before == nil && len(dep.GetInstances()) == 0) {
					d.lastInstances = now
					return nil
				}
			case deployv1.Deployment_PHASE_MISSING_INPUTS:
				return fmt.Errorf("the server needs values: %s (pylee secret set NAME --me)", strings.Join(dep.GetMissingInputs(), ", "))
			case deployv1.Deployment_PHASE_UNSUPPORTED, deployv1.Deployment_PHASE_FAILED, deployv1.Deployment_PHASE_ROLLED_BACK:
				return fmt.Errorf("the server does not run: %s: %s", short(dep.GetPhase().String()), dep.GetReason())
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the server did not start within 2 minutes: see pylee deploy logs")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watch releases a new version when a file under dirs changes, until ctx
// ends.
func (d *devRun) watch(ctx context.Context, dirs []string, doc map[string]any) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	for _, dir := range dirs {
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
	}
	d.printf("watching %s for changes (Ctrl-C to stop)\n", strings.Join(dirs, ", "))
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			return err
		case ev := <-w.Events:
			if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
				debounce = time.After(200 * time.Millisecond)
			}
		case <-debounce:
			debounce = nil
			d.printf("%s changed: restarting\n", time.Now().Format("15:04:05"))
			if err := d.release(ctx, doc, d.lastInstances); err != nil {
				d.printf("restart failed: %v\n", err)
				continue
			}
			d.printf("%s %s restarted\n", time.Now().Format("15:04:05"), d.versionTag)
		}
	}
}
