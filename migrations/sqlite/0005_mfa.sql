-- spin-auth schema, version 5: two-factor sign-in (TOTP and recovery
-- codes). Everything is keyed by user and goes with the account.

-- One TOTP secret per user, sealed (ChaCha20-Poly1305) under the
-- mfa_encryption_key: a dump of this table does not reveal it.
-- enabled_at is null while the enrolment awaits its first code.
CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    enabled_at BIGINT,
    -- The last 30-second step whose code was accepted: a code is never
    -- accepted twice.
    last_used_step BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes, only as digests.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, digest)
);

-- Logins that proved the password and wait for the second factor: the
-- mfa_token's digest, single use, short-lived.
CREATE TABLE mfa_challenges (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);

-- How each session's login was authenticated (RFC 8176 `amr` values,
-- comma-separated), carried into the access tokens of every refresh.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
