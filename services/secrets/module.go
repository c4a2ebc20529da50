package secrets

import "github.com/pyleeai/pylee/kit/module"

// Module is the secrets target; it serves nothing yet.
func Module() module.Module { return module.Module{Name: Target} }
