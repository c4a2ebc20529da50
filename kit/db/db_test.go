package db_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/dbtest"
)

func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.SQLiteURL(t), "orgs")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Dialect != dialect.SQLite {
		t.Fatalf("dialect %s", d.Dialect)
	}
	var fk int
	if err := d.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	var mode string
	if err := d.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %s, %v", mode, err)
	}
}

func TestOpenPostgresSchema(t *testing.T) {
	ctx := context.Background()
	u := dbtest.PostgresURL(t, "kitdb", func(context.Context, string) error { return nil })
	d, err := db.Open(ctx, u, "orgs")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Dialect != dialect.Postgres {
		t.Fatalf("dialect %s", d.Dialect)
	}
	if _, err := d.ExecContext(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := d.QueryRowContext(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 't'").Scan(&schema); err != nil || schema != "orgs" {
		t.Fatalf("table schema = %q, %v", schema, err)
	}
}

func TestSanitize(t *testing.T) {
	u, _ := url.Parse("postgres://app:s3cretpw@db:5432/x")
	err := db.Sanitize(errors.New("failed to connect to user=app password=s3cretpw"), u)
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatal(err)
	}
	if _, err := db.Open(context.Background(), "", ""); err == nil {
		t.Fatal("empty url accepted")
	}
}
