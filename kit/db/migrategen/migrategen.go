// Package migrategen writes a service's versioned migrations from its ent
// schema, the way ent's versioned-migration workflow does: the migration
// directory is replayed on an empty dev database (in-memory SQLite, or a
// scratch PostgreSQL database), and atlas writes what the ent schema needs
// beyond it as a new file, with its atlas.sum. Each service has a small
// main (internal/ent/migrategen) that hands this package its tables.
package migrategen

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/pyleeai/pylee/kit/db"
)

// Dialects are the dialects every service has migrations for.
var Dialects = []string{dialect.SQLite, dialect.Postgres}

// Config is one service's migrations.
type Config struct {
	// Tables are the service's ent tables (its ent/migrate.Tables).
	Tables []*schema.Table
	// Dir holds one directory per dialect (db.DialectDir).
	Dir string
	// PostgresURL is a server where a scratch database may be created and
	// dropped (the dev database of the PostgreSQL migrations).
	PostgresURL string
	// Dialects restricts the dialects worked on; empty means Dialects.
	Dialects []string
}

func (c Config) dialects() []string {
	if len(c.Dialects) > 0 {
		return c.Dialects
	}
	return Dialects
}

// Generate writes a migration named name into every dialect's directory
// for what the ent schema has beyond the directory, and returns the files
// written; none when the migrations are up to date.
func Generate(ctx context.Context, cfg Config, name string) ([]string, error) {
	version, err := nextVersion(cfg)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, d := range cfg.dialects() {
		dir, err := localDir(cfg.Dir, d)
		if err != nil {
			return written, err
		}
		err = withDevDB(ctx, cfg, d, func(dev *sql.DB) error { return diff(ctx, dev, d, dir, cfg.Tables, name, version) })
		switch {
		case errors.Is(err, migrate.ErrNoPlan):
		case err != nil:
			return written, fmt.Errorf("%s: %w", d, err)
		default:
			written = append(written, filepath.Join(dir.Path(), fileName(version, name)))
		}
	}
	return written, nil
}

// Check fails when the ent schema has changes that no migration covers,
// showing the migration Generate would write. It writes nothing.
func Check(ctx context.Context, cfg Config) error {
	for _, d := range cfg.dialects() {
		if err := CheckDialect(ctx, cfg, d); err != nil {
			return err
		}
	}
	return nil
}

// CheckDialect is Check for one dialect.
func CheckDialect(ctx context.Context, cfg Config, d string) error {
	dir, err := localDir(cfg.Dir, d)
	if err != nil {
		return err
	}
	mem, err := copyDir(dir)
	if err != nil {
		return err
	}
	const version, name = "99999999999999", "pending"
	err = withDevDB(ctx, cfg, d, func(dev *sql.DB) error { return diff(ctx, dev, d, mem, cfg.Tables, name, version) })
	switch {
	case errors.Is(err, migrate.ErrNoPlan):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", dir.Path(), err)
	}
	b, _ := fsRead(mem, fileName(version, name))
	return fmt.Errorf("%s: the ent schema changed without a migration; run `make migrations NAME=<what changed>`. It would write:\n%s",
		dir.Path(), b)
}

// Rehash rewrites every dialect's atlas.sum for its files, after a file was
// written by hand.
func Rehash(cfg Config) error {
	for _, d := range cfg.dialects() {
		dir, err := localDir(cfg.Dir, d)
		if err != nil {
			return err
		}
		sum, err := dir.Checksum()
		if err != nil {
			return err
		}
		if err := migrate.WriteSumFile(dir, sum); err != nil {
			return err
		}
	}
	return nil
}

// Empty writes an empty migration named name in every dialect's directory,
// to be written by hand (a trigger, a data change) and then rehashed.
func Empty(cfg Config, name string) ([]string, error) {
	version, err := nextVersion(cfg)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, d := range cfg.dialects() {
		dir, err := localDir(cfg.Dir, d)
		if err != nil {
			return written, err
		}
		f := fileName(version, name)
		if err := dir.WriteFile(f, []byte("-- "+name+" ("+d+"), written by hand; run the generator with -rehash after editing.\n")); err != nil {
			return written, err
		}
		written = append(written, filepath.Join(dir.Path(), f))
	}
	return written, Rehash(cfg)
}

