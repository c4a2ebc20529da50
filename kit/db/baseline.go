package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlite"
	"entgo.io/ent/dialect"
)

// sameSchema reports (nil) whether the schema of the database behind tx is
// the one first builds, compared the way ent's auto-migration compares a
// database with its schema (atlas inspection and diff: tables, columns,
// indexes, foreign keys). first runs on a scratch copy: an in-memory SQLite
// database, or on PostgreSQL a schema created and rolled back in tx.
func sameSchema(ctx context.Context, tx *sql.Tx, dialectName string, first file) error {
	var (
		have, want *schema.Schema
		drv        migrate.Driver
		err        error
	)
	exclude := &schema.InspectOptions{Exclude: []string{RevisionsTable}}
	switch dialectName {
	case dialect.SQLite:
		if drv, err = sqlite.Open(tx); err != nil {
			return err
		}
		if have, err = drv.InspectSchema(ctx, "main", exclude); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		if want, err = sqliteScratch(ctx, first); err != nil {
			return err
		}
	case dialect.Postgres:
		if drv, err = postgres.Open(tx); err != nil {
			return err
		}
		var current string
		if err := tx.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
			return err
		}
		if have, err = drv.InspectSchema(ctx, current, exclude); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		if want, err = postgresScratch(ctx, tx, drv, first); err != nil {
			return err
		}
		want.Name = have.Name
	default:
		return fmt.Errorf("no migrations for dialect %q", dialectName)
	}
	changes, err := drv.SchemaDiff(have, want)
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	var noQualifier string
	plan, err := drv.PlanChanges(ctx, "adopt", changes, func(o *migrate.PlanOptions) { o.SchemaQualifier = &noQualifier })
	if err != nil {
		return fmt.Errorf("its schema differs from %s in %d ways", first.name, len(changes))
	}
	var cmds []string
	for _, c := range plan.Changes {
		cmds = append(cmds, c.Cmd)
	}
	return fmt.Errorf("its schema differs from %s; to match it the database would need: %s", first.name, strings.Join(cmds, "; "))
}

// sqliteScratch runs f on an in-memory database and inspects the result.
func sqliteScratch(ctx context.Context, f file) (*schema.Schema, error) {
	mem, err := sql.Open("sqlite", "file:"+scratchName()+"?mode=memory&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	mem.SetMaxOpenConns(1) // every connection would have its own database
	tx, err := mem.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only use
	if err := execFile(ctx, tx, dialect.SQLite, f); err != nil {
		return nil, err
	}
	drv, err := sqlite.Open(tx)
	if err != nil {
		return nil, err
	}
	return drv.InspectSchema(ctx, "main", nil)
}

// postgresScratch runs f in a schema of its own inside a savepoint of tx,
// inspects it, and rolls it back.
func postgresScratch(ctx context.Context, tx *sql.Tx, drv migrate.Driver, f file) (s *schema.Schema, err error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT pylee_adopt"); err != nil {
		return nil, err
	}
	defer func() {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT pylee_adopt"); rerr != nil && err == nil {
			err = rerr
		}
	}()
	name := scratchName()
	if _, err := tx.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		return nil, err
	}
	// Rolled back with the savepoint.
	if _, err := tx.ExecContext(ctx, "SET LOCAL search_path TO "+name); err != nil {
		return nil, err
	}
	if err := execFile(ctx, tx, dialect.Postgres, f); err != nil {
		return nil, err
	}
	return drv.InspectSchema(ctx, name, nil)
}

func scratchName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "pylee_adopt_" + hex.EncodeToString(b[:])
}
