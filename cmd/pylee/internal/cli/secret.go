package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/proto"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
)

// Secrets are write-only: no command prints a secret's value, takes it
// from the command line without a warning, or echoes it at a prompt. The
// API never returns one (the gateway's and deploy's resolution aside), and
// the CLI clears the field of every answer before printing, so a server
// that sent one by mistake would still not have it shown.

// maxValueBytes is the API's limit on a value (64 KiB).
const maxValueBytes = 64 << 10

// meUser is --user given without a value: the caller.
const meUser = "me"

// valueName is what the API accepts as a NAME: an environment variable name.
var valueName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkValueName(name string) error {
	if len(name) > 128 || !valueName.MatchString(name) {
		return fmt.Errorf("%q is not a valid name: want an environment variable name, [A-Za-z_][A-Za-z0-9_]*, at most 128 characters", name)
	}
	return nil
}

// scopeFlags say where a secret or variable is set: the organization,
// or one of its registries, servers or users.
type scopeFlags struct {
	org, registry, server, user string
	me                          bool
}

func (s *scopeFlags) register(c *cobra.Command) {
	optionalOrg(c, &s.org)
	c.Flags().StringVar(&s.registry, "registry", "", "at a registry of the organization (id or full name)")
	c.Flags().StringVar(&s.server, "server", "", "at a server of the organization (id or full name)")
	c.Flags().StringVar(&s.user, "user", "", "at a user in the organization (its id; me: yourself)")
	c.Flags().BoolVar(&s.me, "me", false, "at your own user scope in the organization (same as --user me)")
}

// userName returns users/{id} for --user ("me": the caller, asked of the API).
func (g *globals) userName(c *cobra.Command, user string) (string, error) {
	switch userID(user) {
	case "":
		return "", errors.New("--user: give the user's id, or me for yourself")
	case meUser:
	default:
		return "users/" + userID(user), nil
	}
	cl, err := g.client()
	if err != nil {
		return "", err
	}
	u := &orgsv1.User{}
	if err := cl.Do(c.Context(), http.MethodGet, "/v1/users/me", nil, nil, u); err != nil {
		return "", err
	}
	return u.Name, nil
}

// scope returns the name of the scope the flags give: orgs/{org}, or a
// registry, server or user in it.
func (g *globals) scope(c *cobra.Command, s *scopeFlags) (string, error) {
	given := 0
	for _, f := range []string{"registry", "server", "user", "me"} {
		if c.Flags().Changed(f) {
			given++
		}
	}
	if given > 1 {
		return "", errors.New("give at most one of --registry, --server, --user and --me")
	}
	if s.me {
		s.user = meUser
	}
	switch {
	case c.Flags().Changed("registry"):
		return g.ref(s.org, registryKind, s.registry)
	case c.Flags().Changed("server"):
		return g.ref(s.org, serverKind, s.server)
	}
	o, err := g.orgOf(s.org)
	if err != nil {
		return "", err
	}
	if !c.Flags().Changed("user") && !s.me {
		return orgPathOf(o), nil
	}
	u, err := g.userName(c, s.user)
	if err != nil {
		return "", err
	}
	return orgPathOf(o) + "/users/" + url.PathEscape(userID(u)), nil
}

// valueRef returns the name of NAME in collection (secrets, variables) at
// the flags' scope.
func (g *globals) valueRef(c *cobra.Command, s *scopeFlags, collection, name string) (string, error) {
	if err := checkValueName(name); err != nil {
		return "", err
	}
	scope, err := g.scope(c, s)
	if err != nil {
		return "", err
	}
	return scope + "/" + collection + "/" + name, nil
}

// shortName is the NAME of {scope}/secrets/{NAME}.
func shortName(name string) string {
	return name[strings.LastIndex(name, "/")+1:]
}

