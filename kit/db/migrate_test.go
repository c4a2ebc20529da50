package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"ariga.io/atlas/sql/migrate"

	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/dbtest"
)

const (
	v1 = "CREATE TABLE parents (id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', PRIMARY KEY (id));\n" +
		"CREATE TABLE children (id TEXT NOT NULL, parent_id TEXT NOT NULL REFERENCES parents (id), PRIMARY KEY (id));\n" +
		"CREATE INDEX children_parent ON children (parent_id);\n"
	// v2 holds what atlas's lexer must keep whole: a trigger's BEGIN … END
	// (SQLite) and a dollar-quoted function body (PostgreSQL).
	v2SQLite = "ALTER TABLE parents ADD COLUMN note TEXT NOT NULL DEFAULT '';\n" +
		"CREATE TRIGGER parents_no_delete BEFORE DELETE ON parents\n BEGIN SELECT RAISE(ABORT, 'no; really'); END;\n"
	v2Postgres = "ALTER TABLE parents ADD COLUMN note TEXT NOT NULL DEFAULT '';\n" +
		"CREATE FUNCTION parents_no_delete() RETURNS trigger AS $$\nBEGIN\n  RAISE EXCEPTION 'no; really';\nEND;\n$$ LANGUAGE plpgsql;\n" +
		"CREATE TRIGGER parents_no_delete BEFORE DELETE ON parents FOR EACH ROW EXECUTE FUNCTION parents_no_delete();\n"
)

// migrations builds a Migrations of files (name -> SQL per dialect
// directory) with a correct atlas.sum, unless tamper edits a file after.
func migrations(t *testing.T, files map[string]map[string]string, tamper func(fstest.MapFS)) db.Migrations {
	t.Helper()
	fsys := fstest.MapFS{}
	for dir, byName := range files {
		mem := &migrate.MemDir{}
		for name, body := range byName {
			fsys[dir+"/"+name] = &fstest.MapFile{Data: []byte(body)}
			if err := mem.WriteFile(name, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := mem.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		b, err := sum.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		fsys[dir+"/atlas.sum"] = &fstest.MapFile{Data: b}
	}
	if tamper != nil {
		tamper(fsys)
	}
	return db.Migrations{Schema: "kitmig", FS: fsys}
}

func twoMigrations(t *testing.T) db.Migrations {
	return migrations(t, map[string]map[string]string{
		"sqlite":   {"20250101000000_init.sql": v1, "20250102000000_note.sql": v2SQLite},
		"postgres": {"20250101000000_init.sql": v1, "20250102000000_note.sql": v2Postgres},
	}, nil)
}

var databases = map[string]func(t *testing.T) string{
	"SQLite": func(t *testing.T) string { return dbtest.SQLiteURL(t) },
	"Postgres": func(t *testing.T) string {
		return dbtest.PostgresURL(t, "kitmig", func(context.Context, string) error { return nil })
	},
}

func TestMigrationsApply(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			m := twoMigrations(t)
			st, err := m.Status(ctx, url)
			if err != nil || !st.Behind() || st.Adopt || len(st.Pending) != 2 {
				t.Fatalf("status of an empty database: %+v, %v", st, err)
			}
			rep, err := m.Apply(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Applied) != 2 || rep.Adopted != "" || rep.Current != "20250102000000" {
				t.Fatalf("report %+v", rep)
			}
			if st, err := m.Status(ctx, url); err != nil || st.Behind() || st.Current != "20250102000000" {
				t.Fatalf("status after: %+v, %v", st, err)
			}
			if rep, err := m.Apply(ctx, url); err != nil || len(rep.Applied) != 0 {
				t.Fatalf("second run: %+v, %v", rep, err)
			}
			d := open(t, url)
			if _, err := d.Exec("INSERT INTO parents (id, note) VALUES ('p', 'n')"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec("DELETE FROM parents"); err == nil || !strings.Contains(err.Error(), "no; really") {
				t.Fatalf("the trigger of the second migration did not refuse: %v", err)
			}
			var baseline bool
			var hash string
			if err := d.QueryRow("SELECT hash, baseline FROM "+db.RevisionsTable+" WHERE version = '20250101000000'").Scan(&hash, &baseline); err != nil || baseline || len(hash) != 64 {
				t.Fatalf("revision: %s %v %v", hash, baseline, err)
			}
		})
	}
}

