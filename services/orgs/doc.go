// Package orgs is the orgs service: organizations now, and members, teams,
// roles, bindings and tokens as they come. Handlers take protos in and give
// protos out; persistence is behind internal/store.
package orgs

// Target is the name of this service in `pylee serve --target`.
const Target = "orgs"
