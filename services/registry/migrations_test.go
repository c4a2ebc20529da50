package registry_test

import (
	"testing"

	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/registry/internal/ent/migrate"
)

// TestMigrationsCoverSchema fails when the ent schema changed without a
// migration (`make migrations NAME=...` writes it).
func TestMigrationsCoverSchema(t *testing.T) {
	dbtest.CheckMigrations(t, migrate.Tables, "internal/ent/migrate/migrations")
}