// readValue reads a value from standard input: without echo at a terminal
// (after a prompt on standard error), else all of it less one trailing
// newline.
func (g *globals) readValue(prompt string) (string, error) {
	var v string
	switch f, ok := g.stdin.(*os.File); {
	case g.stdinTerminal && ok && term.IsTerminal(int(f.Fd())):
		fmt.Fprint(g.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return "", fmt.Errorf("read the value: %w", err)
		}
		v = string(b)
	case g.stdinTerminal:
		// A terminal we cannot switch echo off on (a test's): one line.
		fmt.Fprint(g.stderr, prompt)
		line, err := bufio.NewReader(g.stdin).ReadString('\n')
		fmt.Fprintln(g.stderr)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the value: %w", err)
		}
		v = strings.TrimRight(line, "\r\n")
	default:
		b, err := io.ReadAll(io.LimitReader(g.stdin, maxValueBytes+3))
		if err != nil {
			return "", fmt.Errorf("read the value from standard input: %w", err)
		}
		v = string(b)
		if s, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(s, "\r")
		}
	}
	if v == "" {
		return "", errors.New("the value is empty: give it on standard input (or at the prompt)")
	}
	if len(v) > maxValueBytes {
		return "", errors.New("the value is over 64 KiB")
	}
	return v, nil
}

// setSecret sets name (a NAME) at scope to value and returns the secret
// without its value.
func (g *globals) setSecret(c *cobra.Command, scope, name, value string, expected *int64) (*secretsv1.Secret, error) {
	cl, err := g.client()
	if err != nil {
		return nil, err
	}
	q := url.Values{"secret_id": {name}}
	if expected != nil {
		q.Set("expected_version", strconv.FormatInt(*expected, 10))
	}
	out := &secretsv1.Secret{}
	if err := cl.Do(c.Context(), http.MethodPost, "/v1/"+scope+"/secrets", q, &secretsv1.Secret{Value: value}, out); err != nil {
		return nil, fmt.Errorf("set %s: %w", name, err)
	}
	clearValues(out)
	return out, nil
}

// secretCall is g.call for answers about secrets, with any value cleared.
func (g *globals) secretCall(c *cobra.Command, method, path string, body, out proto.Message, table func(w *tabwriter.Writer)) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	if err := cl.Do(c.Context(), method, path, nil, body, out); err != nil {
		return err
	}
	clearValues(out)
	return g.printMessage(out, table)
}

// clearValues empties the value of every secret in m.
func clearValues(m proto.Message) {
	var list []*secretsv1.Secret
	switch m := m.(type) {
	case *secretsv1.Secret:
		list = []*secretsv1.Secret{m}
	case *secretsv1.ListSecretsResponse:
		list = m.Secrets
	case *secretsv1.ListSecretVersionsResponse:
		list = m.Versions
	}
	for _, s := range list {
		s.Value = ""
	}
}

func secretRow(w *tabwriter.Writer, s *secretsv1.Secret) {
	row(w, shortName(s.Name), s.Scope, fmt.Sprint(s.Version), s.Fingerprint, fmtTime(s.UpdateTime), s.Creator)
}

