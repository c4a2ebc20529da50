// Package deploy is the deploy service of Pylee: deployments that run pinned server versions, with canary rollout, rollback and health checks.
// It has no RPCs yet; the pylee binary lists it as a target so deployments
// can be laid out now.
package deploy

// Target is the name of this service in `pylee serve --target`.
const Target = "deploy"
