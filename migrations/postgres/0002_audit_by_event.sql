-- spin-auth schema, version 2: the audit trail filtered by event, newest
-- first (the administration's audit listing). An index only.

CREATE INDEX audit_events_event ON audit_events (event, id);