func printSecret(s *secretsv1.Secret) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "NAME", "SCOPE", "VERSION", "FINGERPRINT", "UPDATED", "BY")
		secretRow(w, s)
	}
}

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Aliases: []string{"secrets"}, Short: "Manage secrets: write-only values for servers, at the organization, a registry, a server or a user"}
	var s scopeFlags
	var value string
	var expected int64
	set := &cobra.Command{
		Use:   "set NAME [--registry R | --server S | --user U | --me] [--expected-version N]",
		Short: "Set a secret from standard input (or a prompt without echo at a terminal): a new version",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkValueName(args[0]); err != nil {
				return err
			}
			scope, err := g.scope(c, &s)
			if err != nil {
				return err
			}
			v := value
			if c.Flags().Changed("value") {
				fmt.Fprintln(g.stderr, "Warning: a value given with --value may be kept in your shell history and seen in process listings; prefer standard input")
				if v == "" {
					return errors.New("--value is empty")
				}
			} else if v, err = g.readValue("Value of " + args[0] + " (not shown): "); err != nil {
				return err
			}
			var exp *int64
			if c.Flags().Changed("expected-version") {
				exp = &expected
			}
			out, err := g.setSecret(c, scope, args[0], v, exp)
			if err != nil {
				return err
			}
			return g.printMessage(out, printSecret(out))
		},
	}
	set.Flags().StringVar(&value, "value", "", "the value (kept in shell history and process listings: prefer standard input)")
	set.Flags().Int64Var(&expected, "expected-version", 0, "set only if this is still the current version (0: only if not set yet)")
	list := &cobra.Command{
		Use: "list [--registry R | --server S | --user U | --me]", Short: "List the secrets set at a scope (never their values)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			scope, err := g.scope(c, &s)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			whole := &secretsv1.ListSecretsResponse{}
			for tok := ""; ; {
				page := &secretsv1.ListSecretsResponse{}
				q := url.Values{"page_size": {"1000"}}
				if tok != "" {
					q.Set("page_token", tok)
				}
				if err := cl.Do(c.Context(), http.MethodGet, "/v1/"+scope+"/secrets", q, nil, page); err != nil {
					return err
				}
				whole.Secrets = append(whole.Secrets, page.Secrets...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
			}
			clearValues(whole)
			return g.printMessage(whole, func(w *tabwriter.Writer) {
				row(w, "NAME", "SCOPE", "VERSION", "FINGERPRINT", "UPDATED", "BY")
				for _, x := range whole.Secrets {
					secretRow(w, x)
				}
			})
		},
	}
	versions := &cobra.Command{
		Use: "versions NAME [scope flags]", Short: "List a secret's versions, newest first", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.valueRef(c, &s, "secrets", args[0])
			if err != nil {
				return err
			}
			resp := &secretsv1.ListSecretVersionsResponse{}
			return g.secretCall(c, http.MethodGet, "/v1/"+name+":versions", nil, resp, func(w *tabwriter.Writer) {
				row(w, "VERSION", "FINGERPRINT", "SET", "BY")
				for _, v := range resp.Versions {
					row(w, fmt.Sprint(v.Version), v.Fingerprint, fmtTime(v.UpdateTime), v.Creator)
				}
			})
		},
	}
	var version int64
	restore := &cobra.Command{
		Use: "restore NAME --version N [scope flags]", Short: "Make an earlier version's value current again, as a new version", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.valueRef(c, &s, "secrets", args[0])
			if err != nil {
				return err
			}
			out := &secretsv1.Secret{}
			return g.secretCall(c, http.MethodPost, "/v1/"+name+":restore", &secretsv1.RestoreSecretVersionRequest{Version: version}, out, printSecret(out))
		},
	}
	restore.Flags().Int64Var(&version, "version", 0, "the version to restore (required)")
	_ = restore.MarkFlagRequired("version")
	var yes bool
	remove := &cobra.Command{
		Use: "remove NAME [scope flags] [--yes]", Aliases: []string{"delete"}, Short: "Delete a secret with all its versions (asks first)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.removeValue(c, &s, "secret", "secrets", args[0], yes)
		},
	}
	yesFlag(remove, &yes)
	cmds := []*cobra.Command{set, list, versions, restore, remove, newSecretImportCmd(g, &s)}
	for _, c := range cmds {
		s.register(c)
	}
	cmd.AddCommand(append(cmds, newSecretExplainCmd(g))...)
	return cmd
}

// removeValue deletes NAME, a secret or variable, with all its versions,
// once confirmed.
func (g *globals) removeValue(c *cobra.Command, s *scopeFlags, kind, collection, id string, yes bool) error {
	name, err := g.valueRef(c, s, collection, id)
	if err != nil {
		return err
	}
	if _, err := g.client(); err != nil {
		return err
	}
	if err := g.confirmDelete(yes, kind, name, id, "and all its versions"); err != nil {
		return err
	}
	return g.call(c, http.MethodDelete, "/v1/"+name, nil, nil, nil, func(w *tabwriter.Writer) { row(w, "deleted "+name) })
}

func newSecretExplainCmd(g *globals) *cobra.Command {
	var s scopeFlags
	cmd := &cobra.Command{
		Use:   "explain --registry R --server S [--user U | --me]",
		Short: "Show what a server gets in a registry for a user: each name's scope and what it overrides, secrets masked, and the declared inputs nothing sets",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			reg, err := g.ref(s.org, registryKind, s.registry)
			if err != nil {
				return err
			}
			if s.server == "" {
				return errors.New("give the server with --server")
			}
			var q url.Values
			if c.Flags().Changed("user") {
				u, err := g.userName(c, s.user)
				if err != nil {
					return err
				}
				q = url.Values{"user": {u}}
			}
			resp := &secretsv1.ExplainResolutionResponse{}
			cl, err := g.client()
			if err != nil {
				return err
			}
			path := "/v1/" + reg + "/servers/" + url.PathEscape(serverID(s.server)) + ":explainResolution"
			if err := cl.Do(c.Context(), http.MethodGet, path, q, nil, resp); err != nil {
				return err
			}
			return g.printMessage(resp, func(w *tabwriter.Writer) { printExplain(w, resp) })
		},
	}
	optionalOrg(cmd, &s.org)
	cmd.Flags().StringVar(&s.registry, "registry", "", "registry id or full name (required)")
	cmd.Flags().StringVar(&s.server, "server", "", "server id or full name (required)")
	cmd.Flags().StringVar(&s.user, "user", "", "for this user (its id; me: yourself); default: you, when you are a person")
	_ = cmd.MarkFlagRequired("registry")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}

