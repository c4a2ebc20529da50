// Package deploy is the deploy service of Pylee: it follows every
// registry's entries and runs the pinned version of each (npm, PyPI, a
// command, or a remote reached directly), supervised, with canary
// rollouts, automatic and instant rollback, for the gateway to route to.
package deploy

// Target is the name of this service in `pylee serve --target`.
const Target = "deploy"
