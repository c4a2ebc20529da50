// Package dbtest gives tests a fresh database: a SQLite file in a temporary
// directory, or a PostgreSQL database copied from a migrated template, so
// every test starts clean and tests against PostgreSQL stay fast.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/pyleeai/pylee/kit/db/migrategen"
)

// RequirePostgres reports whether a missing PostgreSQL is a failure: in CI
// (CI=true) every real-component test runs.
func RequirePostgres() bool { return os.Getenv("CI") == "true" }

// AdminURL is the PostgreSQL server tests use: PYLEE_TEST_POSTGRES_URL, or
// the local server with trust auth.
func AdminURL() string {
	if u := os.Getenv("PYLEE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// SQLiteURL returns the URL of a new SQLite file in t's temporary directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// MigratedSQLiteURL returns the URL of a new SQLite file in t's temporary
// directory, migrated by migrate (a service's MigrateStore).
func MigratedSQLiteURL(t testing.TB, migrate func(ctx context.Context, url string) error) string {
	t.Helper()
	u := SQLiteURL(t)
	if err := migrate(context.Background(), u); err != nil {
		t.Fatalf("migrate %s: %v", u, err)
	}
	return u
}

var (
	mu        sync.Mutex
	templates = map[string]string{} // name -> template database
)

// PostgresURL returns the URL of a new database for t, a copy of a template
// migrated once per test process by migrate. The database is dropped when t
// ends. Without a reachable server the test fails in CI and is skipped,
// saying so, elsewhere.
func PostgresURL(t testing.TB, name string, migrate func(ctx context.Context, url string) error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := adminDB(ctx, t)
	defer admin.Close()

	mu.Lock()
	defer mu.Unlock()
	tmpl, ok := templates[name]
	if !ok {
		tmpl = fmt.Sprintf("pylee_tmpl_%s_%d_%s", name, os.Getpid(), randomSuffix())
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+tmpl); err != nil {
			t.Fatalf("create template database: %v", err)
		}
		if err := migrate(ctx, withDatabase(AdminURL(), tmpl)); err != nil {
			t.Fatalf("migrate template database: %v", err)
		}
		templates[name] = tmpl
	}
	db := "pylee_test_" + randomSuffix()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", db, tmpl)); err != nil {
		t.Fatalf("copy template database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(db) })
	return withDatabase(AdminURL(), db)
}

// PostgresAdminURL returns AdminURL once the server answers; without it the
// test fails in CI and is skipped elsewhere, as in PostgresURL.
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adminDB(ctx, t).Close()
	return AdminURL()
}

// adminDB connects to AdminURL, or ends t: a failure in CI, else a skip.
func adminDB(ctx context.Context, t testing.TB) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", AdminURL())
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		if RequirePostgres() {
			t.Fatalf("PostgreSQL is required in CI and not reachable at %s: %v", redacted(AdminURL()), err)
		}
		t.Skipf("SKIP: PostgreSQL not reachable at %s (%v); set CI=true to make this a failure", redacted(AdminURL()), err)
	}
	return admin
}

// DropTemplates drops the template databases this process made; call it
// from TestMain after m.Run.
func DropTemplates() {
	mu.Lock()
	defer mu.Unlock()
	for name, tmpl := range templates {
		dropDatabase(tmpl)
		delete(templates, name)
	}
}

func dropDatabase(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		return
	}
	defer admin.Close()
	_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	return u.String()
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed url)"
	}
	return u.Redacted()
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckMigrations fails t when the ent tables have changes that the
// migrations in dir (a service's internal/ent/migrate/migrations) do not
// cover, for SQLite and, where dbtest reaches a server, PostgreSQL.
func CheckMigrations(t *testing.T, tables []*schema.Table, dir string) {
	t.Helper()
	cfg := migrategen.Config{Tables: tables, Dir: dir}
	for _, d := range migrategen.Dialects {
		t.Run(d, func(t *testing.T) {
			if d == dialect.Postgres {
				cfg.PostgresURL = PostgresAdminURL(t)
			}
			if err := migrategen.CheckDialect(context.Background(), cfg, d); err != nil {
				t.Fatal(err)
			}
		})
	}
}
