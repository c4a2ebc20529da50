-- audit_events is append-only: any UPDATE, DELETE or TRUNCATE raises an
-- error. Written by hand (atlas does not manage triggers); idempotent, so it
-- also runs on a database adopted at the baseline, which has them already.
CREATE OR REPLACE FUNCTION pylee_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION pylee_audit_append_only();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION pylee_audit_append_only();
