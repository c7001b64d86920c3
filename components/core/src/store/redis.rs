//! Sessions, refresh tokens and counters on Redis.
//!
//! Keys, under the configured prefix:
//! - `session:<sid>`: a hash (user, roles, times, login user agent and IP,
//!   the current token's digest); its TTL is the idle timeout, capped by
//!   the absolute lifetime.
//! - `refresh:<digest>`: a hash (`sid`, and once retired `retired_at`,
//!   `next`, `sealed`); its TTL is the token's lifetime.
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

/// Redis at one address, with a key prefix.
pub struct RedisStore {
    url: String,
    prefix: String,
    connection: OnceCell<redis::Connection>,
}

/// A reply value, flattened as Spin returns it.
type Reply = Vec<RedisResult>;

const CREATE_SESSION: &str = r#"
local session, token, index = KEYS[1], KEYS[2], KEYS[3]
local sid, user, roles, now, ua, ip, digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local expires_at, ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('HSET', session, 'user_id', user, 'roles', roles, 'created_at', now, 'last_used_at', now,
  'expires_at', expires_at, 'user_agent', ua, 'ip', ip, 'current', digest)
redis.call('EXPIRE', session, ttl)
redis.call('HSET', token, 'sid', sid)
redis.call('EXPIRE', token, ttl)
redis.call('SADD', index, sid)
local remaining = redis.call('TTL', index)
if remaining < expires_at - tonumber(now) then redis.call('EXPIRE', index, expires_at - tonumber(now)) end
return 1
"#;

/// Returns `invalid`, or `rotated|replayed|reused, sid, user, roles[, sealed...]`.
const ROTATE: &str = r#"
local prefix, now, grace, refresh_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local replacement, sealed, max_chain = ARGV[5], ARGV[6], tonumber(ARGV[7])
local token = redis.call('HMGET', KEYS[1], 'sid', 'retired_at', 'next', 'sealed')
local sid = token[1]
if not sid then return {'invalid'} end
local skey = prefix .. 'session:' .. sid
local s = redis.call('HMGET', skey, 'user_id', 'roles', 'expires_at', 'current')
local user, roles, expires_at, current = s[1], s[2], tonumber(s[3]), s[4]
if not user then return {'invalid'} end
if expires_at <= now then
  redis.call('DEL', skey)
  redis.call('SREM', prefix .. 'user_sessions:' .. user, sid)
  return {'invalid'}
end
if not token[2] then
  local ttl = math.min(refresh_ttl, expires_at - now)
  redis.call('HSET', KEYS[1], 'retired_at', now, 'next', replacement, 'sealed', sealed)
  redis.call('HSET', KEYS[2], 'sid', sid)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('HSET', skey, 'current', replacement, 'last_used_at', now)
  redis.call('EXPIRE', skey, ttl)
  return {'rotated', sid, user, roles}
end
if now - tonumber(token[2]) <= grace then
  local reply = {'replayed', sid, user, roles}
  local next, link = token[3], token[4]
  for _ = 1, max_chain do
    if not next then return {'invalid'} end
    table.insert(reply, link)
    if next == current then return reply end
    local hop = redis.call('HMGET', prefix .. 'refresh:' .. next, 'next', 'sealed')
    next, link = hop[1], hop[2]
  end
  return {'invalid'}
end
redis.call('DEL', skey)
redis.call('SREM', prefix .. 'user_sessions:' .. user, sid)
return {'reused', sid, user, roles}
"#;

/// Returns the session id and user of a token whose session is live.
const SESSION_OF_TOKEN: &str = r#"
local token = redis.call('HMGET', KEYS[1], 'sid', 'retired_at')
local sid = token[1]
if not sid then return {} end
local user = redis.call('HGET', ARGV[1] .. 'session:' .. sid, 'user_id')
if not user then return {} end
return {sid, user, token[2] or ''}
"#;

/// Returns id, created_at, last_used_at, user_agent, ip for each live
/// session, and drops ids whose session is gone from the index.
const LIST_SESSIONS: &str = r#"
local reply = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local s = redis.call('HMGET', ARGV[1] .. 'session:' .. sid, 'created_at', 'last_used_at', 'user_agent', 'ip')
  if s[1] then
    table.insert(reply, sid)
    table.insert(reply, s[1])
    table.insert(reply, s[2])
    table.insert(reply, s[3])
    table.insert(reply, s[4])
  else
    redis.call('SREM', KEYS[1], sid)
  end
end
return reply
"#;

const REVOKE_SESSION: &str = r#"
local skey = ARGV[1] .. 'session:' .. ARGV[3]
if redis.call('HGET', skey, 'user_id') ~= ARGV[2] then return 0 end
redis.call('SREM', KEYS[1], ARGV[3])
return redis.call('DEL', skey)
"#;

const REVOKE_ALL: &str = r#"
local revoked = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if sid ~= ARGV[2] then
    revoked = revoked + redis.call('DEL', ARGV[1] .. 'session:' .. sid)
    redis.call('SREM', KEYS[1], sid)
  end
end
return revoked
"#;

/// Returns the count and the seconds left, rounded up.
const HIT: &str = r#"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000)
  ttl = tonumber(ARGV[1]) * 1000
end
return {count, math.ceil(ttl / 1000)}
"#;

/// Takes one back, never below zero, keeping the window.
const FORGIVE: &str = r#"
if (tonumber(redis.call('GET', KEYS[1])) or 0) > 0 then redis.call('DECR', KEYS[1]) end
return 1
"#;

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
                &crate::store::sql::MAX_CHAIN.to_string(),
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
        };
        Ok(match outcome.as_str() {
            "rotated" => Rotation::Rotated(session),
            "replayed" => {
                let chain = reply[4..]
                    .iter()
                    .map(|link| text(Some(link)))
                    .collect::<anyhow::Result<_>>()?;
                Rotation::Replayed(session, chain)
            }
            "reused" => Rotation::Reused(session),
            other => return Err(StoreError::Other(anyhow::anyhow!("rotation said {other}"))),
        })
    }

    fn is_live(&self, session_id: &str, _now: Timestamp) -> StoreResult<bool> {
        // The key's TTL is the session's remaining life.
        let reply = self.command(
            "EXISTS",
            vec![RedisParameter::Binary(
                self.key("session", session_id).into_bytes(),
            )],
        )?;
        Ok(int(reply.first())? == 1)
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
            &[&self.prefix, except.unwrap_or("")],
        )?;
        Ok(int(reply.first())?.max(0) as u64)
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
}