func printExplain(w *tabwriter.Writer, resp *secretsv1.ExplainResolutionResponse) {
	row(w, "NAME", "SCOPE", "VERSION", "VALUE", "OVERRIDES")
	for _, v := range resp.Values {
		row(w, v.Name, v.Scope, fmt.Sprint(v.Version), v.MaskedValue, strings.Join(v.Overrides, ", "))
	}
	_ = w.Flush() // a failed write shows on the next
	row(w)
	pinned := resp.PinnedVersion
	if pinned == "" {
		pinned = "none"
	}
	row(w, "pinned version: "+pinned)
	if len(resp.Inputs) > 0 {
		row(w, "INPUT", "KIND", "REQUIRED", "SECRET", "SET")
		for _, in := range resp.Inputs {
			row(w, in.Name, in.Kind, yesNo(in.IsRequired), yesNo(in.IsSecret), yesNo(in.Set))
		}
	}
	_ = w.Flush()
	missing := "none"
	if len(resp.Missing) > 0 {
		missing = strings.Join(resp.Missing, ", ")
	}
	row(w, "missing: "+missing)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// envEntry is a KEY=VALUE line of a .env file.
type envEntry struct{ name, value string }

// parseEnvFile reads KEY=VALUE lines: blank lines and # comments skipped,
// an `export ` prefix allowed, one pair of matching quotes around a value
// stripped, nothing else interpreted. An error names the line, never what
// is on it: a malformed line may well be a value.
func parseEnvFile(b []byte) ([]envEntry, error) {
	var out []envEntry
	seen := map[string]int{}
	for i, line := range strings.Split(strings.TrimPrefix(string(b), "\ufeff"), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return nil, fmt.Errorf("line %d: not KEY=VALUE", n)
		}
		if len(key) > 128 || !valueName.MatchString(key) {
			return nil, fmt.Errorf("line %d: the name is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128 characters)", n)
		}
		val = strings.TrimSpace(val)
		if val != "" && (val[0] == '"' || val[0] == '\'') {
			if len(val) < 2 || val[len(val)-1] != val[0] {
				return nil, fmt.Errorf("line %d: %s: the value's opening quote is not closed at the end of the line (values on several lines are not supported)", n, key)
			}
			val = val[1 : len(val)-1]
		}
		switch first, dup := seen[key]; {
		case dup:
			return nil, fmt.Errorf("line %d: %s is already set on line %d", n, key, first)
		case val == "":
			return nil, fmt.Errorf("line %d: %s has an empty value", n, key)
		case len(val) > maxValueBytes:
			return nil, fmt.Errorf("line %d: %s: the value is over 64 KiB", n, key)
		}
		seen[key] = n
		out = append(out, envEntry{key, val})
	}
	if len(out) == 0 {
		return nil, errors.New("no KEY=VALUE lines")
	}
	return out, nil
}

func newSecretImportCmd(g *globals, s *scopeFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "import --from-env-file FILE [--registry R | --server S | --user U | --me]",
		Short: "Set each KEY=VALUE of a .env file as a secret (a file with a bad line is refused whole)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			entries, err := parseEnvFile(b)
			if err != nil {
				return fmt.Errorf("%s: %w; nothing was set", file, err)
			}
			scope, err := g.scope(c, s)
			if err != nil {
				return err
			}
			done := &secretsv1.ListSecretsResponse{}
			var set []string
			for _, e := range entries {
				out, err := g.setSecret(c, scope, e.name, e.value, nil)
				if err != nil {
					return fmt.Errorf("%w; set before it: %d of %d (%s)", err, len(set), len(entries), strings.Join(set, ", "))
				}
				done.Secrets = append(done.Secrets, out)
				set = append(set, e.name)
			}
			return g.printMessage(done, func(w *tabwriter.Writer) {
				row(w, "NAME", "SCOPE", "VERSION", "FINGERPRINT", "UPDATED", "BY")
				for _, x := range done.Secrets {
					secretRow(w, x)
				}
				_ = w.Flush()
				row(w, fmt.Sprintf("set %d secrets in %s", len(done.Secrets), scope))
			})
		},
	}
	cmd.Flags().StringVar(&file, "from-env-file", "", "the .env file (required)")
	_ = cmd.MarkFlagRequired("from-env-file")
	return cmd
}

