// Package registry is the registry service of Pylee: registries of MCP servers with immutable semver versions, pinned entries, approval workflows and the official MCP Registry read API.
// It has no RPCs yet; the pylee binary lists it as a target so deployments
// can be laid out now.
package registry

// Target is the name of this service in `pylee serve --target`.
const Target = "registry"
