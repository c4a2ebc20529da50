package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
	"github.com/pyleeai/pylee/kit/db"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/audit"
	"github.com/pyleeai/pylee/services/orgs"
	"github.com/pyleeai/pylee/services/registry"
)

// The fixtures in testdata/premigrations were made by the pylee of commit
// 426abfd, whose stores migrated themselves with ent's auto-migration
// (testdata/premigrations/make.sh): a data directory of SQLite files and a
// dump of a PostgreSQL database, each with organizations, a server, a
// version, registries, a pending approval, tokens, bindings, a role, a
// team, an invitation and their audit events.
const premigrations = "testdata/premigrations"

var schemas = []string{"orgs", "registry", "audit"}

// behindTargets lists the services whose database (under dataDir, or
// databaseURL) is behind its migrations.
func behindTargets(t *testing.T, dataDir, databaseURL string) []string {
	t.Helper()
	status := map[string]func(context.Context, string) (db.Status, error){
		"orgs": orgs.SchemaStatus, "registry": registry.SchemaStatus, "audit": audit.SchemaStatus,
	}
	var behind []string
	for _, s := range schemas {
		url := databaseURL
		if url == "" {
			url = "sqlite:" + filepath.Join(dataDir, s+".db")
		}
		st, err := status[s](context.Background(), url)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if st.Behind() {
			behind = append(behind, s)
		}
	}
	return behind
}

