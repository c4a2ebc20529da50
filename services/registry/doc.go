// Package registry is the registry service of Pylee: MCP servers and their
// immutable SemVer versions (server.json and tools), registries with
// inheritance and settings, entries that pin a version, approval
// workflows, and the data the gateway serves as the official MCP Registry
// read API.
package registry

// Target is the name of this service in `pylee serve --target`.
const Target = "registry"
