package dbtest

import (
	"os"
	"testing"
)

// Main runs the tests of a package and drops its template databases.
// Use it as `func TestMain(m *testing.M) { dbtest.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	DropTemplates()
	os.Exit(code)
}
