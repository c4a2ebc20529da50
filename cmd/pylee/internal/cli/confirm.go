package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Deleting a whole container (an organization, a server with its versions,
// a registry) cannot be undone, so the CLI asks first, the way
// `gh repo delete` does: at a terminal the person types the id; a script,
// whose standard input is no terminal, must say --yes, and without it the
// command fails before anything is sent. A script that forgot --yes thus
// fails loudly instead of hanging on a prompt or deleting unasked.

// yesFlag adds --yes/-y to a deleting command.
func yesFlag(c *cobra.Command, yes *bool) {
	c.Flags().BoolVarP(yes, "yes", "y", false, "delete without asking; required when standard input is not a terminal")
}

// confirmDelete returns nil when the deletion of name may go ahead: yes
// was given, or a person at the terminal typed id. what says what goes with
// it, e.g. "and all its versions".
func (g *globals) confirmDelete(yes bool, kind, name, id, what string) error {
	if yes {
		return nil
	}
	if !g.stdinTerminal {
		return fmt.Errorf("refusing to delete %s without confirmation: standard input is not a terminal; "+
			"pass --yes (-y) to delete it non-interactively", name)
	}
	fmt.Fprintf(g.stderr, "This deletes %s %s. It cannot be undone.\nType the %s id %q to confirm: ", printable(name), what, kind, printable(id))
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	answer := strings.TrimSpace(line)
	if !strings.HasSuffix(line, "\n") {
		fmt.Fprintln(g.stderr)
	}
	if answer != id {
		return fmt.Errorf("not confirmed (typed %q, not %q): %s was not deleted", answer, id, name)
	}
	return nil
}
