// Command migrategen writes the deploy service's versioned migrations from
// its ent schema (see kit/db/migrategen); `make migrations NAME=...` runs it.
package main

import (
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/services/deploy/internal/ent/migrate"
)

func main() {
	migrategen.Main("deploy", migrate.Tables, "services/deploy/internal/ent/migrate/migrations")
}