// TestMigrateOldSQLiteDataDir: a data directory made before versioned
// migrations. serve refuses it naming the command; migrate adopts every
// database at its baseline (and adds the audit triggers' migration) with
// every row kept; the installation then works: the old admin token, the
// old organization, new writes, and an audit chain that still verifies
// across the upgrade.
func TestMigrateOldSQLiteDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(premigrations, "sqlite"))); err != nil {
		t.Fatal(err)
	}
	before := sqliteRows(t, dir)
	acmeEvents := count(t, "sqlite:"+filepath.Join(dir, "audit.db"), "SELECT count(*) FROM audit_events WHERE organization = 'acme'")

	_, errOut, code := cli.ExecuteCapture([]string{"serve", "--target=orgs", "--data-dir", dir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-level", "warn"})
	if code == 0 || !strings.Contains(errOut, `run "pylee migrate --target=orgs" or start with --migrate`) ||
		!strings.Contains(errOut, "made before versioned migrations") {
		t.Fatalf("serve on an old database: exit %d: %s", code, errOut)
	}
	if got := sqliteRows(t, dir); !maps.Equal(got, before) {
		t.Fatalf("a refused serve changed the databases: %v, was %v", got, before)
	}

	out, errOut, code := cli.ExecuteCapture([]string{"migrate", "--data-dir", dir})
	if code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	for _, s := range schemas {
		if !strings.Contains(out, s+": adopted the existing database") {
			t.Errorf("migrate did not adopt %s: %s", s, out)
		}
	}
	if !strings.Contains(out, "_append_only.sql") {
		t.Errorf("migrate did not apply the audit triggers' migration: %s", out)
	}
	after := sqliteRows(t, dir)
	for k, n := range before {
		if after[k] != n {
			t.Errorf("%s: %d rows after migrating, %d before", k, after[k], n)
		}
	}
	if b := behindTargets(t, dir, ""); len(b) > 0 {
		t.Fatalf("behind after migrate: %v", b)
	}
	if out, _, code := cli.ExecuteCapture([]string{"migrate", "--data-dir", dir, "--target", "orgs,gateway"}); code != 0 ||
		!strings.Contains(out, "orgs: up to date") || !strings.Contains(out, "gateway: no database") {
		t.Fatalf("second migrate: %d %s", code, out)
	}

	u := startUpAt(t, dir)
	if r := u.expect(t, "GET", "/v1/orgs/acme", u.token, "", 200); r.body["displayName"] != "Acme" {
		t.Fatalf("old organization: %v", r.body)
	}
	u.expect(t, "GET", "/v1/orgs/acme/servers/github", u.token, "", 200)
	// Verified before any new write, whose event the relay delivers while
	// the chain is read.
	verifyChain(t, u, "acme", acmeEvents)
	u.expect(t, "POST", "/v1/orgs?organization_id=initech", u.token, `{"displayName":"Initech"}`, 200)
	u.expect(t, "PATCH", "/v1/orgs/acme?update_mask=description", u.token, `{"description":"after the upgrade"}`, 200)
}

// TestMigrateOldPostgresDatabase: the same for a PostgreSQL database made
// before versioned migrations (one schema per service), migrated by two
// `pylee migrate` processes at once: both succeed, each database is
// adopted once, no row is lost.
func TestMigrateOldPostgresDatabase(t *testing.T) {
	url := dbtest.PostgresURL(t, "premigrations", func(context.Context, string) error { return nil })
	dump, err := os.ReadFile(filepath.Join(premigrations, "postgres", "dump.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// pg_dump's restore script, on a connection of its own: it empties
	// the session's search_path.
	restore, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.Exec(string(dump))
	restore.Close()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	before := postgresRows(t, pg)
	acmeEvents := count(t, url, "SELECT count(*) FROM audit.audit_events WHERE organization = 'acme'")

	_, errOut, code := cli.ExecuteCapture([]string{"serve", "--target=registry,orgs", "--database-url", url, "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-level", "warn"})
	if code == 0 || !strings.Contains(errOut, `run "pylee migrate --target=orgs,registry" or start with --migrate`) {
		t.Fatalf("serve on an old database: exit %d: %s", code, errOut)
	}

	outs := migrateTwice(t, "--database-url", url, "--data-dir", t.TempDir())
	all := strings.Join(outs, "\n")
	for _, s := range schemas {
		if n := strings.Count(all, s+": adopted the existing database"); n != 1 {
			t.Errorf("%s adopted %d times: %s", s, n, all)
		}
	}
	if n := strings.Count(all, "_append_only.sql"); n != 1 {
		t.Errorf("the audit triggers' migration applied %d times: %s", n, all)
	}
	after := postgresRows(t, pg)
	for k, n := range before {
		if after[k] != n {
			t.Errorf("%s: %d rows after migrating, %d before", k, after[k], n)
		}
	}
	if b := behindTargets(t, "", url); len(b) > 0 {
		t.Fatalf("behind after migrate: %v", b)
	}
	var baselines int
	for _, s := range schemas {
		var n int
		if err := pg.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s.%s WHERE baseline", s, db.RevisionsTable)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		baselines += n
	}
	if baselines != len(schemas) {
		t.Fatalf("%d baselines recorded, want %d", baselines, len(schemas))
	}
	if _, err := pg.Exec("UPDATE audit.audit_events SET id = id"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("audit_events not append-only after the upgrade: %v", err)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dataDir, os.DirFS(filepath.Join(premigrations, "postgres"))); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dataDir, "dump.sql"))
	u := startUpAt(t, dataDir, "--database-url", url)
	if r := u.expect(t, "GET", "/v1/orgs/acme", u.token, "", 200); r.body["displayName"] != "Acme" {
		t.Fatalf("old organization: %v", r.body)
	}
	verifyChain(t, u, "acme", acmeEvents)
	u.expect(t, "POST", "/v1/orgs?organization_id=initech", u.token, `{"displayName":"Initech"}`, 200)
}

// TestMigrateConcurrentPostgres: two `pylee migrate` processes at once on
// a new PostgreSQL database both succeed, and every migration runs once.
func TestMigrateConcurrentPostgres(t *testing.T) {
	url := dbtest.PostgresURL(t, "migrateconcurrent", func(context.Context, string) error { return nil })
	outs := migrateTwice(t, "--database-url", url, "--data-dir", t.TempDir())
	all := strings.Join(outs, "\n")
	if strings.Contains(all, "adopted") {
		t.Fatalf("a new database was adopted: %s", all)
	}
	pg, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, s := range schemas {
		files, err := fs.Glob(os.DirFS("../../services/"+s+"/internal/ent/migrate/migrations/postgres"), "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if n := strings.Count(all, s+": applied "+f); n != 1 {
				t.Errorf("%s: %s applied %d times:\n%s", s, f, n, all)
			}
		}
		var n int
		if err := pg.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s.%s", s, db.RevisionsTable)).Scan(&n); err != nil || n != len(files) {
			t.Errorf("%s: %d revisions, want %d (%v)", s, n, len(files), err)
		}
	}
	if b := behindTargets(t, "", url); len(b) > 0 {
		t.Fatalf("behind after migrate: %v", b)
	}
}

