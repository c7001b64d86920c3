-- spin-auth schema, version 1 (PostgreSQL).
-- Times are BIGINT seconds since the Unix epoch: portable, and readable
-- through Spin's PostgreSQL interface (which cannot read timestamptz).
-- Each statement ends with a semicolon at the end of a line; the runner
-- sends them one by one, in one transaction.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roles TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    user_agent TEXT NOT NULL,
    ip TEXT NOT NULL,
    current_digest TEXT NOT NULL
);

CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    digest TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    retired_at BIGINT,
    next_digest TEXT,
    next_sealed TEXT
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE counters (
    key TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    window_ends_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    detail TEXT
);

CREATE INDEX audit_events_user ON audit_events (user_id, at);

CREATE TABLE topics (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE questions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic_id TEXT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    prompt TEXT NOT NULL,
    choices TEXT NOT NULL,
    answer_index BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX questions_topic ON questions (topic_id, seq);

CREATE TABLE answers (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    topic_id TEXT NOT NULL,
    answer_index BIGINT NOT NULL,
    correct BIGINT NOT NULL,
    answered_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, question_id)
);

CREATE INDEX answers_user_topic ON answers (user_id, topic_id);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
