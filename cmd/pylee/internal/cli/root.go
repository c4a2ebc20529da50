// Package cli holds the commands of the pylee binary.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	"github.com/pyleeai/pylee/kit/config"
)

// Version is set at build time with -ldflags "-X …/cli.Version=v1.2.3".
var Version = "dev"

// globals are the flags every client command shares.
type globals struct {
	// contextOrg is the organization of the current login context.
	contextOrg string
	apiURL     string
	token      config.Secret
	output     string
	stdin      io.Reader
	// stdinTerminal says whether a person can answer on stdin.
	stdinTerminal bool
	stdout        io.Writer
	stderr        io.Writer
}

// Streams are what a command line reads and writes.
type Streams struct {
	In io.Reader
	// InTerminal says whether In is an interactive terminal, where a
	// destructive command asks for confirmation.
	InTerminal  bool
	Out, ErrOut io.Writer
}

// NewRoot returns the pylee command tree writing to stdout and stderr, with
// no standard input (destructive commands then need --yes).
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	return newRoot(Streams{In: strings.NewReader(""), Out: stdout, ErrOut: stderr})
}

func newRoot(s Streams) *cobra.Command {
	stdout, stderr := s.Out, s.ErrOut
	g := &globals{stdin: s.In, stdinTerminal: s.InTerminal, stdout: stdout, stderr: stderr}
	if g.stdin == nil {
		g.stdin = strings.NewReader("")
	}
	root := &cobra.Command{
		Use:           "pylee",
		Short:         "Pylee runs MCP servers for an organization: registries, access, secrets, deployments, audit and the MCP gateway.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.BindEnv(cmd.Flags()); err != nil {
				return err
			}
			if cmd.Name() == "login" {
				return nil
			}
			return g.applyContext(cmd.Flags().Changed("api-url"), cmd.Flags().Changed("token"))
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.apiURL, "api-url", "http://localhost:8080", "URL of the Pylee REST API (env PYLEE_API_URL)")
	pf.Var(config.SecretValue{S: &g.token}, "token", "API token (env PYLEE_TOKEN; default: the admin token in $PYLEE_DATA_DIR)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	root.AddCommand(newUpCmd(g), newServeCmd(g), newMigrateCmd(g), newOrgCmd(g), newAuditCmd(g), newVersionCmd(g),
		newLoginCmd(g), newContextCmd(g), newWhoamiCmd(g), newServiceAccountCmd(g), newTokenCmd(g), newBindingCmd(g),
		newTeamCmd(g), newRoleCmd(g), newMemberCmd(g), newInviteCmd(g), newServerCmd(g), newRegistryCmd(g), newApprovalCmd(g), newSecretCmd(g), newVariableCmd(g),
		newSecretsAdminCmd(g), newDeployCmd(g), newProxyCmd(g), newConnectCmd(g), newDevCmd(g))
	return root
}

// Execute runs the command line with the process's standard input and
// returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return ExecuteStreams(ctx, args, Streams{In: os.Stdin, InTerminal: isTerminal(os.Stdin), Out: stdout, ErrOut: stderr})
}

// ExecuteStreams runs the command line on s and returns the exit code.
func ExecuteStreams(ctx context.Context, args []string, s Streams) int {
	root := newRoot(s)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		// Error messages quote what was sent, and the server's answer.
		fmt.Fprintln(s.ErrOut, "Error:", printable(oneLine(err)))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// client returns an API client, falling back to the bootstrap admin token of
// a local `pylee up` when no token is given.
func (g *globals) client() (*client.Client, error) {
	switch g.output {
	case "table", "json", "yaml":
	default:
		return nil, fmt.Errorf("--output %q: want table, json or yaml", g.output)
	}
	tok := g.token
	if tok.IsZero() {
		dir := os.Getenv("PYLEE_DATA_DIR")
		if dir == "" {
			dir = defaultDataDir
		}
		if b, err := os.ReadFile(app.TokenFile(dir)); err == nil {
			tok = config.NewSecret(strings.TrimSpace(string(b)))
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", filepath.Clean(app.TokenFile(dir)), err)
		}
	}
	return client.New(g.apiURL, tok)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of pylee",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(g.stdout, "pylee %s\n", Version)
			return nil
		},
	}
}

// ExecuteCapture runs args and returns what they printed and the exit code;
// for tests. Standard input is empty and no terminal, so nothing waits for
// an answer.
func ExecuteCapture(args []string) (string, string, int) {
	var out, errOut strings.Builder
	code := ExecuteStreams(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}
