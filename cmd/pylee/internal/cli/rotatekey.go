package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/services/secrets"
)

func newSecretsAdminCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Operate the secrets service's storage (see pylee secret for values)"}
	var cfg app.Config
	rotate := &cobra.Command{
		Use:   "rotate-key --keyring-key NEW [--keyring-previous-key OLD]",
		Short: "Re-wrap every data key of the built-in keyring under a new key-encryption key",
		Long: "Without downtime: 1. restart the secrets replicas with --keyring-key NEW --keyring-previous-key OLD\n" +
			"(they open either wrapping and seal new values under NEW); 2. run this against the secrets\n" +
			"database (batches of 200, one transaction each; it can be run again); 3. restart them with\n" +
			"--keyring-key NEW alone. Without --keyring-previous-key the data directory's keyring.key is the old key.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			url := cfg.DatabaseURL
			if url == "" {
				url = "sqlite:" + filepath.Join(cfg.DataDir, secrets.Target+".db")
			}
			n, err := secrets.RotateKey(c.Context(), url, cfg.Settings)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "re-wrapped %d data keys\n", n)
			return nil
		},
	}
	fs := rotate.Flags()
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "data directory: the secrets SQLite file and keyring.key (env PYLEE_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "postgres://… when the secrets service uses PostgreSQL")
	fs.Var(config.SecretValue{S: &cfg.Secrets.KeyringKey}, "keyring-key", "the new base64 256-bit key-encryption key (openssl rand -base64 32)")
	fs.Var(config.SecretValue{S: &cfg.Secrets.KeyringPreviousKey}, "keyring-previous-key", "the key the values are sealed under now (default: the data directory's keyring.key)")
	cmd.AddCommand(rotate)
	return cmd
}
