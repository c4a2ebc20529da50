package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	deployv1 "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// deploymentRef is the deployment of server in registry.
func (g *globals) deploymentRef(org, registry, server string) (string, error) {
	reg, err := g.ref(org, registryKind, registry)
	if err != nil {
		return "", err
	}
	r, err := inRegistry(reg)
	if err != nil {
		return "", err
	}
	return r.String() + "/deployments/" + serverID(server), nil
}

func short(s string) string { return strings.TrimPrefix(strings.TrimPrefix(s, "PHASE_"), "STATE_") }

func arms(d *deployv1.Deployment) string {
	var parts []string
	for _, a := range d.GetArms() {
		parts = append(parts, fmt.Sprintf("%s %d%% (%s)", a.GetVersion(), a.GetWeightPercent(), strings.ToLower(strings.TrimPrefix(a.GetRole().String(), "ROLE_"))))
	}
	return strings.Join(parts, ", ")
}

func printDeployment(d *deployv1.Deployment) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "NAME", "PHASE", "VERSION", "RUNTIME", "TRAFFIC", "ROLLOUT", "REASON")
		ro := d.GetRollout()
		rollout := ""
		if ro.GetState() != 0 {
			rollout = fmt.Sprintf("%s %s→%s step %d/%d", short(ro.GetState().String()), ro.GetFromVersion(), ro.GetToVersion(), ro.GetStep(), ro.GetSteps())
		}
		row(w, d.GetName(), short(d.GetPhase().String()), d.GetVersion(), d.GetRuntime(), arms(d), rollout, d.GetReason())
		if len(d.GetInstances()) > 0 {
			row(w)
			row(w, "INSTANCE", "VERSION", "STATE", "USER", "RESTARTS", "LAST EXIT", "HEALTH")
			for _, in := range d.GetInstances() {
				health := "ok"
				if in.GetHealthError() != "" {
					health = in.GetHealthError()
				}
				row(w, in.GetId(), in.GetVersion(), short(in.GetState().String()), in.GetUser(), fmt.Sprint(in.GetRestarts()), in.GetLastExit(), health)
			}
		}
		if len(d.GetMissingInputs()) > 0 {
			row(w)
			row(w, "MISSING INPUTS", strings.Join(d.GetMissingInputs(), ", "))
		}
	}
}

func newDeployCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "deploy", Short: "See and steer deployments: what runs for each registry entry"}
	var org, registry, server, reason, instance string
	var tail int32
	flags := func(c *cobra.Command, withServer bool) {
		optionalOrg(c, &org)
		c.Flags().StringVar(&registry, "registry", "", "registry id or name (required)")
		_ = c.MarkFlagRequired("registry")
		if withServer {
			c.Flags().StringVar(&server, "server", "", "server id (required)")
			_ = c.MarkFlagRequired("server")
		}
	}
	list := &cobra.Command{
		Use: "list --registry R", Short: "List a registry's deployments", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registry)
			if err != nil {
				return err
			}
			resp := &deployv1.ListDeploymentsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+reg+"/deployments", url.Values{"page_size": {"1000"}}, nil, resp, func(w *tabwriter.Writer) {
				row(w, "SERVER", "PHASE", "VERSION", "RUNTIME", "TRAFFIC", "INSTANCES", "REASON")
				for _, d := range resp.GetDeployments() {
					row(w, serverID(d.GetServer()), short(d.GetPhase().String()), d.GetVersion(), d.GetRuntime(), arms(d),
						fmt.Sprint(len(d.GetInstances())), d.GetReason())
				}
			})
		},
	}
	flags(list, false)
	status := &cobra.Command{
		Use: "status --registry R --server S", Short: "Show a deployment: phase, versions and weights, rollout, instances", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := g.deploymentRef(org, registry, server)
			if err != nil {
				return err
			}
			d := &deployv1.Deployment{}
			return g.call(c, http.MethodGet, "/v1/"+name, nil, nil, d, printDeployment(d))
		},
	}
	flags(status, true)
	rollback := &cobra.Command{
		Use: "rollback --registry R --server S", Short: "Roll back to the previous version (instant while it is warm)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := g.deploymentRef(org, registry, server)
			if err != nil {
				return err
			}
			d := &deployv1.Deployment{}
			return g.call(c, http.MethodPost, "/v1/"+name+":rollback", nil, &deployv1.RollbackDeploymentRequest{Reason: reason}, d, printDeployment(d))
		},
	}
	flags(rollback, true)
	rollback.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	restart := &cobra.Command{
		Use: "restart --registry R --server S", Short: "Restart a deployment's instances (new ones first, then the old drained)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := g.deploymentRef(org, registry, server)
			if err != nil {
				return err
			}
			d := &deployv1.Deployment{}
			return g.call(c, http.MethodPost, "/v1/"+name+":restart", nil, &deployv1.RestartDeploymentRequest{}, d, printDeployment(d))
		},
	}
	flags(restart, true)
	logs := &cobra.Command{
		Use: "logs --registry R --server S", Short: "Show the recent standard error of a deployment's instances (secret values redacted)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := g.deploymentRef(org, registry, server)
			if err != nil {
				return err
			}
			q := url.Values{}
			if instance != "" {
				q.Set("instance", instance)
			}
			if tail > 0 {
				q.Set("tail_lines", fmt.Sprint(tail))
			}
			resp := &deployv1.GetDeploymentLogsResponse{}
			return g.call(c, http.MethodGet, "/v1/"+name+":logs", q, nil, resp, func(w *tabwriter.Writer) {
				for _, in := range resp.GetInstances() {
					fmt.Fprintf(w, "==> %s (%s)", in.GetInstance(), in.GetVersion())
					if in.GetDroppedLines() > 0 {
						fmt.Fprintf(w, ", %d earlier lines dropped", in.GetDroppedLines())
					}
					fmt.Fprintln(w)
					for _, l := range in.GetLines() {
						fmt.Fprintln(w, l)
					}
				}
			})
		},
	}
	flags(logs, true)
	logs.Flags().StringVar(&instance, "instance", "", "only this instance")
	logs.Flags().Int32Var(&tail, "tail", 200, "newest lines per instance")
	cmd.AddCommand(list, status, rollback, restart, logs)
	return cmd
}

