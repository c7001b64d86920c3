//! Storage: small traits for what the use cases need, and the backends
//! that implement them.
//!
//! - [`sql`] implements users, questions, audit events, and (when no Redis
//!   is configured) sessions and counters, over any [`sql::SqlDb`]:
//!   [`pg`] (PostgreSQL through Spin's `pg4`) or [`sqlite`] (Spin's SQLite).
//! - [`redis`] implements sessions and counters on Redis.
//!
//! [`Stores::open`] picks the backends from the configuration; nothing
//! connects until a use case first asks.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod email;
#[cfg(test)]
pub mod memory;
pub mod mfa;
pub mod migrations;
pub use mfa::{MfaChallenge, MfaStore, StoredTotp};
pub mod pg;
pub mod questions;
pub use questions::{QuestionStore, StoredQuestion, TopicSummary};
pub mod redis;
pub mod sql;
mod sql_admin;
mod sql_sessions;
pub use sql_sessions::MAX_CHAIN;
mod sql_users;
pub mod sqlite;

use crate::clock::{Millis, Timestamp};
pub use email::{LinkPurpose, LinkStore, NewMail, Outbox, QueuedMail};

use crate::domain::{Email, Role, User};
use crate::tokens::TokenDigest;

/// Which backing store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Users and question data (PostgreSQL or SQLite).
    Database,
    /// Sessions, refresh tokens and counters (Redis, or the database).
    Sessions,
    /// The provider of the application variables (Vault, say), when one
    /// is configured.
    Settings,
}

/// Where the stores are.
#[derive(Debug, Clone, Default)]
pub struct StoreSettings {
    /// `postgres://...`, or `None` for the embedded SQLite database.
    pub database_url: Option<String>,
    /// `redis://...`, or `None` to keep sessions in the SQL database.
    pub redis_url: Option<String>,
    /// Prepended to every Redis key.
    pub redis_key_prefix: String,
}

/// Why a store call failed.
#[derive(Debug)]
pub enum StoreError {
    /// The server could not be reached; the request should get a 503.
    Unavailable(Store, String),
    /// The host refused the connection because `allowed_outbound_hosts`
    /// (through this variable) does not list the server: configuration.
    Refused(&'static str),
    /// A write referred to a user that is gone: the account was deleted
    /// while the request was under way.
    Gone(String),
    /// Anything else: a bug or corrupt data.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StoreError {
    fn from(error: anyhow::Error) -> Self {
        StoreError::Other(error)
    }
}

/// `text` with the credentials of any URL in it replaced by `***`, so a
/// connection error can be logged without the password it quotes.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            super::redact_credentials(
                "address postgres://u:secret@db:5432/x?sslmode=require refused"
            ),
            "address postgres://***@db:5432/x?sslmode=require refused"
        );
        assert_eq!(
            super::redact_credentials("redis://cache:6379"),
            "redis://cache:6379"
        );
        assert_eq!(super::redact_credentials("no url here"), "no url here");
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user to create.
pub struct NewUser<'a> {
    /// Fresh id.
    pub id: &'a str,
    /// Canonical email.
    pub email: &'a Email,
    /// PHC string.
    pub password_hash: &'a str,
    /// Optional names.
    pub first_name: Option<&'a str>,
    /// Optional names.
    pub last_name: Option<&'a str>,
    /// Now.
    pub created_at: Timestamp,
}

/// A user's password, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// PHC string.
    pub hash: String,
    /// Bumped by every change or reset of the password, not by a re-hash:
    /// what a login checked the password against.
    pub version: i64,
}