// versionLayout is a version: the UTC time the migration was written.
const versionLayout = "20060102150405"

// nextVersion is now, or a second after the newest migration when that is
// not older, so versions stay in order.
func nextVersion(cfg Config) (string, error) {
	next := time.Now().UTC().Truncate(time.Second)
	for _, d := range cfg.dialects() {
		dir, err := localDir(cfg.Dir, d)
		if err != nil {
			return "", err
		}
		files, err := dir.Files()
		if err != nil {
			return "", err
		}
		for _, f := range files {
			if v, err := time.Parse(versionLayout, f.Version()); err == nil && !v.Before(next) {
				next = v.Add(time.Second)
			}
		}
	}
	return next.Format(versionLayout), nil
}

// diff writes into dir the migration (version_name.sql) that brings what
// dir builds to tables, planned on dev, an empty database; migrate.ErrNoPlan
// when there is nothing to write.
func diff(ctx context.Context, dev *sql.DB, d string, dir migrate.Dir, tables []*schema.Table, name, version string) error {
	format, err := migrate.NewTemplateFormatter(
		template.Must(template.New("name").Parse(version+"{{ with .Name }}_{{ . }}{{ end }}.sql")),
		migrate.DefaultFormatter[0].C,
	)
	if err != nil {
		return err
	}
	m, err := schema.NewMigrate(entsql.OpenDB(d, dev),
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(d),
		schema.WithFormatter(format),
		// A versioned migration is read before it runs: unlike the
		// auto-migration it may drop what the schema no longer has.
		schema.WithDropColumn(true),
		schema.WithDropIndex(true),
		schema.WithErrNoPlan(true),
	)
	if err != nil {
		return err
	}
	return m.NamedDiff(ctx, name, tables...)
}

// withDevDB runs fn with an empty database of dialect d: in-memory SQLite,
// or a scratch PostgreSQL database dropped afterwards.
func withDevDB(ctx context.Context, cfg Config, d string, fn func(*sql.DB) error) error {
	switch d {
	case dialect.SQLite:
		dev, err := sql.Open("sqlite", "file:migrategen_"+random()+"?mode=memory&_pragma=foreign_keys(1)")
		if err != nil {
			return err
		}
		defer dev.Close()
		dev.SetMaxOpenConns(1) // every connection would have its own database
		return fn(dev)
	case dialect.Postgres:
		return withScratchPostgres(ctx, cfg.PostgresURL, fn)
	}
	return fmt.Errorf("no migrations for dialect %q", d)
}

func withScratchPostgres(ctx context.Context, adminURL string, fn func(*sql.DB) error) (err error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return errors.New("postgres url is malformed")
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	name := "pylee_migrategen_" + random()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("the PostgreSQL migrations need a dev database on %s (-postgres-url): %w", db.Redact(u), db.Sanitize(err, u))
	}
	defer func() {
		_, derr := admin.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		if err == nil {
			err = derr
		}
	}()
	u.Path = "/" + name
	dev, err := sql.Open("pgx", u.String())
	if err != nil {
		return err
	}
	defer dev.Close()
	return fn(dev)
}

func localDir(root, d string) (*migrate.LocalDir, error) {
	sub, err := db.DialectDir(d)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, sub)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, err
	}
	return migrate.NewLocalDir(path)
}

// copyDir copies dir's files and atlas.sum into memory, so a check writes
// nothing.
func copyDir(dir *migrate.LocalDir) (*migrate.MemDir, error) {
	mem := &migrate.MemDir{}
	mem.SetPath(dir.Path())
	files, err := dir.Files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := mem.WriteFile(f.Name(), f.Bytes()); err != nil {
			return nil, err
		}
	}
	if sum, err := os.ReadFile(filepath.Join(dir.Path(), migrate.HashFileName)); err == nil {
		if err := mem.WriteFile(migrate.HashFileName, sum); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return mem, nil
}

func fsRead(dir *migrate.MemDir, name string) (string, error) {
	files, err := dir.Files()
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(files, func(f migrate.File) bool { return f.Name() == name })
	if i < 0 {
		return "", fmt.Errorf("%s not written", name)
	}
	return strings.TrimSpace(string(files[i].Bytes())), nil
}

func fileName(version, name string) string { return version + "_" + name + ".sql" }

func random() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
