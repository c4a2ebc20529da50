package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var (
		cfg     app.Config
		targets string
	)
	cmd := &cobra.Command{
		Use:   "migrate [--target=orgs,registry]",
		Short: "Apply the pending database migrations of the targets (all by default)",
		Long: "Brings the databases of the targets up to this pylee's schema: the pending migration files run\n" +
			"in order, each in a transaction, and are recorded in the database. Run it before rolling out a\n" +
			"new version (`pylee serve` refuses a database that is behind unless given --migrate). Migrators\n" +
			"of one database wait for each other (PostgreSQL: an advisory lock; SQLite: its write lock), so\n" +
			"running it from several places at once applies each migration once. A database made before\n" +
			"versioned migrations is adopted: recorded at its first migration, nothing lost.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Targets = strings.Split(targets, ",")
			explicit := !strings.Contains(","+targets+",", ",all,")
			results, err := app.Migrate(cmd.Context(), cfg)
			for _, r := range results {
				switch {
				case r.Report == nil:
					if explicit {
						fmt.Fprintf(g.stdout, "%s: no database\n", r.Target)
					}
				case r.Report.Adopted == "" && len(r.Report.Applied) == 0:
					fmt.Fprintf(g.stdout, "%s: up to date (version %s)\n", r.Target, r.Report.Current)
				default:
					if r.Report.Adopted != "" {
						fmt.Fprintf(g.stdout, "%s: adopted the existing database at version %s (made before versioned migrations)\n", r.Target, r.Report.Adopted)
					}
					for _, f := range r.Report.Applied {
						fmt.Fprintf(g.stdout, "%s: applied %s\n", r.Target, f)
					}
					fmt.Fprintf(g.stdout, "%s: now at version %s\n", r.Target, r.Report.Current)
				}
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&targets, "target", "all", "comma-separated targets: all, "+strings.Join(app.Targets, ", "))
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "data directory: SQLite files (env PYLEE_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "postgres://… when the targets use PostgreSQL instead of SQLite files in the data directory")
	return cmd
}
