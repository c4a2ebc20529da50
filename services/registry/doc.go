// Package registry is the registry service of Pylee: registries of MCP servers with immutable semver versions, pinned entries, approval workflows and the official MCP Registry read API.
// Servers are in place; versions, registries, entries, approvals and the
// official registry API follow.
package registry

// Target is the name of this service in `pylee serve --target`.
const Target = "registry"
