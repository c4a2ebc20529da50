package migrategen

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"entgo.io/ent/dialect/sql/schema"
)

// DefaultPostgresURL is the server scratch databases are made on, unless
// -postgres-url or PYLEE_TEST_POSTGRES_URL says otherwise.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Main is the command line of a service's generator: run from the
// repository root,
//
//	go run ./services/<svc>/internal/ent/migrategen -name add_x   # a migration for the ent schema's changes
//	go run ./services/<svc>/internal/ent/migrategen -check        # fail if the schema has changes without one
//	go run ./services/<svc>/internal/ent/migrategen -name x -empty   # files to write by hand
//	go run ./services/<svc>/internal/ent/migrategen -rehash       # atlas.sum after editing by hand
//
// dir is the service's migrations directory relative to the root.
func Main(service string, tables []*schema.Table, dir string) {
	fs := flag.NewFlagSet(service+" migrategen", flag.ExitOnError)
	name := fs.String("name", "", "write a migration with this name (letters, digits, _) for the ent schema's changes")
	check := fs.Bool("check", false, "fail when the ent schema has changes without a migration; write nothing")
	empty := fs.Bool("empty", false, "with -name: write empty migration files to fill in by hand")
	rehash := fs.Bool("rehash", false, "rewrite atlas.sum after a migration was written by hand")
	pgURL := fs.String("postgres-url", envOr("PYLEE_TEST_POSTGRES_URL", DefaultPostgresURL), "PostgreSQL server for the scratch dev database")
	fs.StringVar(&dir, "dir", dir, "migrations directory (sqlite/ and postgres/ under it)")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := Config{Tables: tables, Dir: dir, PostgresURL: *pgURL}
	var err error
	switch {
	case *check:
		err = Check(ctx, cfg)
		if err == nil {
			fmt.Printf("%s: migrations cover the ent schema\n", service)
		}
	case *rehash:
		err = Rehash(cfg)
	case *name == "" || !validName(*name):
		err = fmt.Errorf("-name is required (letters, digits and _), or -check, or -rehash")
	case *empty:
		var written []string
		written, err = Empty(cfg, *name)
		report(service, written)
	default:
		var written []string
		written, err = Generate(ctx, cfg, *name)
		report(service, written)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		os.Exit(1)
	}
}

func report(service string, written []string) {
	if len(written) == 0 {
		fmt.Printf("%s: no change\n", service)
	}
	for _, f := range written {
		fmt.Printf("%s: wrote %s\n", service, f)
	}
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
