// Package audit is the audit service of Pylee: the append-only, hash-chained audit log, usage and budgets.
// Services record events in their own database's outbox (kit/outbox); a
// relay delivers them here, where each organization's events form a hash
// chain with signed checkpoints (kit/auditlog).
package audit

// Target is the name of this service in `pylee serve --target`.
const Target = "audit"
