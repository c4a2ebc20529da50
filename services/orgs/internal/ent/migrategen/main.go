// Command migrategen writes the orgs service's versioned migrations from its
// ent schema (see kit/db/migrategen); `make migrations NAME=...` runs it.
package main

import (
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/services/orgs/internal/ent/migrate"
)

func main() {
	migrategen.Main("orgs", migrate.Tables, "services/orgs/internal/ent/migrate/migrations")
}
