//! Sessions, refresh tokens and counters on Redis.
//!
//! Keys, under the configured prefix:
//! - `session:<sid>`: a hash (user, roles, times, login user agent and IP,
//!   the current token's digest); its TTL is the idle timeout, capped by
//!   the absolute lifetime.
//! - `refresh:<digest>`: a hash (`sid`, and once retired `retired_at`,
//!   `next`, `sealed`); its TTL is the token's lifetime.
//! - `session_tokens:<sid>`: the set of the digests of a session's refresh
//!   tokens, so revoking a session deletes them too; same TTL as the session.
//! - `user_sessions:<user>`: the set of a user's session ids.
//! - `counter:<name>`: throttling counters.
//!
//! Every read-modify-write is one Lua script, which Redis runs atomically.

use std::cell::OnceCell;

use spin_sdk::redis::{self, RedisParameter, RedisResult};

use crate::clock::{Millis, Timestamp};
use crate::store::{
    CounterStore, NewSession, RotatedSession, Rotation, SessionInfo, SessionPolicy, SessionStore,
    Store, StoreError, StoreResult, TokenOwner,
};
use crate::tokens::TokenDigest;

mod scripts;

use scripts::{
    CREATE_SESSION, FORGIVE, HIT, LIST_SESSIONS, REVOKE_ALL, REVOKE_SESSION, ROTATE,
    SESSION_OF_TOKEN, SETTLE,
};

/// Redis at one address, with a key prefix.
pub struct RedisStore {
    url: String,
    prefix: String,
    connection: OnceCell<redis::Connection>,
}

/// A reply value, flattened as Spin returns it.
type Reply = Vec<RedisResult>;

impl RedisStore {
    /// Redis at `url`; every key starts with `prefix`.
    pub fn new(url: String, prefix: String) -> Self {
        Self {
            url,
            prefix,
            connection: OnceCell::new(),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    fn connection(&self) -> StoreResult<&redis::Connection> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection);
        }
        let connection = redis::Connection::open(&self.url).map_err(|error| match error {
            // Spin's answer to an address allowed_outbound_hosts does not
            // list (or one that is not a Redis URL): configuration.
            redis::Error::InvalidAddress => StoreError::Refused("redis_allowed_host"),
            other => StoreError::Unavailable(
                Store::Sessions,
                super::redact_credentials(&format!("{other:?}")),
            ),
        })?;
        Ok(self.connection.get_or_init(|| connection))
    }

    fn command(&self, command: &str, args: Vec<RedisParameter>) -> StoreResult<Reply> {
        self.connection()?
            .execute(command, &args)
            .map_err(|error| match error {
                redis::Error::Other(message) if is_connection_failure(&message) => {
                    StoreError::Unavailable(Store::Sessions, super::redact_credentials(&message))
                }
                other => StoreError::Other(anyhow::anyhow!("redis {command}: {other:?}")),
            })
    }

    fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> StoreResult<Reply> {
        let mut params = vec![
            RedisParameter::Binary(script.as_bytes().to_vec()),
            RedisParameter::Int64(keys.len() as i64),
        ];
        params.extend(
            keys.iter()
                .map(|k| RedisParameter::Binary(k.as_bytes().to_vec())),
        );
        params.extend(
            args.iter()
                .map(|a| RedisParameter::Binary(a.as_bytes().to_vec())),
        );
        self.command("EVAL", params)
    }

    /// Checks Redis answers (for `/health`).
    pub fn ping(&self) -> StoreResult<()> {
        self.command("PING", Vec::new()).map(|_| ())
    }
}

fn is_connection_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "os error",
        "connection",
        "broken pipe",
        "timed out",
        "closed",
        "io error",
        "eof",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

fn text(result: Option<&RedisResult>) -> anyhow::Result<String> {
    match result {
        Some(RedisResult::Binary(bytes)) => Ok(String::from_utf8(bytes.clone())?),
        Some(RedisResult::Status(text)) => Ok(text.clone()),
        Some(RedisResult::Int64(n)) => Ok(n.to_string()),
        other => anyhow::bail!("expected text from Redis, found {other:?}"),
    }
}

fn int(result: Option<&RedisResult>) -> anyhow::Result<i64> {
    match result {
        Some(RedisResult::Int64(n)) => Ok(*n),
        Some(RedisResult::Binary(bytes)) => Ok(std::str::from_utf8(bytes)?.parse()?),
        other => anyhow::bail!("expected an integer from Redis, found {other:?}"),
    }
}

impl SessionStore for RedisStore {
    fn create_session(
        &self,
        session: &NewSession<'_>,
        token: &TokenDigest,
        policy: &SessionPolicy,
    ) -> StoreResult<()> {
        let expires_at = session.created_at + policy.max_lifetime as i64;
        let ttl = policy.refresh_ttl.min(policy.max_lifetime);
        self.eval(
            CREATE_SESSION,
            &[
                &self.key("session", session.id),
                &self.key("refresh", token.as_str()),
                &self.key("user_sessions", session.user_id),
                &self.key("session_tokens", session.id),
            ],
            &[
                session.id,
                session.user_id,
                session.roles,
                &session.created_at.to_string(),
                session.user_agent,
                session.ip,
                token.as_str(),
                &expires_at.to_string(),
                &ttl.to_string(),
                session.amr,
            ],
        )?;
        Ok(())
    }

