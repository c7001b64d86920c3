//! The Lua scripts behind every read-modify-write on Redis: Redis runs each
//! one atomically, so concurrent requests never see half a change.

/// A Lua function that deletes a session, its refresh tokens and their
/// index: `drop_session(prefix, sid)`, 1 if the session was there.
macro_rules! drop_session {
    () => {
        r#"
local function drop_session(prefix, sid)
  local tokens = prefix .. 'session_tokens:' .. sid
  for _, digest in ipairs(redis.call('SMEMBERS', tokens)) do
    redis.call('DEL', prefix .. 'refresh:' .. digest)
  end
  redis.call('DEL', tokens)
  return redis.call('DEL', prefix .. 'session:' .. sid)
end
"#
    };
}

pub(super) const CREATE_SESSION: &str = r#"
local session, token, index, tokens = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, user, roles, now, ua, ip, digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local expires_at, ttl, amr = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
redis.call('HSET', session, 'user_id', user, 'roles', roles, 'created_at', now, 'last_used_at', now,
  'expires_at', expires_at, 'user_agent', ua, 'ip', ip, 'current', digest, 'amr', amr)
redis.call('EXPIRE', session, ttl)
redis.call('HSET', token, 'sid', sid)
redis.call('EXPIRE', token, ttl)
redis.call('SADD', tokens, digest)
redis.call('EXPIRE', tokens, ttl)
redis.call('SADD', index, sid)
local remaining = redis.call('TTL', index)
if remaining < expires_at - tonumber(now) then redis.call('EXPIRE', index, expires_at - tonumber(now)) end
return 1
"#;

/// Returns `invalid`, or `rotated|replayed|reused, sid, user, roles, amr, expires_at[, sealed...]`
/// (`amr` is `pwd` for a session started before it was recorded).
pub(super) const ROTATE: &str = concat!(
    drop_session!(),
    r#"
local prefix, now, grace, refresh_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local replacement, sealed, max_chain = ARGV[5], ARGV[6], tonumber(ARGV[7])
local token = redis.call('HMGET', KEYS[1], 'sid', 'retired_at', 'next', 'sealed')
local sid = token[1]
if not sid then return {'invalid'} end
local skey = prefix .. 'session:' .. sid
local s = redis.call('HMGET', skey, 'user_id', 'roles', 'expires_at', 'current', 'amr')
local user, roles, expires_at, current, amr = s[1], s[2], tonumber(s[3]), s[4], s[5] or 'pwd'
if not user then return {'invalid'} end
if expires_at <= now then
  drop_session(prefix, sid)
  redis.call('SREM', prefix .. 'user_sessions:' .. user, sid)
  return {'invalid'}
end
if not token[2] then
  local ttl = math.min(refresh_ttl, expires_at - now)
  redis.call('HSET', KEYS[1], 'retired_at', now, 'next', replacement, 'sealed', sealed)
  redis.call('HSET', KEYS[2], 'sid', sid)
  redis.call('EXPIRE', KEYS[2], ttl)
  local tokens = prefix .. 'session_tokens:' .. sid
  redis.call('SADD', tokens, replacement)
  redis.call('EXPIRE', tokens, ttl)
  redis.call('HSET', skey, 'current', replacement, 'last_used_at', now)
  redis.call('EXPIRE', skey, ttl)
  return {'rotated', sid, user, roles, amr, expires_at}
end
if now - tonumber(token[2]) <= grace then
  local reply = {'replayed', sid, user, roles, amr, expires_at}
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
drop_session(prefix, sid)
redis.call('SREM', prefix .. 'user_sessions:' .. user, sid)
return {'reused', sid, user, roles, amr, expires_at}
"#
);

/// Returns the session id and user of a token whose session is live.
pub(super) const SESSION_OF_TOKEN: &str = r#"
local token = redis.call('HMGET', KEYS[1], 'sid', 'retired_at')
local sid = token[1]
if not sid then return {} end
local user = redis.call('HGET', ARGV[1] .. 'session:' .. sid, 'user_id')
if not user then return {} end
return {sid, user, token[2] or ''}
"#;

/// Returns id, created_at, last_used_at, user_agent, ip for each live
/// session, and drops ids whose session is gone from the index.
pub(super) const LIST_SESSIONS: &str = r#"
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

pub(super) const REVOKE_SESSION: &str = concat!(
    drop_session!(),
    r#"
local skey = ARGV[1] .. 'session:' .. ARGV[3]
if redis.call('HGET', skey, 'user_id') ~= ARGV[2] then return 0 end
redis.call('SREM', KEYS[1], ARGV[3])
return drop_session(ARGV[1], ARGV[3])
"#
);

/// Revokes every session in the index `KEYS[1]` but `ARGV[2]`; with
/// `ARGV[3]` = `forget`, also deletes the index (the account is going).
pub(super) const REVOKE_ALL: &str = concat!(
    drop_session!(),
    r#"
local revoked = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if sid ~= ARGV[2] then
    revoked = revoked + drop_session(ARGV[1], sid)
    redis.call('SREM', KEYS[1], sid)
  end
end
if ARGV[3] == 'forget' then redis.call('DEL', KEYS[1]) end
return revoked
"#
);

/// Returns the count and the seconds left, rounded up.
pub(super) const HIT: &str = r#"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000)
  ttl = tonumber(ARGV[1]) * 1000
end
return {count, math.ceil(ttl / 1000)}
"#;

/// Takes one back, never below zero, keeping the window.
pub(super) const FORGIVE: &str = r#"
if (tonumber(redis.call('GET', KEYS[1])) or 0) > 0 then redis.call('DECR', KEYS[1]) end
return 1
"#;

/// An attempt that turned out well: deletes every key but the last, and
/// takes one back from the last as [`FORGIVE`] does when ARGV[1] is `1`
/// (else deletes it too).
pub(super) const SETTLE: &str = r#"
local n = #KEYS
if ARGV[1] == '1' then
  if (tonumber(redis.call('GET', KEYS[n])) or 0) > 0 then redis.call('DECR', KEYS[n]) end
  n = n - 1
end
if n > 0 then redis.call('DEL', unpack(KEYS, 1, n)) end
return 1
"#;
