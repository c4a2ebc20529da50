package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/sqlite"
	"entgo.io/ent/dialect"
)

// RevisionsTable records the migrations applied to a database, in the
// service's schema: version, description, hash (SHA-256 of the file),
// applied_at, and baseline (recorded without running: the database was
// adopted, see Migrations.Apply).
const RevisionsTable = "pylee_schema_migrations"

// ErrHashMismatch is returned when a database records a migration whose
// content differs from the checked-in file of the same version.
var ErrHashMismatch = errors.New("applied migration differs from the checked-in file")

// Migrations are a service's versioned schema: migration files written by
// its generator (kit/db/migrategen), one directory per dialect.
type Migrations struct {
	// Schema is the service's PostgreSQL schema (as given to Open); it
	// names the service in messages and keys the migration lock.
	Schema string
	// FS holds the directories "sqlite" and "postgres", each with the .sql
	// files (applied in name order; the name starts with the version) and
	// atlas.sum, which must match them.
	FS fs.FS
}

// DialectDir is the directory of dialect's migrations in Migrations.FS.
func DialectDir(dialectName string) (string, error) {
	switch dialectName {
	case dialect.SQLite:
		return "sqlite", nil
	case dialect.Postgres:
		return "postgres", nil
	}
	return "", fmt.Errorf("no migrations for dialect %q", dialectName)
}

// Status is how a database stands against the migrations.
type Status struct {
	// Current is the last applied version, "" when none.
	Current string
	// Pending are the files not applied yet, in order.
	Pending []string
	// Adopt is true for a database made before versioned migrations (its
	// tables exist, no revisions): Apply records the first migration as
	// its baseline instead of running it.
	Adopt bool
	// Unknown are applied versions without a file here: a newer binary
	// migrated the database.
	Unknown []string
}

// Behind reports whether migrations are pending.
func (s Status) Behind() bool { return len(s.Pending) > 0 }

// Report is what Apply did.
type Report struct {
	// Adopted is the version recorded as baseline without running it, "" if none.
	Adopted string
	// Applied are the files run, in order.
	Applied []string
	// Current is the database's version afterwards.
	Current string
}

// file is one migration.
type file struct {
	name, version, desc, hash string
	data                      []byte
}

// load reads the migrations of dialectName and checks them against their
// atlas.sum, so a file edited after it was generated is refused before it
// touches a database.
func (m Migrations) load(dialectName string) ([]file, error) {
	dir, err := DialectDir(dialectName)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(m.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", m.Schema, err)
	}
	mem := &migrate.MemDir{}
	var files []file
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (path.Ext(name) != ".sql" && name != migrate.HashFileName) {
			continue
		}
		data, err := fs.ReadFile(m.FS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%s migrations: %w", m.Schema, err)
		}
		if err := mem.WriteFile(name, data); err != nil {
			return nil, err
		}
		if name == migrate.HashFileName {
			continue
		}
		lf := migrate.NewLocalFile(name, data)
		sum := sha256.Sum256(data)
		files = append(files, file{name: name, version: lf.Version(), desc: lf.Desc(), hash: hex.EncodeToString(sum[:]), data: data})
	}
	if err := migrate.Validate(mem); err != nil {
		var ce *migrate.ChecksumError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s migrations (%s): %s was %s after atlas.sum was written; regenerate the migration or restore the file", m.Schema, dir, ce.File, ce.Reason)
		}
		return nil, fmt.Errorf("%s migrations (%s): %w", m.Schema, dir, err)
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(files); i++ {
		if files[i].version == files[i-1].version {
			return nil, fmt.Errorf("%s migrations (%s): %s and %s have the same version", m.Schema, dir, files[i-1].name, files[i].name)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s migrations (%s): no migration files", m.Schema, dir)
	}
	return files, nil
}

// Apply brings the database at url up to date: it applies the pending
// migration files in order, each in its own transaction that also records
// it in RevisionsTable.
//
// Migrators serialize: on PostgreSQL a session advisory lock keyed by the
// schema is held for the whole run; on SQLite every step is an immediate
// (write) transaction that re-reads what is applied.
//
// A database made before versioned migrations (the service's tables exist,
// no revisions) is adopted: if its schema is the first migration's, that
// migration is recorded as applied without running it (baseline), and the
// later ones run; any other schema is refused, naming the difference.
//
// A database that records a migration whose hash differs from the file of
// the same version is refused (ErrHashMismatch), as is a pending file when
// the database has versions this binary does not know.
func (m Migrations) Apply(ctx context.Context, url string) (Report, error) {
	d, err := Open(ctx, url, m.Schema)
	if err != nil {
		return Report{}, fmt.Errorf("%s database: %w", m.Schema, err)
	}
	defer d.Close()
	rep, err := m.apply(ctx, d)
	if err != nil {
		return rep, fmt.Errorf("%s database: %w", m.Schema, err)
	}
	return rep, nil
}