// newServerDeployCmd is `pylee server deploy`: pin a version (through
// approval when the registry needs it) and follow its rollout.
func newServerDeployCmd(g *globals) *cobra.Command {
	var org, registry, server, version, reason string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "deploy --registry R --server S --version V",
		Short: "Pin a version in a registry and follow its rollout; fails if it is rolled back or cannot run",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(org, registryKind, registry)
			if err != nil {
				return err
			}
			entry, err := entryName(reg, server)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			resp := &registryv1.PinEntryResponse{}
			if err := cl.Do(c.Context(), http.MethodPut, "/v1/"+entry, nil, &registryv1.PinEntryRequest{Version: version, Reason: reason}, resp); err != nil {
				return err
			}
			out := c.OutOrStdout()
			if a := resp.GetApproval(); a != nil {
				fmt.Fprintf(out, "%s needs approval: %s (pylee approval approve %s); the rollout starts once it applies\n",
					reg, a.GetName(), a.GetName())
				return nil
			}
			fmt.Fprintf(out, "pinned %s to %s (revision %d)\n", entry, version, resp.GetEntry().GetRevision())
			name := strings.Replace(entry, "/entries/", "/deployments/", 1)
			deadline := time.Now().Add(timeout)
			last := ""
			for {
				d := &deployv1.Deployment{}
				err := cl.Do(c.Context(), http.MethodGet, "/v1/"+name, nil, nil, d)
				if err == nil && d.GetRevision() >= resp.GetEntry().GetRevision() {
					line := fmt.Sprintf("%s  %s", short(d.GetPhase().String()), arms(d))
					if ro := d.GetRollout(); ro.GetStrategy() == "canary" && ro.GetState() == deployv1.Rollout_STATE_PROGRESSING {
						line += fmt.Sprintf("  step %d/%d", ro.GetStep(), ro.GetSteps())
					}
					if line != last {
						fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05"), line)
						last = line
					}
					switch d.GetPhase() {
					case deployv1.Deployment_PHASE_SERVING:
						if ro := d.GetRollout(); d.GetVersion() == version && ro.GetToVersion() == version && ro.GetState() == deployv1.Rollout_STATE_COMPLETE {
							fmt.Fprintf(out, "%s serves %s\n", name, version)
							return nil
						}
					case deployv1.Deployment_PHASE_ROLLED_BACK, deployv1.Deployment_PHASE_FAILED, deployv1.Deployment_PHASE_MISSING_INPUTS,
						deployv1.Deployment_PHASE_UNSUPPORTED:
						return fmt.Errorf("%s: %s: %s", name, short(d.GetPhase().String()), d.GetReason())
					}
					if d.GetVersion() != version && d.GetRevision() > resp.GetEntry().GetRevision() {
						return fmt.Errorf("%s: the entry now pins %s (%s)", name, d.GetVersion(), d.GetReason())
					}
				}
				if time.Now().After(deadline) {
					return errors.New("the rollout did not finish within --timeout; follow it with pylee deploy status")
				}
				select {
				case <-c.Context().Done():
					return c.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	optionalOrg(c, &org)
	c.Flags().StringVar(&registry, "registry", "", "registry id or name (required)")
	_ = c.MarkFlagRequired("registry")
	c.Flags().StringVar(&server, "server", "", "server id (required)")
	_ = c.MarkFlagRequired("server")
	c.Flags().StringVar(&version, "version", "", "exact version (required)")
	_ = c.MarkFlagRequired("version")
	c.Flags().StringVar(&reason, "reason", "", "why; shown to approvers and in the audit log")
	c.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "give up following the rollout after this long")
	return c
}
