// Command permdoc writes docs/permissions.md from the permission catalog
// and the built-in roles, so the document cannot drift from the code
// (`make generate` runs it; CI fails on a diff).
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pyleeai/pylee/services/orgs/internal/access"
)

func main() {
	var b strings.Builder
	b.WriteString("# Permissions and roles\n\n")
	b.WriteString("Generated from `services/orgs/internal/access` by `make generate`; do not edit.\n\n")
	b.WriteString("A role binding grants a role to a user, team or service account on an organization, a registry,\n")
	b.WriteString("a server or one tool, and holds for everything below it (org > registry > server > tool; a server\n")
	b.WriteString("reached through a registry also inherits the registry's grants). Deny by default; permissions only\n")
	b.WriteString("add. Nobody can grant a role holding a permission they lack on that resource.\n\n")
	roles := append(append([]access.Role{}, access.BuiltinRoles...), access.RoleInstallationOwner)
	b.WriteString("| permission | what it allows |")
	for _, r := range roles {
		b.WriteString(" " + strings.TrimPrefix(r.Name, "roles/") + " |")
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" --- |", len(roles)) + "\n")
	for _, p := range access.Permissions {
		fmt.Fprintf(&b, "| `%s` | %s |", p.Name, p.Description)
		for _, r := range roles {
			if r.Permissions[p.Name] {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString("  |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Roles\n\n")
	for _, r := range roles {
		fmt.Fprintf(&b, "- `%s` (%s): %s\n", r.Name, r.Title, r.Description)
	}
	b.WriteString("\n## Held by every authenticated principal\n\n")
	b.WriteString("`users.get` (whoami), `orgs.list` (the list shows only organizations the caller may see),\n")
	b.WriteString("`audit.key.get`, `access.check` (about oneself), and `tokens.*` on one's own `users/{id}`.\n\n")
	b.WriteString("## Service identities only\n\n`audit.append`, `tokens.verify`; service identities hold every permission.\n")
	if _, err := os.Stdout.WriteString(b.String()); err != nil {
		os.Exit(1)
	}
}