func printVariable(v *secretsv1.Variable) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		row(w, "NAME", "SCOPE", "VERSION", "VALUE", "UPDATED", "BY")
		variableRow(w, v)
	}
}

func variableRow(w *tabwriter.Writer, v *secretsv1.Variable) {
	row(w, shortName(v.Name), v.Scope, fmt.Sprint(v.Version), v.Value, fmtTime(v.UpdateTime), v.Creator)
}

func newVariableCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "variable", Aliases: []string{"variables"}, Short: "Manage variables: plain configuration for servers, at the organization, a registry, a server or a user"}
	var s scopeFlags
	var fromStdin bool
	var expected int64
	set := &cobra.Command{
		Use:   "set NAME (VALUE | --from-stdin) [--registry R | --server S | --user U | --me] [--expected-version N]",
		Short: "Set a variable: a new version",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkValueName(args[0]); err != nil {
				return err
			}
			if fromStdin == (len(args) == 2) {
				return errors.New("give the value either as an argument or on standard input with --from-stdin")
			}
			scope, err := g.scope(c, &s)
			if err != nil {
				return err
			}
			var v string
			if fromStdin {
				if v, err = g.readValue("Value of " + args[0] + ": "); err != nil {
					return err
				}
			} else {
				v = args[1]
			}
			q := url.Values{"variable_id": {args[0]}}
			if c.Flags().Changed("expected-version") {
				q.Set("expected_version", strconv.FormatInt(expected, 10))
			}
			out := &secretsv1.Variable{}
			return g.call(c, http.MethodPost, "/v1/"+scope+"/variables", q, &secretsv1.Variable{Value: v}, out, printVariable(out))
		},
	}
	set.Flags().BoolVar(&fromStdin, "from-stdin", false, "read the value from standard input (less one trailing newline)")
	set.Flags().Int64Var(&expected, "expected-version", 0, "set only if this is still the current version (0: only if not set yet)")
	get := &cobra.Command{
		Use: "get NAME [scope flags]", Short: "Print a variable's value (-o json: the variable)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, err := g.valueRef(c, &s, "variables", args[0])
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			v := &secretsv1.Variable{}
			if err := cl.Do(c.Context(), http.MethodGet, "/v1/"+name, nil, nil, v); err != nil {
				return err
			}
			if g.output != "table" {
				return g.printMessage(v, nil)
			}
			return g.writeDocument([]byte(v.Value+"\n"), false)
		},
	}
	list := &cobra.Command{
		Use: "list [--registry R | --server S | --user U | --me]", Short: "List the variables set at a scope, with their values", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			scope, err := g.scope(c, &s)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			whole := &secretsv1.ListVariablesResponse{}
			for tok := ""; ; {
				page := &secretsv1.ListVariablesResponse{}
				q := url.Values{"page_size": {"1000"}}
				if tok != "" {
					q.Set("page_token", tok)
				}
				if err := cl.Do(c.Context(), http.MethodGet, "/v1/"+scope+"/variables", q, nil, page); err != nil {
					return err
				}
				whole.Variables = append(whole.Variables, page.Variables...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
			}
			return g.printMessage(whole, func(w *tabwriter.Writer) {
				row(w, "NAME", "SCOPE", "VERSION", "VALUE", "UPDATED", "BY")
				for _, v := range whole.Variables {
					variableRow(w, v)
				}
			})
		},
	}
	var yes bool
	remove := &cobra.Command{
		Use: "remove NAME [scope flags] [--yes]", Aliases: []string{"delete"}, Short: "Delete a variable with all its versions (asks first)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.removeValue(c, &s, "variable", "variables", args[0], yes)
		},
	}
	yesFlag(remove, &yes)
	cmds := []*cobra.Command{set, get, list, remove}
	for _, c := range cmds {
		s.register(c)
	}
	cmd.AddCommand(cmds...)
	return cmd
}
