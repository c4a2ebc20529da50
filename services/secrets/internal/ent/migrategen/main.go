// Command migrategen writes the secrets service's versioned migrations from
// its ent schema (see kit/db/migrategen); `make migrations NAME=...` runs it.
package main

import (
	"github.com/pyleeai/pylee/kit/db/migrategen"
	"github.com/pyleeai/pylee/services/secrets/internal/ent/migrate"
)

func main() {
	migrategen.Main("secrets", migrate.Tables, "services/secrets/internal/ent/migrate/migrations")
}
