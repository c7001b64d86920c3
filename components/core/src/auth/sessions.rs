//! A session after sign-in, as use cases: rotating its refresh token,
//! ending it (or the user's others), listing and revoking sessions. No
//! HTTP here: a refresh token in, the session's current token and the
//! user's roles out, so rotation, grace and reuse are unit-tested natively.

use super::AuthStores;
use super::login::{Client, audit};
use crate::clock::Timestamp;
use crate::config::AuthSettings;
use crate::domain::{Role, User, roles_for};
use crate::error::ApiError;
use crate::store::{RotatedSession, Rotation, SessionInfo, SessionPolicy};
use crate::tokens::RefreshToken;

/// A refresh that went through.
#[derive(Debug)]
pub struct Refreshed {
    /// The account, read afresh.
    pub user: User,
    /// Its roles now (not at login).
    pub roles: Vec<Role>,
    /// The session (`sid`).
    pub session_id: String,
    /// The session's current refresh token: the new one, or for a retired
    /// token presented within the grace window, the one that replaced it.
    pub refresh_token: RefreshToken,
    /// How the session's login was authenticated (RFC 8176 `amr`).
    pub amr: Vec<String>,
    /// When the session ends at the latest: the refresh token's cookie
    /// should not outlive it.
    pub session_expires_at: Timestamp,
}

/// Rotates `presented`.
///
/// Rules: a current token is retired for a new one; a retired token within
/// the grace window gets the session's current token (which only its
/// holder can unseal) and changes nothing; after the window it is taken as
/// stolen: the session is revoked and the event audited. Roles are read
/// afresh, and an account that no longer exists gets no token.
pub fn refresh(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    policy: &SessionPolicy,
    presented: RefreshToken,
    client: Client<'_>,
    now: Timestamp,
) -> Result<Refreshed, ApiError> {
    let replacement = RefreshToken::generate();
    let rotation = stores.sessions.rotate(
        &presented.digest(),
        &replacement.digest(),
        &presented.seal(&replacement),
        now,
        policy,
    )?;
    let (session, current) = match rotation {
        Rotation::Rotated(session) => (session, replacement),
        Rotation::Replayed(session, chain) => {
            // Follow the sealed successors to the session's current token.
            let mut token = presented;
            for sealed in &chain {
                token = token.unseal(sealed).ok_or(ApiError::InvalidRefreshToken)?;
            }
            (session, token)
        }
        Rotation::Reused(session) => {
            let detail =
                "a retired refresh token was presented after the grace window; session revoked";
            let RotatedSession {
                session_id,
                user_id,
                ..
            } = &session;
            let (user, sid) = (Some(user_id.as_str()), Some(session_id.as_str()));
            let event = "refresh_token_reused";
            audit(stores.audit, event, user, sid, client, Some(detail), now);
            return Err(ApiError::RefreshTokenReused);
        }
        Rotation::Invalid => return Err(ApiError::InvalidRefreshToken),
    };
    let RotatedSession {
        session_id,
        user_id,
        roles: _,
        amr,
        expires_at,
    } = session;
    // The account is read afresh, and the refresh audited when it goes on
    // (on PostgreSQL in the same statement: one round trip on the hot path).
    let event = client.event("refresh", Some(&user_id), Some(&session_id), None, now);
    let user = stores.users.user_by_id_audited(&user_id, &event)?;
    // Disabling revokes every session; this covers a rotation that raced it.
    let Some(user) = user.filter(|user| !user.disabled) else {
        stores.sessions.revoke_session(&user_id, &session_id)?;
        return Err(ApiError::InvalidRefreshToken);
    };
    let roles = roles_for(&user, &settings.admin_emails);
    Ok(Refreshed {
        user,
        roles,
        session_id,
        refresh_token: current,
        session_expires_at: expires_at,
        amr: amr
            .split(',')
            .filter(|method| !method.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The one the request proves.
    Local,
    /// Every other session of the user.
    Others,
    /// All of the user's sessions.
    Global,
}

impl Scope {
    /// `local`, `others` or `global`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "local" => Some(Scope::Local),
            "others" => Some(Scope::Others),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }

    fn as_detail(self) -> &'static str {
        match self {
            Scope::Local => "scope=local",
            Scope::Others => "scope=others",
            Scope::Global => "scope=global",
        }
    }
}

/// What proves the session a logout is for.
pub enum Proof<'a> {
    /// A refresh token, current or retired.
    RefreshToken(&'a RefreshToken),
    /// A verified access token's session.
    Session {
        /// `sub`.
        user_id: &'a str,
        /// `sid`.
        session_id: &'a str,
    },
}

/// How a logout went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedOut {
    /// The sessions the scope names have ended.
    Ended,
    /// The refresh token was retired before the grace window: a stolen
    /// token replayed. Its session ended; the scope was ignored, so a thief
    /// cannot end the owner's other sessions with it.
    StolenTokenRevoked,
    /// The proof names no live session: nothing to end.
    NoSession,
}