    fn rotate(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        sealed: &str,
        now: Timestamp,
        policy: &SessionPolicy,
    ) -> StoreResult<Rotation> {
        let reply = self.eval(
            ROTATE,
            &[
                &self.key("refresh", presented.as_str()),
                &self.key("refresh", replacement.as_str()),
            ],
            &[
                &self.prefix,
                &now.to_string(),
                &policy.reuse_grace.to_string(),
                &policy.refresh_ttl.to_string(),
                replacement.as_str(),
                sealed,
                &crate::store::MAX_CHAIN.to_string(),
            ],
        )?;
        let outcome = text(reply.first())?;
        if outcome == "invalid" {
            return Ok(Rotation::Invalid);
        }
        let session = RotatedSession {
            session_id: text(reply.get(1))?,
            user_id: text(reply.get(2))?,
            roles: text(reply.get(3))?,
            amr: text(reply.get(4))?,
            expires_at: int(reply.get(5))?,
        };
        Ok(match outcome.as_str() {
            "rotated" => Rotation::Rotated(session),
            "replayed" => {
                let chain = reply[6..]
                    .iter()
                    .map(|link| text(Some(link)))
                    .collect::<anyhow::Result<_>>()?;
                Rotation::Replayed(session, chain)
            }
            "reused" => Rotation::Reused(session),
            other => return Err(StoreError::Other(anyhow::anyhow!("rotation said {other}"))),
        })
    }

    fn session_owner(&self, session_id: &str, _now: Timestamp) -> StoreResult<Option<String>> {
        // The key's TTL is the session's remaining life.
        let reply = self.command(
            "HGET",
            vec![
                RedisParameter::Binary(self.key("session", session_id).into_bytes()),
                RedisParameter::Binary(b"user_id".to_vec()),
            ],
        )?;
        match reply.first() {
            None | Some(RedisResult::Nil) => Ok(None),
            owner => Ok(Some(text(owner)?)),
        }
    }

    fn session_of_token(
        &self,
        token: &TokenDigest,
        _now: Timestamp,
    ) -> StoreResult<Option<TokenOwner>> {
        let reply = self.eval(
            SESSION_OF_TOKEN,
            &[&self.key("refresh", token.as_str())],
            &[&self.prefix],
        )?;
        if reply.len() < 3 {
            return Ok(None);
        }
        let retired_at = text(reply.get(2))?;
        Ok(Some(TokenOwner {
            session_id: text(reply.first())?,
            user_id: text(reply.get(1))?,
            retired_at: retired_at.parse().ok(),
        }))
    }

    fn list_sessions(&self, user_id: &str, _now: Timestamp) -> StoreResult<Vec<SessionInfo>> {
        let reply = self.eval(
            LIST_SESSIONS,
            &[&self.key("user_sessions", user_id)],
            &[&self.prefix],
        )?;
        let mut sessions = reply
            .chunks(5)
            .map(|fields| {
                Ok(SessionInfo {
                    id: text(fields.first())?,
                    created_at: int(fields.get(1))?,
                    last_used_at: int(fields.get(2))?,
                    user_agent: text(fields.get(3))?,
                    ip: text(fields.get(4))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    fn revoke_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool> {
        let reply = self.eval(
            REVOKE_SESSION,
            &[&self.key("user_sessions", user_id)],
            &[&self.prefix, user_id, session_id],
        )?;
        Ok(int(reply.first())? == 1)
    }

    fn revoke_all_sessions(&self, user_id: &str, except: Option<&str>) -> StoreResult<u64> {
        let reply = self.eval(
            REVOKE_ALL,
            &[&self.key("user_sessions", user_id)],
            &[&self.prefix, except.unwrap_or(""), ""],
        )?;
        Ok(int(reply.first())?.max(0) as u64)
    }

    fn forget_user(&self, user_id: &str) -> StoreResult<()> {
        self.eval(
            REVOKE_ALL,
            &[&self.key("user_sessions", user_id)],
            &[&self.prefix, "", "forget"],
        )?;
        Ok(())
    }
}

impl CounterStore for RedisStore {
    fn hit(&self, key: &str, window: u64, _now: Millis) -> StoreResult<(u64, u64)> {
        let reply = self.eval(HIT, &[&self.key("counter", key)], &[&window.to_string()])?;
        Ok((
            int(reply.first())?.max(0) as u64,
            int(reply.get(1))?.max(0) as u64,
        ))
    }

    fn forgive(&self, key: &str) -> StoreResult<()> {
        self.eval(FORGIVE, &[&self.key("counter", key)], &[])?;
        Ok(())
    }

    fn clear(&self, key: &str) -> StoreResult<()> {
        self.command(
            "DEL",
            vec![RedisParameter::Binary(
                self.key("counter", key).into_bytes(),
            )],
        )?;
        Ok(())
    }

    fn settle(&self, clear: &[&str], forgive: Option<&str>) -> StoreResult<()> {
        let keys: Vec<String> = clear
            .iter()
            .chain(forgive.as_ref())
            .map(|key| self.key("counter", key))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let forgiving = if forgive.is_some() { "1" } else { "0" };
        self.eval(SETTLE, &keys, &[forgiving])?;
        Ok(())
    }
}
