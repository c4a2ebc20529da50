// Package ent is the generated persistence layer of the secrets service;
// edit the schema in ./schema and run `make generate`.
package ent

//go:generate go tool ent generate --feature sql/lock,sql/execquery ./schema