// Status tells how the database at url stands against the migrations,
// without changing its tables (Open may create the SQLite file or the
// PostgreSQL schema). It fails like Apply on a hash mismatch.
func (m Migrations) Status(ctx context.Context, url string) (Status, error) {
	st, err := m.statusURL(ctx, url)
	if err != nil {
		return st, fmt.Errorf("%s database: %w", m.Schema, err)
	}
	return st, nil
}

func (m Migrations) statusURL(ctx context.Context, url string) (Status, error) {
	d, err := Open(ctx, url, m.Schema)
	if err != nil {
		return Status{}, err
	}
	defer d.Close()
	files, err := m.load(d.Dialect)
	if err != nil {
		return Status{}, err
	}
	conn, err := d.Conn(ctx)
	if err != nil {
		return Status{}, err
	}
	defer conn.Close()
	return m.status(ctx, conn, d.Dialect, files)
}

func (m Migrations) apply(ctx context.Context, d *DB) (rep Report, err error) {
	files, err := m.load(d.Dialect)
	if err != nil {
		return Report{}, err
	}
	// One connection for the run: the PostgreSQL lock is the session's,
	// and SQLite's foreign-key pragma is the connection's.
	conn, err := d.Conn(ctx)
	if err != nil {
		return Report{}, err
	}
	defer conn.Close()
	if d.Dialect == dialect.Postgres {
		unlock, err := m.lock(ctx, conn)
		if err != nil {
			return Report{}, err
		}
		defer unlock()
	}
	if _, err := conn.ExecContext(ctx, revisionsDDL(d.Dialect)); err != nil {
		return Report{}, fmt.Errorf("create %s: %w", RevisionsTable, err)
	}
	var pending []file
	err = m.inTx(ctx, conn, d.Dialect, func(tx *sql.Tx) error {
		st, err := m.status(ctx, tx, d.Dialect, files)
		if err != nil {
			return err
		}
		if st.Adopt {
			if err := sameSchema(ctx, tx, d.Dialect, files[0]); err != nil {
				return fmt.Errorf("it predates versioned migrations and cannot be adopted: %w", err)
			}
			if err := record(ctx, tx, d.Dialect, files[0], true); err != nil {
				return err
			}
			rep.Adopted = files[0].version
			st.Pending = st.Pending[1:]
		}
		if len(st.Unknown) > 0 && len(st.Pending) > 0 {
			return fmt.Errorf("it has migrations this binary does not know (%s; a newer pylee migrated it), refusing to apply %s",
				strings.Join(st.Unknown, ", "), strings.Join(st.Pending, ", "))
		}
		for _, f := range files {
			if slices.Contains(st.Pending, f.name) {
				pending = append(pending, f)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, f := range pending {
		ran := false
		err := m.inTx(ctx, conn, d.Dialect, func(tx *sql.Tx) error {
			// Another migrator may have applied it since (SQLite, where
			// nothing but this transaction serializes).
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+RevisionsTable+" WHERE version = "+placeholder(d.Dialect, 1), f.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if err := execFile(ctx, tx, d.Dialect, f); err != nil {
				return err
			}
			ran = true
			return record(ctx, tx, d.Dialect, f, false)
		})
		if err != nil {
			return rep, err
		}
		if ran {
			rep.Applied = append(rep.Applied, f.name)
		}
	}
	st, err := m.status(ctx, conn, d.Dialect, files)
	if err != nil {
		return rep, err
	}
	rep.Current = st.Current
	return rep, nil
}

// queryer is a connection or a transaction.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (m Migrations) status(ctx context.Context, q queryer, dialectName string, files []file) (Status, error) {
	var st Status
	exists, err := tableExists(ctx, q, dialectName, RevisionsTable)
	if err != nil {
		return st, err
	}
	applied := map[string]string{} // version -> hash
	var versions []string
	if exists {
		rows, err := q.QueryContext(ctx, "SELECT version, hash FROM "+RevisionsTable+" ORDER BY version")
		if err != nil {
			return st, fmt.Errorf("read %s: %w", RevisionsTable, err)
		}
		for rows.Next() {
			var v, h string
			if err := rows.Scan(&v, &h); err != nil {
				rows.Close()
				return st, err
			}
			applied[v] = h
			versions = append(versions, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
	}
	if len(applied) == 0 {
		n, err := countTables(ctx, q, dialectName)
		if err != nil {
			return st, err
		}
		st.Adopt = n > 0
	}
	known := map[string]bool{}
	for _, f := range files {
		known[f.version] = true
		h, ok := applied[f.version]
		switch {
		case !ok:
			st.Pending = append(st.Pending, f.name)
		case h != f.hash:
			return st, fmt.Errorf("migration %s: %w (database %.12s…, file %.12s…): the file was edited after the database applied it; restore it and write the change as a new migration",
				f.name, ErrHashMismatch, h, f.hash)
		default:
			st.Current = f.version
		}
	}
	for _, v := range versions {
		if !known[v] {
			st.Unknown = append(st.Unknown, v)
			st.Current = max(st.Current, v)
		}
	}
	return st, nil
}

// inTx runs fn in a transaction on conn. On SQLite the transaction is an
// immediate one (kit/db opens SQLite so), which serializes migrators, and
// foreign keys are off for its duration, as SQLite's procedure for
// rebuilding a table asks; they are checked before the commit.
func (m Migrations) inTx(ctx context.Context, conn *sql.Conn, dialectName string, fn func(*sql.Tx) error) (err error) {
	if dialectName == dialect.SQLite {
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
			return err
		}
		defer func() {
			if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON"); ferr != nil && err == nil {
				err = ferr
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if dialectName == dialect.SQLite {
		rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		bad := rows.Next()
		rows.Close()
		if bad {
			_ = tx.Rollback()
			return errors.New("the migration leaves rows whose foreign keys point nowhere (PRAGMA foreign_key_check)")
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lock takes the PostgreSQL advisory lock of the schema's migrations,
// waiting for another migrator to finish.
func (m Migrations) lock(ctx context.Context, conn *sql.Conn) (func(), error) {
	key := LockKey(m.Schema)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key)
	}, nil
}

// LockKey is the PostgreSQL advisory lock key migrators of schema hold.
func LockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte(RevisionsTable + ":" + schema))
	return int64(h.Sum64())
}

// execFile runs f's statements, split as atlas splits them for the
// dialect (PostgreSQL's dollar quotes, BEGIN … END blocks of triggers).
func execFile(ctx context.Context, tx *sql.Tx, dialectName string, f file) error {
	var scanner migrate.StmtScanner = &sqlite.Driver{}
	if dialectName == dialect.Postgres {
		scanner = &postgres.Driver{}
	}
	stmts, err := scanner.ScanStmts(string(f.data))
	if err != nil {
		return fmt.Errorf("migration %s: %w", f.name, err)
	}
	for i, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.Text); err != nil {
			first, _, _ := strings.Cut(strings.TrimSpace(s.Text), "\n")
			return fmt.Errorf("migration %s, statement %d (%s): %w", f.name, i+1, first, err)
		}
	}
	return nil
}

func record(ctx context.Context, tx *sql.Tx, dialectName string, f file, baseline bool) error {
	//nolint:gosec // a constant table name and placeholders: no value is formatted in
	q := fmt.Sprintf("INSERT INTO %s (version, description, hash, applied_at, baseline) VALUES (%s, %s, %s, %s, %s)",
		RevisionsTable, placeholder(dialectName, 1), placeholder(dialectName, 2), placeholder(dialectName, 3),
		placeholder(dialectName, 4), placeholder(dialectName, 5))
	var at any = time.Now().UTC()
	if dialectName == dialect.SQLite {
		at = at.(time.Time).Format(time.RFC3339Nano)
	}
	if _, err := tx.ExecContext(ctx, q, f.version, f.desc, f.hash, at, baseline); err != nil {
		return fmt.Errorf("record migration %s: %w", f.name, err)
	}
	return nil
}

func revisionsDDL(dialectName string) string {
	ts := "TIMESTAMP"
	if dialectName == dialect.Postgres {
		ts = "TIMESTAMPTZ"
	}
	return "CREATE TABLE IF NOT EXISTS " + RevisionsTable + ` (
  version TEXT NOT NULL PRIMARY KEY,
  description TEXT NOT NULL,
  hash TEXT NOT NULL,
  applied_at ` + ts + ` NOT NULL,
  baseline BOOLEAN NOT NULL DEFAULT FALSE
)`
}

func placeholder(dialectName string, n int) string {
	if dialectName == dialect.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func tableExists(ctx context.Context, q queryer, dialectName, table string) (bool, error) {
	var n int
	var err error
	if dialectName == dialect.Postgres {
		err = q.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1", table).Scan(&n)
	} else {
		err = q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n)
	}
	return n > 0, err
}

// countTables counts the tables of the service's schema other than
// RevisionsTable.
func countTables(ctx context.Context, q queryer, dialectName string) (int, error) {
	var n int
	var err error
	if dialectName == dialect.Postgres {
		err = q.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1", RevisionsTable).Scan(&n)
	} else {
		err = q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?", RevisionsTable).Scan(&n)
	}
	return n, err
}
