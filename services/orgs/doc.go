// Package orgs is the orgs service: organizations, members and invitations,
// teams, service accounts and API tokens, roles and role bindings, the
// access engine that answers every decision (Check), and sign-in through
// organizations' identity providers. Handlers take protos in and give
// protos out; persistence is behind the Store interface of internal/store.
package orgs

// Target is the name of this service in `pylee serve --target`.
const Target = "orgs"
