//! Sessions, refresh tokens and throttling counters in the SQL database
//! (when no Redis is configured).

use crate::clock::{self, Millis, Timestamp};
use crate::store::sql::{Dialect, SqlStore, SqlValue};
use crate::store::{
    CounterStore, NewSession, RotatedSession, Rotation, SessionInfo, SessionPolicy, SessionStore,
    StoreError, StoreResult, TokenOwner,
};
use crate::tokens::TokenDigest;

/// Most successors followed from a replayed token to the current one.
pub const MAX_CHAIN: usize = 16;

/// A session row as rotation reads it.
struct SessionRow {
    user_id: String,
    roles: String,
    expires_at: Timestamp,
    current_digest: String,
    amr: String,
}

impl SqlStore {
    fn locked_session(&self, session_id: &str, now: Timestamp) -> StoreResult<Option<SessionRow>> {
        let rows = self.query(
            &format!(
                "SELECT user_id, roles, expires_at, current_digest, amr FROM sessions \
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
                    amr: row.text(4)?,
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
        let rows = self.read(
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
            // SQLite's foreign-key error does not name its key, so a login
            // racing its account's deletion is told from a bug here, in a
            // transaction serialised with the deletion's (BEGIN IMMEDIATE).
            // PostgreSQL's names it (pg.rs), at no extra round trip.
            if tx.dialect() == Dialect::Sqlite
                && tx
                    .query(
                        "SELECT 1 FROM users WHERE id = $1",
                        &[session.user_id.into()],
                    )?
                    .is_empty()
            {
                return Err(StoreError::Gone(format!("no user {}", session.user_id)));
            }
            tx.execute(
                "INSERT INTO sessions (id, user_id, roles, created_at, last_used_at, expires_at, \
                 idle_expires_at, user_agent, ip, current_digest, amr) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10)",
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
                    session.amr.into(),
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
        let rows = self.read(
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
                amr: session.amr.clone(),
                expires_at: session.expires_at,
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

    fn session_owner(&self, session_id: &str, now: Timestamp) -> StoreResult<Option<String>> {
        let rows = self.read(
            "SELECT user_id FROM sessions WHERE id = $1 AND expires_at > $2 AND idle_expires_at > $2",
            &[session_id.into(), now.into()],
        )?;
        Ok(rows.first().map(|row| row.text(0)).transpose()?)
    }

    fn session_of_token(
        &self,
        token: &TokenDigest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenOwner>> {
        let rows = self.read(
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
        let rows = self.read(
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
        let owned = self.read(
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

    fn forget_user(&self, user_id: &str) -> StoreResult<()> {
        self.revoke_all_sessions(user_id, None).map(|_| ())
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
