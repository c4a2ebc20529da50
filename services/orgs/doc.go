// Package orgs is the orgs service: organizations now, and members, teams,
// roles, bindings and tokens as they come. Handlers take protos in and give
// protos out; persistence is behind internal/store.
package orgs
