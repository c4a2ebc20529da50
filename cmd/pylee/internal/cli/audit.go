package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the audit log",
	}
	cmd.AddCommand(newAuditListCmd(g), newAuditTailCmd(g), newAuditExportCmd(g), newAuditVerifyCmd(g), newAuditPublicKeyCmd(g))
	return cmd
}

// auditFilter holds the filter flags of list and tail.
type auditFilter struct {
	actor, action, resource, outcome, since, until string
}

func (f *auditFilter) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.actor, "actor", "", "only events of this principal, e.g. users/admin")
	cmd.Flags().StringVar(&f.action, "action", "", "only actions starting with this, e.g. orgs.organization.")
	cmd.Flags().StringVar(&f.resource, "resource", "", "only resources starting with this, e.g. orgs/acme")
	cmd.Flags().StringVar(&f.outcome, "outcome", "", "only this outcome: ok, denied or error")
	cmd.Flags().StringVar(&f.since, "since", "", "only events at or after this RFC 3339 time or duration ago (e.g. 1h)")
	cmd.Flags().StringVar(&f.until, "until", "", "only events before this RFC 3339 time")
}

func (f *auditFilter) expr() (string, error) {
	var terms []string
	q := strconv.Quote
	if f.actor != "" {
		terms = append(terms, "actor = "+q(f.actor))
	}
	if f.action != "" {
		terms = append(terms, "action : "+q(f.action))
	}
	if f.resource != "" {
		terms = append(terms, "resource : "+q(f.resource))
	}
	if f.outcome != "" {
		terms = append(terms, "outcome = "+q(f.outcome))
	}
	if f.since != "" {
		t, err := parseWhen(f.since)
		if err != nil {
			return "", fmt.Errorf("--since: %w", err)
		}
		terms = append(terms, "event_time >= "+q(t))
	}
	if f.until != "" {
		t, err := parseWhen(f.until)
		if err != nil {
			return "", fmt.Errorf("--until: %w", err)
		}
		terms = append(terms, "event_time < "+q(t))
	}
	return strings.Join(terms, " AND "), nil
}

func parseWhen(s string) (string, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return "", fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return s, nil
}

func orgFlag(cmd *cobra.Command, org *string) {
	cmd.Flags().StringVar(org, "org", "", "organization id (required)")
	_ = cmd.MarkFlagRequired("org")
}

func eventsPath(org string) string {
	return "/v1/orgs/" + url.PathEscape(orgID(org)) + "/events"
}

func (g *globals) printEvents(resp *auditv1.ListEventsResponse, header bool) error {
	return g.printMessage(resp, func(w *tabwriter.Writer) {
		if header {
			row(w, "SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "CHANGES")
		}
		for _, ev := range resp.Events {
			var ch []string
			for _, c := range ev.Changes {
				ch = append(ch, c.Field)
			}
			row(w, strconv.FormatInt(ev.Sequence, 10), fmtTime(ev.EventTime), ev.Actor.GetPrincipal(), ev.Action, ev.Resource, ev.Outcome, strings.Join(ch, ","))
		}
		if header {
			morePages(w, resp.NextPageToken)
		}
	})
}

// auditQuery returns a client and the list query of the filter flags.
func (g *globals) auditQuery(f *auditFilter) (*client.Client, url.Values, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	filter, err := f.expr()
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if filter != "" {
		q.Set("filter", filter)
	}
	return c, q, nil
}

func newAuditListCmd(g *globals) *cobra.Command {
	var org, pageToken string
	var pageSize int32
	var f auditFilter
	cmd := &cobra.Command{
		Use:   "list --org ORG",
		Short: "List an organization's audit events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, q, err := g.auditQuery(&f)
			if err != nil {
				return err
			}
			if pageSize > 0 {
				q.Set("page_size", strconv.Itoa(int(pageSize)))
			}
			if pageToken != "" {
				q.Set("page_token", pageToken)
			}
			resp := &auditv1.ListEventsResponse{}
			if err := c.Do(cmd.Context(), http.MethodGet, eventsPath(org), q, nil, resp); err != nil {
				return err
			}
			return g.printEvents(resp, true)
		},
	}
	orgFlag(cmd, &org)
	f.register(cmd)
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "events per page (default 50, at most 1000)")
	cmd.Flags().StringVar(&pageToken, "page-token", "", "token of the page to show")
	return cmd
}