/// Ends what `scope` says for the session `proof` names.
pub fn log_out(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    proof: Proof<'_>,
    scope: Scope,
    client: Client<'_>,
    now: Timestamp,
) -> Result<LoggedOut, ApiError> {
    let sessions = stores.sessions;
    let (user_id, session_id) = match proof {
        Proof::RefreshToken(token) => match sessions.session_of_token(&token.digest(), now)? {
            None => return Ok(LoggedOut::NoSession),
            Some(owner)
                if owner
                    .retired_at
                    .is_some_and(|at| now - at > settings.refresh_reuse_grace as i64) =>
            {
                sessions.revoke_session(&owner.user_id, &owner.session_id)?;
                let detail =
                    Some("a retired refresh token was presented to logout; session revoked");
                let (user, sid) = (
                    Some(owner.user_id.as_str()),
                    Some(owner.session_id.as_str()),
                );
                audit(
                    stores.audit,
                    "refresh_token_reused",
                    user,
                    sid,
                    client,
                    detail,
                    now,
                );
                return Ok(LoggedOut::StolenTokenRevoked);
            }
            Some(owner) => (owner.user_id, owner.session_id),
        },
        Proof::Session {
            user_id,
            session_id,
        } => (user_id.to_owned(), session_id.to_owned()),
    };
    match scope {
        Scope::Local => {
            sessions.revoke_session(&user_id, &session_id)?;
        }
        Scope::Others => {
            sessions.revoke_all_sessions(&user_id, Some(&session_id))?;
        }
        Scope::Global => {
            sessions.revoke_all_sessions(&user_id, None)?;
        }
    }
    let (user, sid) = (Some(user_id.as_str()), Some(session_id.as_str()));
    audit(
        stores.audit,
        "logout",
        user,
        sid,
        client,
        Some(scope.as_detail()),
        now,
    );
    Ok(LoggedOut::Ended)
}

/// The user's live sessions, oldest first.
pub fn list_sessions(
    stores: AuthStores<'_>,
    user_id: &str,
    now: Timestamp,
) -> Result<Vec<SessionInfo>, ApiError> {
    Ok(stores.sessions.list_sessions(user_id, now)?)
}

/// Ends one of the user's sessions, named by its id as the client sent
/// it: `session_not_found` for one that is not theirs, whether or not it
/// exists, so ids of others' sessions cannot be probed. Returns the id
/// as the store knows it (lower-case, hyphenated).
pub fn revoke_session(
    stores: AuthStores<'_>,
    user_id: &str,
    session_id: &str,
    client: Client<'_>,
    now: Timestamp,
) -> Result<String, ApiError> {
    let not_found = ApiError::NotFound("session_not_found");
    let ended = crate::domain::parse_id(session_id).ok_or(not_found)?;
    let session_id = ended.as_str();
    if !stores.sessions.revoke_session(user_id, session_id)? {
        return Err(ApiError::NotFound("session_not_found"));
    }
    let (user, sid) = (Some(user_id), Some(session_id));
    audit(
        stores.audit,
        "session_revoked",
        user,
        sid,
        client,
        None,
        now,
    );
    Ok(ended)
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
