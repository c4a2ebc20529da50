// Command migrategen writes the registry service's versioned migrations from its
// ent schema (see kit/db/migrategen); `make migrations NAME=...` runs it.
package main

import (
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/services/registry/internal/ent/migrate"
)

func main() {
	migrategen.Main("registry", migrate.Tables, "services/registry/internal/ent/migrate/migrations")
}