/// Users and their password hashes.
pub trait UserStore {
    /// Creates the user; `Ok(false)` when the email is taken.
    fn insert_user(&self, user: &NewUser<'_>) -> StoreResult<bool>;
    /// The user with `email` and their credentials.
    fn user_by_email(&self, email: &Email) -> StoreResult<Option<(User, Credentials)>>;
    /// The user with `id`.
    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// The user with `id`, read for a request that goes on only with an
    /// enabled account (a refresh): when the account is there and not
    /// disabled, `event` is also appended to the audit trail, which is
    /// this store's database; `event.user_id` is `id`. Where the database
    /// can, read and append are one statement: one round trip and one
    /// commit instead of two. As with [`record_or_log`], an event that
    /// cannot be written does not fail the read (a database that cannot be
    /// reached still does).
    fn user_by_id_audited(&self, id: &str, event: &AuditEvent<'_>) -> StoreResult<Option<User>>;
    /// The credentials of the user with `id`.
    fn credentials(&self, id: &str) -> StoreResult<Option<Credentials>>;
    /// Replaces the hash by a stronger one of the same password, unless the
    /// password changed since `old` was read.
    fn upgrade_password_hash(&self, id: &str, old: &Credentials, hash: &str) -> StoreResult<()>;
    /// Sets a new password: stores `hash` and bumps the credentials'
    /// version. With `checked`, only while the credentials are still at
    /// that version (the one the current password was checked against), so
    /// that of two concurrent changes one wins and the other sees the
    /// password it checked is gone. `false`: nothing was set (the version
    /// moved on, or the user is gone).
    fn change_password_hash(
        &self,
        id: &str,
        checked: Option<i64>,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records that the owner proved the address (kept if it already was).
    fn mark_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// Records a login whose password was checked against version
    /// `checked` of the credentials, if they are still at that version:
    /// its time (`event.at`; this also ends a withholding of `admin`, see
    /// [`User::admin_withheld`]) and `event` in the audit trail, which is
    /// this store's database (`event.user_id` is `id`). Returns the
    /// credentials' version now (`None`: the account is gone), by which the
    /// caller learns whether the password changed since it was checked.
    /// Where the database can, the read and both writes are one statement.
    /// As with [`record_or_log`], a time or an event that cannot be written
    /// does not fail it (a database that cannot be reached still does).
    fn record_login(
        &self,
        id: &str,
        checked: i64,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Option<i64>>;
}

/// Which users a listing returns.
#[derive(Debug, Clone, Copy)]
pub struct UserPage<'a> {
    /// Only emails that start with this (canonical, lower-case).
    pub prefix: &'a str,
    /// Only emails after this one, in byte order (the last of the previous
    /// page).
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: usize,
}

/// What an admin changes about a user; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// The granted roles (`user` is added if missing). Without `admin`,
    /// `admin` is also withheld from an address `admin_emails` lists,
    /// until its next login.
    pub roles: Option<Vec<Role>>,
    /// Whether the account is disabled.
    pub disabled: Option<bool>,
}

impl UserChange {
    /// `user` as this change leaves it (not yet stored).
    pub fn apply(&self, mut user: User) -> User {
        if let Some(roles) = &self.roles {
            user.granted_roles = crate::domain::granted(roles);
            user.admin_withheld = !roles.contains(&Role::Admin);
        }
        if let Some(disabled) = self.disabled {
            user.disabled = disabled;
        }
        user
    }
}

/// The outcome of a change that must leave the service an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<T> {
    /// Done.
    Done(T),
    /// No such user.
    NotFound,
    /// It would leave no active admin; nothing changed.
    LastAdmin,
}

/// The administration's view of the users: listing, changing and deleting
/// them. Changes take `admin_emails` because an admin may be one by
/// configuration, and none may remove the last active admin: each change
/// checks that and writes in one atomic step, so two admins demoting each
/// other at once cannot both succeed.
pub trait UserDirectory {
    /// Users in email (byte) order.
    fn list_users(&self, page: &UserPage<'_>) -> StoreResult<Vec<User>>;
    /// Applies `change`. Disabling also bumps the credentials' version, so
    /// a login checked before cannot start a session after.
    fn change_user(
        &self,
        id: &str,
        change: &UserChange,
        admin_emails: &[Email],
        now: Timestamp,
    ) -> StoreResult<Guarded<User>>;
    /// The user, if deleting them would leave an active admin; reads
    /// only (see [`UserDirectory::delete_user`], which checks again).
    fn deletable(&self, id: &str, admin_emails: &[Email]) -> StoreResult<Guarded<User>>;
    /// Deletes the user and every row that names them (sessions and
    /// refresh tokens kept in this store, answers, second factor, email
    /// links, mail to them); the audit trail keeps its events.
    /// `end_sessions` runs once the last-admin rule holds, serialised with
    /// other deletions and changes of admins and before any row goes: a
    /// refused deletion ends nothing, and one whose sessions cannot be
    /// ended deletes nothing.
    fn delete_user(
        &self,
        id: &str,
        admin_emails: &[Email],
        end_sessions: &dyn Fn() -> StoreResult<()>,
    ) -> StoreResult<Guarded<User>>;
}

/// How long sessions and their tokens live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Lifetime of a refresh token, renewed at each rotation: the idle
    /// timeout of a session.
    pub refresh_ttl: u64,
    /// How long a retired refresh token is still honoured.
    pub reuse_grace: u64,
    /// Absolute lifetime of a session, however active.
    pub max_lifetime: u64,
}

/// A session to start at login.
pub struct NewSession<'a> {
    /// The session id (`sid`).
    pub id: &'a str,
    /// Its user.
    pub user_id: &'a str,
    /// The user's roles at login, comma-separated; access tokens minted at
    /// each refresh carry them.
    pub roles: &'a str,
    /// Login time.
    pub created_at: Timestamp,
    /// `User-Agent` of the login, cut to a sane length.
    pub user_agent: &'a str,
    /// Client IP of the login.
    pub ip: &'a str,
    /// How the login was authenticated: RFC 8176 `amr` values,
    /// comma-separated (`pwd`, or `pwd,otp` after a second factor).
    pub amr: &'a str,
}

