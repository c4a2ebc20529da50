// Package names is the one source of Pylee's resource names: a pattern per
// resource, which validators match names against, and a small type per
// resource that formats and parses its name, so no code builds or cuts a
// name by hand.
package names