func newAuditTailCmd(g *globals) *cobra.Command {
	var org string
	var interval time.Duration
	var f auditFilter
	cmd := &cobra.Command{
		Use:   "tail --org ORG",
		Short: "Follow an organization's new audit events until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, q, err := g.auditQuery(&f)
			if err != nil {
				return err
			}
			q.Set("page_size", "100")
			ctx := cmd.Context()
			var last int64 = -1
			header := true
			for {
				resp := &auditv1.ListEventsResponse{}
				if err := c.Do(ctx, http.MethodGet, eventsPath(org), q, nil, resp); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				// Newest first from the API; print oldest first, only new ones.
				var fresh []*auditv1.Event
				for i := len(resp.Events) - 1; i >= 0; i-- {
					if ev := resp.Events[i]; ev.Sequence > last {
						fresh = append(fresh, ev)
					}
				}
				if len(fresh) > 0 {
					if err := g.printEvents(&auditv1.ListEventsResponse{Events: fresh}, header); err != nil {
						return err
					}
					header = false
					last = fresh[len(fresh)-1].Sequence
				} else if last < 0 {
					last = 0
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	orgFlag(cmd, &org)
	f.register(cmd)
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to look for new events")
	return cmd
}

func newAuditExportCmd(g *globals) *cobra.Command {
	var org, format, out string
	cmd := &cobra.Command{
		Use:   "export --org ORG --format ndjson|csv -o FILE",
		Short: "Download an organization's whole audit log (NDJSON ends with a signed checkpoint)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "ndjson" && format != "csv" {
				return fmt.Errorf("--format %q: want ndjson or csv", format)
			}
			if out == "" {
				return errors.New("give the file to write with -o FILE (or -o - for standard output)")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			// To standard output the export is written as received, unless
			// that is a terminal, which gets it escaped (writeDocument).
			w := g.stdout
			var shown *bytes.Buffer
			var f *os.File
			if out != "-" {
				if f, err = os.Create(out); err != nil {
					return err
				}
				w = f
			} else if isTerminal(g.stdout) {
				shown = &bytes.Buffer{}
				w = shown
			}
			n, err := c.Download(cmd.Context(), eventsPath(org)+":export", url.Values{"format": {format}}, w)
			if shown != nil && err == nil {
				err = g.writeDocument(shown.Bytes(), format == "ndjson")
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(out)
				}
			}
			if err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintf(g.stderr, "wrote %d bytes to %s\n", n, out)
			}
			return nil
		},
	}
	orgFlag(cmd, &org)
	cmd.Flags().StringVar(&format, "format", "ndjson", "ndjson (verifiable) or csv")
	// Here -o/--output names the file to write (it shadows the global output
	// format, which an export does not use).
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (- for standard output)")
	return cmd
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var file, key string
	cmd := &cobra.Command{
		Use:   "verify --file FILE --public-key KEY",
		Short: "Verify an NDJSON audit export offline: the hash chain, every checkpoint signature, and that it ends at a signed checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := auditlog.ParsePublicKey(key)
			if err != nil {
				return fmt.Errorf("--public-key: %w", err)
			}
			var r io.Reader = os.Stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			res, err := auditlog.VerifyExport(r, pub)
			if err != nil {
				return fmt.Errorf("verification failed: %w", err)
			}
			fmt.Fprintf(g.stdout, "ok: %d events of organization %s verify; %d signed checkpoints; head %s\n",
				res.Events, printable(res.Organization), res.Checkpoints, printable(res.Head))
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "NDJSON export to verify (- for standard input)")
	cmd.Flags().StringVar(&key, "public-key", "", "checkpoint public key, as `pylee audit public-key` prints it")
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagRequired("public-key")
	return cmd
}

func newAuditPublicKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the public key that verifies audit checkpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			resp := &auditv1.GetPublicKeyResponse{}
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/audit/publicKey", nil, nil, resp); err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, printable(resp.PublicKey))
			return err
		},
	}
}
