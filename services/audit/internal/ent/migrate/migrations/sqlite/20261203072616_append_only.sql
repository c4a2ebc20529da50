-- audit_events is append-only: any UPDATE or DELETE is aborted. Written by
-- hand (atlas does not manage triggers); idempotent, so it also runs on a
-- database adopted at the baseline, which has them already.
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
	 BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
	 BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END;
