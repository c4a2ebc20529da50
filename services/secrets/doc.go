// Package secrets is the secrets service of Pylee: secrets and variables at user, server, registry and org scope, held in Vault or the built-in keyring.
// It has no RPCs yet; the pylee binary lists it as a target so deployments
// can be laid out now.
package secrets

// Target is the name of this service in `pylee serve --target`.
const Target = "secrets"
