// Command actiondoc writes docs/audit-actions.md from the actions catalog
// (`make generate` runs it; CI fails on a diff).
package main

import (
	"fmt"

	"github.com/pyleeai/pylee/cmd/pylee/internal/actions"
)

func main() { fmt.Print(actions.Markdown()) }