/// A session as listed to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `sid`.
    pub id: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Last refresh (or login).
    pub last_used_at: Timestamp,
    /// `User-Agent` of the login.
    pub user_agent: String,
    /// Client IP of the login.
    pub ip: String,
}

/// The session a rotation acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSession {
    /// `sid`.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// Roles stored at login, comma-separated.
    pub roles: String,
    /// The login's `amr` values, comma-separated.
    pub amr: String,
    /// When the session ends at the latest (its absolute lifetime): no
    /// refresh token of it lives longer.
    pub expires_at: Timestamp,
}

/// Whose a presented refresh token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    /// The session.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// When the token was retired, if it was.
    pub retired_at: Option<Timestamp>,
}

/// The outcome of presenting a refresh token for rotation.
///
/// When a token is retired, its row keeps the digest of its successor and
/// the successor sealed with a key derived from the retired token itself
/// ([`crate::tokens::RefreshToken::seal`]). So a client that presents a
/// retired token within the grace window (a second tab, a retried request)
/// can be handed the session's current token, which only a holder of the
/// retired token can unseal, and every concurrent refresh of one token ends
/// with the same single current token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: the replacement is now current.
    Rotated(RotatedSession),
    /// The token was retired within the grace window: nothing changed, and
    /// these sealed successors lead from it to the current token.
    Replayed(RotatedSession, Vec<String>),
    /// The token was retired before the grace window: the session has been
    /// revoked.
    Reused(RotatedSession),
    /// Unknown, expired, or its session is gone.
    Invalid,
}

/// Sessions and refresh tokens.
pub trait SessionStore {
    /// Starts a session whose current refresh token is `token`.
    fn create_session(
        &self,
        session: &NewSession<'_>,
        token: &TokenDigest,
        policy: &SessionPolicy,
    ) -> StoreResult<()>;
    /// Retires `presented` and makes `replacement` current, in one atomic
    /// step; `sealed` is the replacement sealed by the presented token.
    /// Detects reuse (see [`Rotation`]).
    fn rotate(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        sealed: &str,
        now: Timestamp,
        policy: &SessionPolicy,
    ) -> StoreResult<Rotation>;
    /// The user whose session this is, if it exists and has not expired or
    /// been revoked.
    fn session_owner(&self, session_id: &str, now: Timestamp) -> StoreResult<Option<String>>;
    /// Whether the session exists and has not expired or been revoked.
    fn is_live(&self, session_id: &str, now: Timestamp) -> StoreResult<bool> {
        Ok(self.session_owner(session_id, now)?.is_some())
    }
    /// The session a refresh token (current or retired) belongs to, if the
    /// session is live.
    fn session_of_token(
        &self,
        token: &TokenDigest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenOwner>>;
    /// The live sessions of a user, oldest first.
    fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>>;
    /// Revokes one session of `user_id`; `false` if it is not theirs or
    /// not live.
    fn revoke_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool>;
    /// Revokes every session of `user_id` but `except`; returns how many.
    fn revoke_all_sessions(&self, user_id: &str, except: Option<&str>) -> StoreResult<u64>;
    /// Removes every session and refresh token of `user_id` and whatever
    /// indexes them: the account is being deleted.
    fn forget_user(&self, user_id: &str) -> StoreResult<()>;
}

/// Fixed-window counters for throttling. Times are milliseconds; the
/// seconds left are rounded up, so a client that waits that long is never
/// early.
pub trait CounterStore {
    /// Adds one to `key`, whose window of `window` seconds starts at its
    /// first hit; returns the count and the seconds left in the window.
    fn hit(&self, key: &str, window: u64, now: Millis) -> StoreResult<(u64, u64)>;
    /// Forgets `key`, and nothing else.
    fn clear(&self, key: &str) -> StoreResult<()>;
    /// Takes one back from `key` (an attempt that turned out well).
    fn forgive(&self, key: &str) -> StoreResult<()>;
    /// What an attempt that turned out well does: forgets each of `clear`
    /// and takes one back from `forgive`. One round trip where the store
    /// can make it one.
    fn settle(&self, clear: &[&str], forgive: Option<&str>) -> StoreResult<()> {
        for key in clear {
            self.clear(key)?;
        }
        forgive.map_or(Ok(()), |key| self.forgive(key))
    }
}

/// One audited event.
pub struct AuditEvent<'a> {
    /// What happened: `register`, `login_succeeded`, ...
    pub event: &'a str,
    /// Whose account, if known.
    pub user_id: Option<&'a str>,
    /// Which session, if any.
    pub session_id: Option<&'a str>,
    /// Client IP.
    pub ip: &'a str,
    /// Client `User-Agent`.
    pub user_agent: &'a str,
    /// Free text; never a password or token.
    pub detail: Option<&'a str>,
    /// When.
    pub at: Timestamp,
}

