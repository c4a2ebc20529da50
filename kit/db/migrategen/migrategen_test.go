package migrategen_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/schema/field"

	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/kit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func tables(withNote bool) []*schema.Table {
	cols := []*schema.Column{
		{Name: "id", Type: field.TypeString},
		{Name: "name", Type: field.TypeString, Default: ""},
	}
	if withNote {
		cols = append(cols, &schema.Column{Name: "note", Type: field.TypeString, Default: ""})
	}
	t := &schema.Table{Name: "things", Columns: cols, PrimaryKey: cols[:1]}
	return []*schema.Table{t}
}

// postgresURL is a server for the scratch databases, or "" (the PostgreSQL
// half is skipped where dbtest skips).
func postgresURL(t *testing.T) string {
	admin, err := sql.Open("pgx", dbtest.AdminURL())
	if err == nil {
		err = admin.PingContext(context.Background())
		admin.Close()
	}
	if err != nil {
		if dbtest.RequirePostgres() {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		return ""
	}
	return dbtest.AdminURL()
}

// TestGenerateCheckApply: the generator writes a first migration, finds
// nothing more to write, refuses (Check) a schema change without a
// migration, writes it, and what it wrote applies.
func TestGenerateCheckApply(t *testing.T) {
	ctx := context.Background()
	cfg := migrategen.Config{Tables: tables(false), Dir: t.TempDir(), Dialects: []string{dialect.SQLite}}
	if pg := postgresURL(t); pg != "" {
		cfg.PostgresURL, cfg.Dialects = pg, migrategen.Dialects
	} else {
		t.Log("SKIP: the PostgreSQL half (PostgreSQL not reachable)")
	}
	written, err := migrategen.Generate(ctx, cfg, "init")
	if err != nil || len(written) != len(cfg.Dialects) {
		t.Fatalf("generate: %v, %v", written, err)
	}
	if err := migrategen.Check(ctx, cfg); err != nil {
		t.Fatalf("check right after generating: %v", err)
	}
	if again, err := migrategen.Generate(ctx, cfg, "nothing"); err != nil || len(again) != 0 {
		t.Fatalf("generate without a change: %v, %v", again, err)
	}

	cfg.Tables = tables(true)
	err = migrategen.Check(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "without a migration") || !strings.Contains(err.Error(), "`note`") {
		t.Fatalf("check of a changed schema: %v", err)
	}
	// A generated file cannot share the first one's second.
	for _, f := range written {
		if err := os.Rename(f, filepath.Join(filepath.Dir(f), "20000101000000_init.sql")); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrategen.Rehash(cfg); err != nil {
		t.Fatal(err)
	}
	if second, err := migrategen.Generate(ctx, cfg, "note"); err != nil || len(second) != len(cfg.Dialects) {
		t.Fatalf("generate the change: %v, %v", second, err)
	}
	if err := migrategen.Check(ctx, cfg); err != nil {
		t.Fatalf("check after generating: %v", err)
	}

	m := db.Migrations{Schema: "gen", FS: os.DirFS(cfg.Dir)}
	urls := []string{dbtest.SQLiteURL(t)}
	if cfg.PostgresURL != "" {
		urls = append(urls, dbtest.PostgresURL(t, "migrategen", func(context.Context, string) error { return nil }))
	}
	for _, url := range urls {
		rep, err := m.Apply(ctx, url)
		if err != nil || len(rep.Applied) != 2 {
			t.Fatalf("apply: %+v, %v", rep, err)
		}
	}
}

func TestEmptyIsRehashed(t *testing.T) {
	cfg := migrategen.Config{Dir: t.TempDir()}
	written, err := migrategen.Empty(cfg, "by_hand")
	if err != nil || len(written) != 2 {
		t.Fatalf("%v, %v", written, err)
	}
	// Still valid (atlas.sum matches), and applies (a comment only).
	m := db.Migrations{Schema: "gen", FS: os.DirFS(cfg.Dir)}
	if _, err := m.Apply(context.Background(), dbtest.SQLiteURL(t)); err != nil {
		t.Fatal(err)
	}
}
