package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/module"
)

// databaseURL is where target keeps its database: its SQLite file in the
// data directory, or its schema of --database-url.
func databaseURL(cfg Config, target string) string {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL
	}
	return "sqlite:" + filepath.Join(cfg.DataDir, target+".db")
}

// MigrateResult is what Migrate did to one target's database.
type MigrateResult struct {
	Target string
	// Report is nil for a target that keeps no database.
	Report *db.Report
}

// Migrate applies the pending migrations of the databases of cfg.Targets
// (cfg.DataDir, cfg.DatabaseURL), in the order of Modules. It is what
// `pylee migrate` runs before a rollout; migrators of one database
// serialize, so running it from several places at once is safe.
func Migrate(ctx context.Context, cfg Config) ([]MigrateResult, error) {
	targets, err := ResolveTargets(cfg.Targets)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	mods, err := module.Order(Modules, targets)
	if err != nil {
		return nil, err
	}
	var out []MigrateResult
	for _, m := range mods {
		if m.Migrations == nil {
			out = append(out, MigrateResult{Target: m.Name})
			continue
		}
		rep, err := m.Migrations.Apply(ctx, databaseURL(cfg, m.Name))
		if err != nil {
			return out, err
		}
		out = append(out, MigrateResult{Target: m.Name, Report: &rep})
	}
	return out, nil
}

// prepareSchemas migrates the databases of mods when cfg.Migrate is set,
// and otherwise refuses to start when one of them is behind, naming the
// command that migrates them.
func prepareSchemas(ctx context.Context, cfg Config, mods []module.Module, log *zap.Logger) error {
	var behind, details []string
	for _, m := range mods {
		if m.Migrations == nil {
			continue
		}
		url := databaseURL(cfg, m.Name)
		if cfg.Migrate {
			rep, err := m.Migrations.Apply(ctx, url)
			if err != nil {
				return err
			}
			if rep.Adopted != "" || len(rep.Applied) > 0 {
				log.Info("database migrated", zap.String("target", m.Name), zap.String("adopted", rep.Adopted),
					zap.Strings("applied", rep.Applied), zap.String("version", rep.Current))
			}
			continue
		}
		st, err := m.Migrations.Status(ctx, url)
		if err != nil {
			return err
		}
		if len(st.Unknown) > 0 {
			log.Warn("the database has migrations this pylee does not know: a newer pylee migrated it",
				zap.String("target", m.Name), zap.Strings("versions", st.Unknown))
		}
		if st.Behind() {
			behind = append(behind, m.Name)
			d := fmt.Sprintf("%s: %d pending", m.Name, len(st.Pending))
			if st.Adopt {
				d += ", made before versioned migrations"
			}
			details = append(details, d)
		}
	}
	if len(behind) == 0 {
		return nil
	}
	return fmt.Errorf("the database of %s is behind this pylee (%s): run \"pylee migrate --target=%s\" or start with --migrate",
		strings.Join(behind, ", "), strings.Join(details, "; "), strings.Join(behind, ","))
}
