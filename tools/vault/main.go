// Command vault is HashiCorp Vault, built from its module for Pylee's tests
// of the Vault secrets backend: `go install github.com/hashicorp/vault@…`
// is refused because Vault's go.mod has replace directives, so this module
// repeats them. It is outside go.work; tools/vault/build.sh builds it into
// tools/bin/vault (git-ignored) once and later runs reuse it.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
