// Package db opens a service's database by URL: a SQLite file (the embedded
// default, pure Go) or PostgreSQL (production), ready for ent; and brings
// it to the service's schema with versioned migrations (Migrations).
package db

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// DB is an open database and the ent dialect that speaks it.
type DB struct {
	*sql.DB
	// Dialect is dialect.SQLite or dialect.Postgres.
	Dialect string
}

// Open opens the database at rawURL:
//
//   - `sqlite:PATH` or `sqlite://PATH` or a plain file path: a SQLite file,
//     created with its directory if missing, with foreign keys on, WAL
//     journaling and immediate write transactions (so concurrent writers
//     wait instead of failing);
//   - `postgres://` or `postgresql://`: PostgreSQL through pgx. When schema is
//     not empty the service gets its own schema in that database (created if
//     missing), so several services can share one database without sharing
//     tables.
func Open(ctx context.Context, rawURL, schema string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, schema)
	case rawURL == "":
		return nil, fmt.Errorf("database url is empty")
	default:
		return openSQLite(ctx, rawURL)
	}
}

func openSQLite(ctx context.Context, rawURL string) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite://"), "sqlite:")
	if path == "" {
		return nil, fmt.Errorf("sqlite url %q has no path", rawURL)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite directory: %w", err)
	}
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)" +
		"&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	sdb.SetMaxOpenConns(8)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &DB{DB: sdb, Dialect: dialect.SQLite}, nil
}

func openPostgres(ctx context.Context, rawURL, schema string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse echoes the input, which may hold a password.
		return nil, fmt.Errorf("postgres url is malformed")
	}
	if schema != "" {
		if err := ensureSchema(ctx, u.String(), schema); err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	}
	sdb, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", Sanitize(err, u))
	}
	sdb.SetMaxOpenConns(20)
	sdb.SetMaxIdleConns(20)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open postgres %s: %w", Redact(u), Sanitize(err, u))
	}
	return &DB{DB: sdb, Dialect: dialect.Postgres}, nil
}

func ensureSchema(ctx context.Context, rawURL, schema string) error {
	u, _ := url.Parse(rawURL)
	sdb, err := sql.Open("pgx", rawURL)
	if err != nil {
		return fmt.Errorf("open postgres: %w", Sanitize(err, u))
	}
	defer sdb.Close()
	quoted := `"` + strings.ReplaceAll(schema, `"`, `""`) + `"`
	if _, err := sdb.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoted); err != nil {
		// Two processes creating it at once: one of them fails on the
		// catalog's unique index although the schema now exists.
		var exists bool
		if qerr := sdb.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); qerr == nil && exists {
			return nil
		}
		return fmt.Errorf("create schema %s on %s: %w", schema, Redact(u), Sanitize(err, u))
	}
	return nil
}

// Redact returns u without its password, for messages and logs.
func Redact(u *url.URL) string {
	return u.Redacted()
}

// Sanitize removes the URL's password from a driver error's text, which
// some drivers include verbatim.
func Sanitize(err error, u *url.URL) error {
	if err == nil || u == nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
