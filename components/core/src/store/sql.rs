//! The stores over a SQL database, written once for PostgreSQL and SQLite.
//!
//! Statements use `$1`-style placeholders, integers for times and flags and
//! text for ids, which both databases read the same way; the SQLite driver
//! rewrites placeholders to `?1`. Where the dialects differ (how a
//! transaction takes its lock), [`Dialect`] says which form to use.

use std::cell::Cell;

use crate::clock::{self, Millis, Timestamp};
use crate::domain::{Email, User};
use crate::store::{
    AuditEvent, AuditLog, CounterStore, Credentials, NewSession, NewUser, RotatedSession, Rotation,
    SessionInfo, SessionPolicy, SessionStore, Store, StoreError, StoreResult, TokenOwner,
    UserStore, migrations,
};
use crate::tokens::TokenDigest;

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// Starts a transaction that will write. SQLite takes the write lock at
    /// once, so two such transactions never deadlock upgrading a read lock.
    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// Suffix of a `SELECT` that locks the rows it reads until commit.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            // BEGIN IMMEDIATE already holds the database's write lock.
            Dialect::Sqlite => "",
        }
    }
}

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer (`BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(text: &str) -> Self {
        SqlValue::Text(text.to_owned())
    }
}

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        SqlValue::Int(n)
    }
}

impl From<Option<&str>> for SqlValue {
    fn from(text: Option<&str>) -> Self {
        text.map_or(SqlValue::Null, SqlValue::from)
    }
}

/// A result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    /// Text column `index`; a type mismatch is a bug, reported as one.
    pub fn text(&self, index: usize) -> anyhow::Result<String> {
        match self.0.get(index) {
            Some(SqlValue::Text(text)) => Ok(text.clone()),
            other => anyhow::bail!("column {index}: expected text, found {other:?}"),
        }
    }

    /// Nullable text column `index`.
    pub fn optional_text(&self, index: usize) -> anyhow::Result<Option<String>> {
        match self.0.get(index) {
            Some(SqlValue::Null) => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    /// Integer column `index`.
    pub fn int(&self, index: usize) -> anyhow::Result<i64> {
        match self.0.get(index) {
            Some(SqlValue::Int(n)) => Ok(*n),
            other => anyhow::bail!("column {index}: expected an integer, found {other:?}"),
        }
    }

    /// Nullable integer column `index`.
    pub fn optional_int(&self, index: usize) -> anyhow::Result<Option<i64>> {
        match self.0.get(index) {
            Some(SqlValue::Null) => Ok(None),
            _ => self.int(index).map(Some),
        }
    }
}

/// How a statement failed, as far as the store needs to know.
#[derive(Debug)]
pub enum SqlError {
    /// The server is unreachable.
    Unavailable(String),
    /// The host's `allowed_outbound_hosts` does not list the server.
    Refused,
    /// A table or column does not exist: the schema is behind.
    MissingSchema(String),
    /// A unique constraint refused the row.
    UniqueViolation(String),
    /// Anything else.
    Other(String),
}

/// One database connection, opened on first use.
pub trait SqlDb {
    /// The dialect.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows.
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError>;
    /// Runs a statement; returns the rows it changed.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError>;
}

/// Users, audit, questions and (without Redis) sessions and counters, in
/// one SQL database.
pub struct SqlStore {
    db: Box<dyn SqlDb>,
    /// Whether this request has found the schema current (or made it so).
    schema_current: Cell<bool>,
}

fn store_error(error: SqlError) -> StoreError {
    match error {
        SqlError::Unavailable(cause) => StoreError::Unavailable(Store::Database, cause),
        SqlError::Refused => StoreError::Refused("database_allowed_host"),
        SqlError::MissingSchema(cause)
        | SqlError::UniqueViolation(cause)
        | SqlError::Other(cause) => StoreError::Other(anyhow::anyhow!(cause)),
    }
}

impl SqlStore {
    /// A store on `db`.
    pub fn new(db: Box<dyn SqlDb>) -> Self {
        Self {
            db,
            schema_current: Cell::new(false),
        }
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Brings the schema up to date, once per request: one read of its
    /// version, and the pending migrations if it is behind this code.
    fn ensure_schema(&self) -> Result<(), SqlError> {
        if self.schema_current.get() {
            return Ok(());
        }
        let db = self.db.as_ref();
        let behind = match migrations::database_version(db) {
            Ok(version) => version < migrations::current_version(),
            Err(SqlError::MissingSchema(_)) => true,
            Err(error) => return Err(error),
        };
        if behind {
            eprintln!("the database schema is behind; migrating");
            migrations::migrate(db)?;
        }
        self.schema_current.set(true);
        Ok(())
    }

    /// Runs `operation` on a current schema.
    fn with_schema<T>(
        &self,
        operation: impl Fn(&dyn SqlDb) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.ensure_schema()?;
        operation(self.db.as_ref())
    }

    /// Runs a query on a current schema.
    pub fn query(&self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Row>> {
        self.with_schema(|db| db.query(sql, params))
            .map_err(store_error)
    }

    /// Runs a statement on a current schema.
    pub fn execute(&self, sql: &str, params: &[SqlValue]) -> StoreResult<u64> {
        self.with_schema(|db| db.execute(sql, params))
            .map_err(store_error)
    }

    /// Runs an insert; `Ok(false)` when a unique constraint refused it.
    pub fn insert_unique(&self, sql: &str, params: &[SqlValue]) -> StoreResult<bool> {
        match self.with_schema(|db| db.execute(sql, params)) {
            Ok(_) => Ok(true),
            Err(SqlError::UniqueViolation(_)) => Ok(false),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Runs `work` in a write transaction: committed if it returns `Ok`,
    /// rolled back otherwise. The schema check happens before `BEGIN`.
    pub fn transaction<T>(&self, work: impl Fn(&Self) -> StoreResult<T>) -> StoreResult<T> {
        // Migrations run in transactions of their own: outside this one.
        self.ensure_schema().map_err(store_error)?;
        self.db
            .execute(self.dialect().begin(), &[])
            .map_err(store_error)?;
        match work(self) {
            Ok(value) => {
                self.db.execute("COMMIT", &[]).map_err(store_error)?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.db.execute("ROLLBACK", &[]);
                Err(error)
            }
        }
    }

    /// Checks the database answers (for `/health`).
    pub fn ping(&self) -> StoreResult<()> {
        self.db
            .query("SELECT 1", &[])
            .map(|_| ())
            .map_err(store_error)
    }

    /// A named setting (such as the generated signing key), if set.
    pub fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let rows = self.query("SELECT value FROM settings WHERE name = $1", &[name.into()])?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }

    /// Stores `value` under `name` unless a value is there already; returns
    /// the value that is stored after the call.
    pub fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String> {
        self.insert_unique(
            "INSERT INTO settings (name, value) VALUES ($1, $2)",
            &[name.into(), value.into()],
        )?;
        self.setting(name)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("setting {name} vanished")))
    }
}

/// Most successors followed from a replayed token to the current one.
pub const MAX_CHAIN: usize = 16;

fn user_from_row(row: &Row) -> anyhow::Result<User> {
    let email = row.text(1)?;
    Ok(User {
        id: row.text(0)?,
        email: Email::parse(&email).map_err(|e| anyhow::anyhow!("stored email {e}"))?,
        first_name: row.optional_text(2)?,
        last_name: row.optional_text(3)?,
        created_at: row.int(4)?,
        email_verified: row.optional_int(5)?.is_some(),
    })
}

const USER_COLUMNS: &str = "id, email, first_name, last_name, created_at, email_verified_at";

impl UserStore for SqlStore {
    fn insert_user(&self, user: &NewUser<'_>) -> StoreResult<bool> {
        self.insert_unique(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                user.id.into(),
                user.email.as_str().into(),
                user.password_hash.into(),
                user.first_name.into(),
                user.last_name.into(),
                user.created_at.into(),
            ],
        )
    }

    fn user_by_email(&self, email: &Email) -> StoreResult<Option<(User, Credentials)>> {
        let rows = self.query(
            &format!(
                "SELECT {USER_COLUMNS}, password_hash, credential_version FROM users WHERE email = $1"
            ),
            &[email.as_str().into()],
        )?;
        rows.first()
            .map(|row| {
                let credentials = Credentials {
                    hash: row.text(6)?,
                    version: row.int(7)?,
                };
                Ok((user_from_row(row)?, credentials))
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn credentials(&self, id: &str) -> StoreResult<Option<Credentials>> {
        let rows = self.query(
            "SELECT password_hash, credential_version FROM users WHERE id = $1",
            &[id.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(Credentials {
                    hash: row.text(0)?,
                    version: row.int(1)?,
                })
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let rows = self.query(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[id.into()],
        )?;
        rows.first()
            .map(user_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }

    fn upgrade_password_hash(&self, id: &str, old: &Credentials, hash: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND credential_version = $2",
            &[id.into(), old.version.into(), hash.into()],
        )?;
        Ok(())
    }

    fn mark_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1",
            &[id.into(), now.into()],
        )?;
        Ok(())
    }

    fn change_password_hash(&self, id: &str, hash: &str, now: Timestamp) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET password_hash = $2, updated_at = $3, \
             credential_version = credential_version + 1 WHERE id = $1",
            &[id.into(), hash.into(), now.into()],
        )?;
        Ok(())
    }
}

impl AuditLog for SqlStore {
    fn record(&self, event: &AuditEvent<'_>) -> StoreResult<()> {
        self.execute(
            "INSERT INTO audit_events (at, event, user_id, session_id, ip, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                event.at.into(),
                event.event.into(),
                event.user_id.into(),
                event.session_id.into(),
                event.ip.into(),
                event.user_agent.into(),
                event.detail.into(),
            ],
        )?;
        Ok(())
    }
}

/// A session row as rotation reads it.
struct SessionRow {
    user_id: String,
    roles: String,
    expires_at: Timestamp,
    current_digest: String,
}

impl SqlStore {
    fn locked_session(&self, session_id: &str, now: Timestamp) -> StoreResult<Option<SessionRow>> {
        let rows = self.query(
            &format!(
                "SELECT user_id, roles, expires_at, current_digest FROM sessions \
                 WHERE id = $1 AND expires_at > $2 AND idle_expires_at > $2{}",
                self.dialect().for_update()
            ),
            &[session_id.into(), now.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(SessionRow {
                    user_id: row.text(0)?,
                    roles: row.text(1)?,
                    expires_at: row.int(2)?,
                    current_digest: row.text(3)?,
                })
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn delete_session(&self, session_id: &str) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM refresh_tokens WHERE session_id = $1",
            &[session_id.into()],
        )?;
        self.execute("DELETE FROM sessions WHERE id = $1", &[session_id.into()])
    }

    /// The roles stored with a live session.
    pub fn session_roles(&self, session_id: &str) -> StoreResult<Option<String>> {
        let rows = self.query(
            "SELECT roles FROM sessions WHERE id = $1",
            &[session_id.into()],
        )?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }
}

impl SessionStore for SqlStore {
    fn create_session(
        &self,
        session: &NewSession<'_>,
        token: &TokenDigest,
        policy: &SessionPolicy,
    ) -> StoreResult<()> {
        let now = session.created_at;
        let expires_at = now + policy.max_lifetime as i64;
        let idle_expires_at = expires_at.min(now + policy.refresh_ttl as i64);
        // Sessions of this user that ended are met here, and removed.
        self.execute(
            "DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM sessions WHERE user_id = $1 AND (expires_at <= $2 OR idle_expires_at <= $2))",
            &[session.user_id.into(), now.into()],
        )?;
        self.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND (expires_at <= $2 OR idle_expires_at <= $2)",
            &[session.user_id.into(), now.into()],
        )?;
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO sessions (id, user_id, roles, created_at, last_used_at, expires_at, \
                 idle_expires_at, user_agent, ip, current_digest) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
                &[
                    session.id.into(),
                    session.user_id.into(),
                    session.roles.into(),
                    now.into(),
                    expires_at.into(),
                    idle_expires_at.into(),
                    session.user_agent.into(),
                    session.ip.into(),
                    token.as_str().into(),
                ],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (digest, session_id, expires_at) VALUES ($1, $2, $3)",
                &[
                    token.as_str().into(),
                    session.id.into(),
                    idle_expires_at.into(),
                ],
            )?;
            Ok(())
        })
    }

    fn rotate(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        sealed: &str,
        now: Timestamp,
        policy: &SessionPolicy,
    ) -> StoreResult<Rotation> {
        let rows = self.query(
            "SELECT session_id FROM refresh_tokens WHERE digest = $1 AND expires_at > $2",
            &[presented.as_str().into(), now.into()],
        )?;
        let Some(session_id) = rows.first().map(|row| row.text(0)).transpose()? else {
            return Ok(Rotation::Invalid);
        };
        self.transaction(|tx| {
            // The session row is the lock: concurrent rotations of its
            // tokens take turns here.
            let Some(session) = tx.locked_session(&session_id, now)? else {
                return Ok(Rotation::Invalid);
            };
            let found = RotatedSession {
                session_id: session_id.clone(),
                user_id: session.user_id.clone(),
                roles: session.roles.clone(),
            };
            let rows = tx.query(
                "SELECT retired_at, next_digest, next_sealed FROM refresh_tokens \
                 WHERE digest = $1 AND expires_at > $2",
                &[presented.as_str().into(), now.into()],
            )?;
            let Some(token) = rows.first() else {
                return Ok(Rotation::Invalid);
            };
            match token.optional_int(0)? {
                None => {
                    let token_expires = session.expires_at.min(now + policy.refresh_ttl as i64);
                    tx.execute(
                        "UPDATE refresh_tokens SET retired_at = $2, next_digest = $3, next_sealed = $4 \
                         WHERE digest = $1",
                        &[presented.as_str().into(), now.into(), replacement.as_str().into(), sealed.into()],
                    )?;
                    tx.execute(
                        "INSERT INTO refresh_tokens (digest, session_id, expires_at) VALUES ($1, $2, $3)",
                        &[replacement.as_str().into(), session_id.as_str().into(), token_expires.into()],
                    )?;
                    tx.execute(
                        "UPDATE sessions SET current_digest = $2, last_used_at = $3, idle_expires_at = $4 \
                         WHERE id = $1",
                        &[
                            session_id.as_str().into(),
                            replacement.as_str().into(),
                            now.into(),
                            token_expires.into(),
                        ],
                    )?;
                    // Retired tokens past their own expiry are met here.
                    tx.execute(
                        "DELETE FROM refresh_tokens WHERE session_id = $1 AND expires_at <= $2",
                        &[session_id.as_str().into(), now.into()],
                    )?;
                    Ok(Rotation::Rotated(found))
                }
                Some(retired_at) if now - retired_at <= policy.reuse_grace as i64 => {
                    let mut chain = Vec::new();
                    let mut next = token.optional_text(1)?.zip(token.optional_text(2)?);
                    while let Some((digest, sealed)) = next.take() {
                        chain.push(sealed);
                        if digest == session.current_digest {
                            return Ok(Rotation::Replayed(found, chain));
                        }
                        if chain.len() >= MAX_CHAIN {
                            break;
                        }
                        let rows = tx.query(
                            "SELECT next_digest, next_sealed FROM refresh_tokens WHERE digest = $1",
                            &[digest.as_str().into()],
                        )?;
                        next = match rows.first() {
                            Some(row) => row.optional_text(0)?.zip(row.optional_text(1)?),
                            None => None,
                        };
                    }
                    Ok(Rotation::Invalid)
                }
                Some(_) => {
                    tx.delete_session(&session_id)?;
                    Ok(Rotation::Reused(found))
                }
            }
        })
    }

    fn is_live(&self, session_id: &str, now: Timestamp) -> StoreResult<bool> {
        let rows = self.query(
            "SELECT 1 FROM sessions WHERE id = $1 AND expires_at > $2 AND idle_expires_at > $2",
            &[session_id.into(), now.into()],
        )?;
        Ok(!rows.is_empty())
    }

    fn session_of_token(
        &self,
        token: &TokenDigest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenOwner>> {
        let rows = self.query(
            "SELECT s.id, s.user_id, t.retired_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.digest = $1 AND t.expires_at > $2 AND s.expires_at > $2 AND s.idle_expires_at > $2",
            &[token.as_str().into(), now.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(TokenOwner {
                    session_id: row.text(0)?,
                    user_id: row.text(1)?,
                    retired_at: row.optional_int(2)?,
                })
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>> {
        let rows = self.query(
            "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 AND idle_expires_at > $2 ORDER BY created_at, id",
            &[user_id.into(), now.into()],
        )?;
        rows.iter()
            .map(|row| {
                Ok(SessionInfo {
                    id: row.text(0)?,
                    created_at: row.int(1)?,
                    last_used_at: row.int(2)?,
                    user_agent: row.text(3)?,
                    ip: row.text(4)?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Other)
    }

    fn revoke_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool> {
        let owned = self.query(
            "SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 \
             AND expires_at > $3 AND idle_expires_at > $3",
            &[session_id.into(), user_id.into(), clock::now().into()],
        )?;
        if owned.is_empty() {
            return Ok(false);
        }
        Ok(self.delete_session(session_id)? > 0)
    }

    fn revoke_all_sessions(&self, user_id: &str, except: Option<&str>) -> StoreResult<u64> {
        let keep = SqlValue::from(except.unwrap_or(""));
        self.execute(
            "DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2)",
            &[user_id.into(), keep.clone()],
        )?;
        self.execute(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2",
            &[user_id.into(), keep],
        )
    }
}

impl CounterStore for SqlStore {
    fn hit(&self, key: &str, window: u64, now: Millis) -> StoreResult<(u64, u64)> {
        // One statement: a new or expired window restarts at 1, otherwise
        // the count goes up; either way the row comes back.
        let rows = self.query(
            "INSERT INTO counters (key, count, window_ends_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN counters.window_ends_at <= $3 THEN 1 ELSE counters.count + 1 END, \
               window_ends_at = CASE WHEN counters.window_ends_at <= $3 THEN $2 ELSE counters.window_ends_at END \
             RETURNING count, window_ends_at",
            &[
                key.into(),
                now.plus_seconds(window).as_i64().into(),
                now.as_i64().into(),
            ],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("counter upsert returned no row")))?;
        let count = row.int(0).map_err(StoreError::Other)?;
        let ends = Millis::from_stored(row.int(1).map_err(StoreError::Other)?);
        Ok((count.max(0) as u64, now.seconds_until(ends)))
    }

    fn clear(&self, key: &str) -> StoreResult<()> {
        // Only this key: another family's counters (registrations, say)
        // are not this caller's to end. A row whose window has ended is
        // restarted by its next hit.
        self.execute("DELETE FROM counters WHERE key = $1", &[key.into()])?;
        Ok(())
    }

    fn forgive(&self, key: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE counters SET count = count - 1 WHERE key = $1 AND count > 0",
            &[key.into()],
        )?;
        Ok(())
    }
}