// TestMigrateServeRefusesBehind: `pylee serve` on a new data directory
// refuses to start, naming the command; after `pylee migrate --target=orgs`
// it starts; `--migrate` migrates by itself; a database whose recorded
// migration differs from this pylee's file is refused by serve and migrate.
func TestMigrateServeRefusesBehind(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// serve runs `pylee serve --target=orgs` until it is up (then stops
	// it) or exits, and returns its log and exit code.
	serve := func(extra ...string) (string, int) {
		args := append([]string{"serve", "--target=orgs", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
			"--grpc-addr", "127.0.0.1:0", "--audit-addr", "127.0.0.1:1", "--log-level", "info", "--shutdown-timeout", "1s"}, extra...)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out, errOut := &syncBuffer{}, &syncBuffer{}
		done := make(chan int, 1)
		go func() { done <- cli.Execute(ctx, args, out, errOut) }()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case code := <-done:
				return errOut.String(), code
			case <-deadline:
				t.Fatalf("serve neither started nor exited: %s", errOut.String())
			case <-time.After(20 * time.Millisecond):
				if strings.Contains(errOut.String(), "pylee started") {
					cancel()
					return errOut.String(), <-done
				}
			}
		}
	}
	errOut, code := serve()
	if code == 0 || !strings.Contains(errOut, `run "pylee migrate --target=orgs" or start with --migrate`) {
		t.Fatalf("serve on a new database: exit %d: %s", code, errOut)
	}
	if out, errOut, code := cli.ExecuteCapture([]string{"migrate", "--target=orgs", "--data-dir", dir}); code != 0 || !strings.Contains(out, "orgs: applied") {
		t.Fatalf("migrate: exit %d: %s %s", code, out, errOut)
	}
	if errOut, code := serve(); code != 0 {
		t.Fatalf("serve after migrate: exit %d: %s", code, errOut)
	}
	// Another target's database: --migrate migrates it.
	dir = filepath.Join(t.TempDir(), "data")
	if errOut, code := serve("--migrate"); code != 0 {
		t.Fatalf("serve --migrate: exit %d: %s", code, errOut)
	}
	if b := behindTargets(t, dir, ""); !slices.Equal(b, []string{"registry", "audit"}) {
		t.Fatalf("behind after serve --target=orgs --migrate: %v", b)
	}

	// The database applied a migration whose file then changed.
	d, err := db.Open(context.Background(), "sqlite:"+filepath.Join(dir, "orgs.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec("UPDATE " + db.RevisionsTable + " SET hash = 'edited'"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, args := range [][]string{{"migrate", "--target=orgs", "--data-dir", dir}} {
		if _, errOut, code := cli.ExecuteCapture(args); code == 0 || !strings.Contains(errOut, "applied migration differs from the checked-in file") {
			t.Fatalf("%v on a tampered database: exit %d: %s", args, code, errOut)
		}
	}
	if errOut, code := serve(); code == 0 || !strings.Contains(errOut, "applied migration differs from the checked-in file") {
		t.Fatalf("serve on a tampered database: exit %d: %s", code, errOut)
	}
}

// TestMigrateUp: `pylee up` migrates its databases by itself.
func TestMigrateUp(t *testing.T) {
	u := startUp(t)
	if b := behindTargets(t, u.dataDir, ""); len(b) > 0 {
		t.Fatalf("behind after up: %v", b)
	}
}

// migrateTwice runs two `pylee migrate` processes at once and returns what
// each printed; both must succeed.
func migrateTwice(t *testing.T, args ...string) []string {
	t.Helper()
	bin := pyleeBinary(t)
	outs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errOut bytes.Buffer
			cmd := exec.Command(bin, append([]string{"migrate"}, args...)...)
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("%v: %s", err, errOut.String())
			}
			outs[i] = out.String()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
	return outs
}

// verifyChain checks that org's audit log verifies and holds at least the
// events it had before the upgrade.
func verifyChain(t *testing.T, u *upInstance, org string, eventsBefore int) {
	t.Helper()
	r := u.expect(t, "POST", "/v1/orgs/"+org+"/events:verify", u.token, `{}`, 200)
	var checked int
	_, _ = fmt.Sscan(fmt.Sprint(r.body["checked"]), &checked)
	if r.body["ok"] != true || checked < eventsBefore {
		t.Fatalf("audit log of %s after the upgrade: %v (%d events of it before)", org, r.body, eventsBefore)
	}
}

// sqliteRows counts the rows of every table of every database in dir.
func sqliteRows(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, s := range schemas {
		d, err := db.Open(context.Background(), "sqlite:"+filepath.Join(dir, s+".db"), "")
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		rows, err := d.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?", db.RevisionsTable)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, name)
		}
		rows.Close()
		for _, table := range tables {
			var n int
			if err := d.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[s+"."+table] = n
		}
		d.Close()
	}
	return out
}

// postgresRows counts the rows of every table of the services' schemas.
func postgresRows(t *testing.T, pg *sql.DB) map[string]int {
	t.Helper()
	rows, err := pg.Query("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' AND table_name <> $2",
		schemas, db.RevisionsTable)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var s, table string
		if err := rows.Scan(&s, &table); err != nil {
			t.Fatal(err)
		}
		names = append(names, s+"."+table)
	}
	rows.Close()
	out := map[string]int{}
	for _, name := range names {
		var n int
		if err := pg.QueryRow("SELECT count(*) FROM " + name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	if len(out) < 20 {
		t.Fatalf("only %d tables: %v", len(out), out)
	}
	return out
}

// count runs a count query on the database at url.
func count(t *testing.T, url, query string) int {
	t.Helper()
	d, err := db.Open(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
