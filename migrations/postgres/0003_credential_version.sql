-- spin-auth schema, version 3: a counter bumped by every password change
-- or reset (not by a re-hash), so that a login checked against the old
-- password ends the session it created when a change overtook it.

ALTER TABLE users ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;
