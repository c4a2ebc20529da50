// Package ent is the generated persistence layer of the deploy service;
// edit the schema in ./schema and run `make generate`.
package ent

//go:generate go tool ent generate --feature sql/lock,sql/execquery,sql/upsert ./schema
