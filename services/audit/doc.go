// Package audit is the audit service of Pylee: the append-only, hash-chained audit log, usage and budgets.
// It has no RPCs yet; the pylee binary lists it as a target so deployments
// can be laid out now.
package audit

// Target is the name of this service in `pylee serve --target`.
const Target = "audit"