func TestMigrationsRefuseTampering(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			if _, err := twoMigrations(t).Apply(ctx, url); err != nil {
				t.Fatal(err)
			}
			// The first file edited after the database applied it, with
			// atlas.sum rewritten to match: the database's hash refuses it.
			edited := migrations(t, map[string]map[string]string{
				"sqlite":   {"20250101000000_init.sql": v1 + "-- edited\n", "20250102000000_note.sql": v2SQLite},
				"postgres": {"20250101000000_init.sql": v1 + "-- edited\n", "20250102000000_note.sql": v2Postgres},
			}, nil)
			_, err := edited.Apply(ctx, url)
			if !errors.Is(err, db.ErrHashMismatch) || !strings.Contains(err.Error(), "20250101000000_init.sql") {
				t.Fatalf("apply: %v", err)
			}
			if _, err := edited.Status(ctx, url); !errors.Is(err, db.ErrHashMismatch) {
				t.Fatalf("status: %v", err)
			}
			// Edited without rewriting atlas.sum: refused before touching
			// the database.
			unsummed := migrations(t, map[string]map[string]string{
				"sqlite":   {"20250101000000_init.sql": v1, "20250102000000_note.sql": v2SQLite},
				"postgres": {"20250101000000_init.sql": v1, "20250102000000_note.sql": v2Postgres},
			}, func(fsys fstest.MapFS) {
				for _, dir := range []string{"sqlite", "postgres"} {
					fsys[dir+"/20250102000000_note.sql"].Data = append([]byte("DROP TABLE parents;\n"), fsys[dir+"/20250102000000_note.sql"].Data...)
				}
			})
			if _, err := unsummed.Apply(ctx, url); err == nil || !strings.Contains(err.Error(), "20250102000000_note.sql was edited") {
				t.Fatalf("apply with a stale atlas.sum: %v", err)
			}
		})
	}
}

func TestMigrationsAdoptExistingDatabase(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			// A database made before versioned migrations: the first
			// migration's schema, rows, no revisions.
			d := open(t, url)
			for _, stmt := range strings.Split(strings.TrimSpace(v1), ";\n") {
				if _, err := d.Exec(stmt); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.Exec("INSERT INTO parents (id, name) VALUES ('p1', 'one'), ('p2', 'two')"); err != nil {
				t.Fatal(err)
			}
			m := twoMigrations(t)
			if st, err := m.Status(ctx, url); err != nil || !st.Adopt || len(st.Pending) != 2 {
				t.Fatalf("status: %+v, %v", st, err)
			}
			rep, err := m.Apply(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Adopted != "20250101000000" || len(rep.Applied) != 1 || rep.Applied[0] != "20250102000000_note.sql" {
				t.Fatalf("report %+v", rep)
			}
			var n int
			if err := d.QueryRow("SELECT count(*) FROM parents WHERE note = ''").Scan(&n); err != nil || n != 2 {
				t.Fatalf("rows after adoption: %d, %v", n, err)
			}
			var baseline bool
			if err := d.QueryRow("SELECT baseline FROM " + db.RevisionsTable + " WHERE version = '20250101000000'").Scan(&baseline); err != nil || !baseline {
				t.Fatalf("baseline recorded: %v %v", baseline, err)
			}
		})
	}
}

func TestMigrationsRefuseForeignSchema(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			d := open(t, url)
			// The first migration's tables, but one column short.
			if _, err := d.Exec("CREATE TABLE parents (id TEXT NOT NULL, PRIMARY KEY (id))"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec("CREATE TABLE children (id TEXT NOT NULL, parent_id TEXT NOT NULL REFERENCES parents (id), PRIMARY KEY (id))"); err != nil {
				t.Fatal(err)
			}
			_, err := twoMigrations(t).Apply(ctx, url)
			if err == nil || !strings.Contains(err.Error(), "cannot be adopted") || !strings.Contains(err.Error(), "name") {
				t.Fatalf("apply: %v", err)
			}
			var n int
			if err := d.QueryRow("SELECT count(*) FROM " + db.RevisionsTable).Scan(&n); err != nil || n != 0 {
				t.Fatalf("revisions recorded: %d, %v", n, err)
			}
		})
	}
}

func TestMigrationsUnknownVersions(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			if _, err := twoMigrations(t).Apply(ctx, url); err != nil {
				t.Fatal(err)
			}
			// An older binary (one migration) on a database a newer one
			// migrated: up to date, the newer version reported.
			older := migrations(t, map[string]map[string]string{
				"sqlite": {"20250101000000_init.sql": v1}, "postgres": {"20250101000000_init.sql": v1},
			}, nil)
			st, err := older.Status(ctx, url)
			if err != nil || st.Behind() || len(st.Unknown) != 1 || st.Unknown[0] != "20250102000000" {
				t.Fatalf("status: %+v, %v", st, err)
			}
			if _, err := older.Apply(ctx, url); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMigrationsConcurrent: migrators started together serialize (the
// advisory lock on PostgreSQL, immediate transactions on SQLite); each
// migration runs once and every migrator succeeds.
func TestMigrationsConcurrent(t *testing.T) {
	for name, newURL := range databases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			m := twoMigrations(t)
			const n = 4
			reports := make([]db.Report, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reports[i], errs[i] = m.Apply(ctx, url)
				}()
			}
			wg.Wait()
			applied := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("migrator %d: %v", i, errs[i])
				}
				applied += len(reports[i].Applied)
			}
			if applied != 2 {
				t.Fatalf("%d migrations applied in all, want 2: %+v", applied, reports)
			}
			var rows int
			if err := open(t, url).QueryRow("SELECT count(*) FROM " + db.RevisionsTable).Scan(&rows); err != nil || rows != 2 {
				t.Fatalf("%d revisions, %v", rows, err)
			}
		})
	}
}

func TestLockKeyDiffersBySchema(t *testing.T) {
	if db.LockKey("orgs") == db.LockKey("audit") {
		t.Fatal("two schemas share a migration lock")
	}
}

func open(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url, "kitmig")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
