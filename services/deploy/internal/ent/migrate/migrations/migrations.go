// Package migrations holds the deploy service's versioned migrations, one
// directory per dialect, written by its generator (../../migrategen:
// `make migrations NAME=...`) and applied by kit/db.
package migrations

import "embed"

// FS holds sqlite/ and postgres/: the .sql files and their atlas.sum.
//
//go:embed sqlite/*.sql sqlite/atlas.sum postgres/*.sql postgres/atlas.sum
var FS embed.FS
