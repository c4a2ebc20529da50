// Command migrategen writes the audit service's versioned migrations from its
// ent schema (see kit/db/migrategen); `make migrations NAME=...` runs it.
package main

import (
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/services/audit/internal/ent/migrate"
)

func main() {
	migrategen.Main("audit", migrate.Tables, "services/audit/internal/ent/migrate/migrations")
}
