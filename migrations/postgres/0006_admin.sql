-- spin-auth schema, version 6: administration. Roles granted by an admin
-- persist per user (comma-separated; `user` always), an account can be
-- disabled, and the last successful login is kept for the user listing.

ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT 'user';

-- 1 when an admin took `admin` away from an address admin_emails lists:
-- the configuration grants it again only at the next login.
ALTER TABLE users ADD COLUMN admin_withheld BIGINT NOT NULL DEFAULT 0;

ALTER TABLE users ADD COLUMN disabled_at BIGINT;

ALTER TABLE users ADD COLUMN last_login_at BIGINT;

-- The audit listing filtered by user, newest first (by id, the order of
-- insertion), replacing the index by time.
DROP INDEX audit_events_user;

CREATE INDEX audit_events_user ON audit_events (user_id, id);

-- The user listing: email prefixes and pages in byte order, the same
-- order SQLite uses, whatever the database's collation.
CREATE INDEX users_email_bytes ON users (email COLLATE "C");
