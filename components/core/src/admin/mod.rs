//! The `admin` component's use cases: finding users, changing their roles
//! and whether they may sign in, deleting them, and reading the audit
//! trail. Like [`crate::auth`]'s, they are plain functions over the store
//! traits, free of HTTP; `handlers` is the thin HTTP layer.
//!
//! Rules: only an active admin (by their roles now, not by an access token
//! minted before a demotion) may act; no change leaves the service without
//! an active admin; disabling ends every session at once; and every action
//! is audited under the user it touched, naming the admin who acted.

pub mod handlers;

pub use handlers::AdminService;

use crate::auth::AuthStores;
use crate::auth::erasure::{erase, guarded};
use crate::auth::login::{Client, audit};
use crate::clock::Timestamp;
use crate::domain::{Email, Role, User, is_active_admin, roles_for};
use crate::error::ApiError;
use crate::store::{AuditLog, AuditQuery, AuditRecord, UserChange, UserPage};

/// Who acts: an admin, from one of their sessions.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The admin's user id.
    pub admin_id: &'a str,
    /// The session the request came from.
    pub session_id: &'a str,
    /// Where it came from.
    pub client: Client<'a>,
}

impl Actor<'_> {
    /// Records `event`, done by this admin to user `target`.
    fn audit(&self, log: &dyn AuditLog, event: &str, target: &str, detail: &str, now: Timestamp) {
        let (target, sid) = (Some(target), Some(self.session_id));
        audit(log, event, target, sid, self.client, Some(detail), now);
    }
}

/// The caller, if they are an active admin now: 403 otherwise.
pub fn require_admin(
    stores: AuthStores<'_>,
    admin_emails: &[Email],
    user_id: &str,
) -> Result<User, ApiError> {
    let user = stores
        .users
        .user_by_id(user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    if is_active_admin(&user, admin_emails) {
        Ok(user)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A page of users whose email starts with `prefix`, after `after` (the
/// last email of the previous page), and whether more follow.
pub fn list_users(
    stores: AuthStores<'_>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<User>, bool), ApiError> {
    let users = stores.directory.list_users(&UserPage {
        prefix,
        after,
        limit: limit + 1,
    })?;
    Ok(page(users, limit))
}

/// Changes a user's roles or whether the account is disabled; disabling
/// revokes every session (again, if a retry finds it already disabled: a
/// revocation that failed before is finished).
pub fn change_user(
    stores: AuthStores<'_>,
    admin_emails: &[Email],
    actor: Actor<'_>,
    user_id: &str,
    change: &UserChange,
    now: Timestamp,
) -> Result<User, ApiError> {
    let user = guarded(
        stores
            .directory
            .change_user(user_id, change, admin_emails, now)?,
    )?;
    let roles: Vec<&str> = roles_for(&user, admin_emails)
        .into_iter()
        .map(Role::as_str)
        .collect();
    let detail = format!(
        "by {}; roles {}; disabled {}",
        actor.admin_id,
        roles.join(","),
        user.disabled,
    );
    // Audited once the change is in, whether or not ending the sessions
    // (below) succeeds.
    actor.audit(stores.audit, "admin_user_updated", &user.id, &detail, now);
    if user.disabled {
        stores.sessions.revoke_all_sessions(&user.id, None)?;
    }
    Ok(user)
}

/// Deletes a user and everything tied to them (see [`erase`]).
pub fn delete_user(
    stores: AuthStores<'_>,
    admin_emails: &[Email],
    actor: Actor<'_>,
    user_id: &str,
    now: Timestamp,
) -> Result<(), ApiError> {
    erase(stores, admin_emails, user_id)?;
    let detail = format!("by {}", actor.admin_id);
    actor.audit(stores.audit, "admin_user_deleted", user_id, &detail, now);
    Ok(())
}

/// A page of the audit trail, newest first, and whether more follow.
pub fn list_audit(
    stores: AuthStores<'_>,
    query: &AuditQuery<'_>,
) -> Result<(Vec<AuditRecord>, bool), ApiError> {
    let events = stores.audit.list(&AuditQuery {
        limit: query.limit + 1,
        ..*query
    })?;
    Ok(page(events, query.limit))
}

/// The first `limit` of `items` (fetched one over the limit), and whether
/// there were more.
fn page<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
