package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/pyleeai/pylee/cmd/pylee/internal/client"
	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/config"
)

// cliConfig is the user's CLI configuration: named contexts (server and
// token), like kubectl's, in $PYLEE_CONFIG_DIR or the user config dir.
type cliConfig struct {
	CurrentContext string                `json:"current-context,omitempty"`
	Contexts       map[string]cliContext `json:"contexts,omitempty"`
}

type cliContext struct {
	APIURL string `json:"api-url"`
	Token  string `json:"token"`
	User   string `json:"user,omitempty"`
	// Org is the organization commands use when --org is not given.
	Org string `json:"org,omitempty"`
}

func configPath() (string, error) {
	if d := os.Getenv("PYLEE_CONFIG_DIR"); d != "" {
		return filepath.Join(d, "config.yaml"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "pylee", "config.yaml"), nil
}

func loadConfig() (*cliConfig, error) {
	cfg := &cliConfig{Contexts: map[string]cliContext{}}
	p, err := configPath()
	if err != nil {
		return cfg, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]cliContext{}
	}
	return cfg, nil
}

func saveConfig(cfg *cliConfig) (string, error) {
	p, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	// The file holds tokens: owner only.
	return p, os.WriteFile(p, b, 0o600)
}

func newLoginCmd(g *globals) *cobra.Command {
	var name, org string
	cmd := &cobra.Command{
		Use:   "login --api-url URL --token TOKEN [--context NAME]",
		Short: "Check a token against a Pylee server and save both as a context",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.token.IsZero() {
				return errors.New("give the token with --token or PYLEE_TOKEN")
			}
			c, err := client.New(g.apiURL, g.token)
			if err != nil {
				return err
			}
			u := &orgsv1.User{}
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/users/me", nil, nil, u); err != nil {
				return err
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			cfg.Contexts[name] = cliContext{APIURL: g.apiURL, Token: g.token.Reveal(), User: u.Name, Org: orgID(org)}
			cfg.CurrentContext = name
			p, err := saveConfig(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "logged in to %s as %s; context %q saved in %s\n", printable(g.apiURL), printable(u.Name), name, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "context", "default", "name of the context to save")
	cmd.Flags().StringVar(&org, "org", "", "organization that commands use when they are given no --org")
	return cmd
}

func newContextCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "context", Short: "List and switch saved contexts"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List contexts", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			var names []string
			for n := range cfg.Contexts {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				mark := " "
				if n == cfg.CurrentContext {
					mark = "*"
				}
				fmt.Fprintf(g.stdout, "%s %s\t%s\t%s\n", mark, printable(n), printable(cfg.Contexts[n].APIURL), printable(cfg.Contexts[n].User))
			}
			return nil
		},
	}, &cobra.Command{
		Use: "use NAME", Short: "Make a context current", Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return fmt.Errorf("no context %q (see pylee context list)", args[0])
			}
			cfg.CurrentContext = args[0]
			_, err = saveConfig(cfg)
			return err
		},
	})
	return cmd
}

// applyContext fills the API URL and token from the current context where
// neither a flag nor the environment gave them.
func (g *globals) applyContext(urlSet, tokenSet bool) error {
	if urlSet && tokenSet {
		return nil
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil
	}
	g.contextOrg = ctx.Org
	if !urlSet {
		g.apiURL = ctx.APIURL
	}
	if !tokenSet && (!urlSet || g.apiURL == ctx.APIURL) {
		g.token = config.NewSecret(ctx.Token)
	}
	return nil
}