/// An audited event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its place in the trail: later events have larger ids.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub event: String,
    /// Whose account, if known.
    pub user_id: Option<String>,
    /// Which session, if any.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip: String,
    /// Client `User-Agent`.
    pub user_agent: String,
    /// Free text.
    pub detail: Option<String>,
}

/// Which events a listing returns, newest first.
#[derive(Debug, Clone, Copy)]
pub struct AuditQuery<'a> {
    /// Only this user's.
    pub user_id: Option<&'a str>,
    /// Only this event.
    pub event: Option<&'a str>,
    /// Only events older than this id (the last of the previous page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// The audit trail. On PostgreSQL an event's commit does not wait for the
/// disk: a crash can lose the last fraction of a second of events (at most
/// about three times `wal_writer_delay`), never a session, a token or a
/// password, whose writes commit durably as before.
pub trait AuditLog {
    /// Appends an event.
    fn record(&self, event: &AuditEvent<'_>) -> StoreResult<()>;
    /// Events, newest first.
    fn list(&self, query: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>>;
}

/// Appends `event` to `log`. The request it records goes on whether or not
/// it could be written (no request fails for the trail's sake); a failure
/// is logged.
pub fn record_or_log(log: &dyn AuditLog, event: &AuditEvent<'_>) {
    if let Err(error) = log.record(event) {
        eprintln!("cannot record audit event {}: {error:?}", event.event);
    }
}

/// [`UserStore::user_by_id_audited`] as two steps, for a store whose
/// database cannot read and append in one statement.
pub fn user_by_id_then_record(
    users: &dyn UserStore,
    log: &dyn AuditLog,
    id: &str,
    event: &AuditEvent<'_>,
) -> StoreResult<Option<User>> {
    let user = users.user_by_id(id)?;
    if user.as_ref().is_some_and(|user| !user.disabled) {
        record_or_log(log, event);
    }
    Ok(user)
}

/// The backends of one request, chosen from the configuration.
pub struct Stores {
    /// The SQL database: users, questions, audit (and sessions without Redis).
    pub database: sql::SqlStore,
    /// Redis, when configured.
    pub redis: Option<redis::RedisStore>,
}

impl Stores {
    /// Backends for `settings`; nothing connects yet.
    pub fn open(settings: &StoreSettings) -> Self {
        let database = match &settings.database_url {
            Some(url) => sql::SqlStore::new(Box::new(pg::PgDb::new(url.clone()))),
            None => sql::SqlStore::new(Box::new(sqlite::SqliteDb::new())),
        };
        let redis = settings
            .redis_url
            .as_ref()
            .map(|url| redis::RedisStore::new(url.clone(), settings.redis_key_prefix.clone()));
        Self { database, redis }
    }

    /// Where sessions live: Redis if configured, else the database.
    pub fn sessions(&self) -> &dyn SessionStore {
        match &self.redis {
            Some(redis) => redis,
            None => &self.database,
        }
    }

    /// Where throttling counters live.
    pub fn counters(&self) -> &dyn CounterStore {
        match &self.redis {
            Some(redis) => redis,
            None => &self.database,
        }
    }
}
