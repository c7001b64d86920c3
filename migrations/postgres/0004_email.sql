-- spin-auth schema, version 4: email verification, password recovery and
-- the mail outbox.

ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

-- Single-use links: only a digest of each token is kept.
CREATE TABLE email_tokens (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Every message is stored before it is sent, and kept until delivered.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT
);

CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
