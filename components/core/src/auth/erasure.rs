//! Deleting an account, one use case for both ways in: the user's own
//! `DELETE /auth/me` and an admin's `DELETE /admin/users/{id}`.

use super::AuthStores;
use super::throttling::counters_naming;
use crate::domain::{Email, User, is_active_admin};
use crate::error::ApiError;
use crate::store::Guarded;

/// Deletes the account `user_id` and everything that names it: sessions
/// and refresh tokens (in whichever store keeps them), answers, second
/// factor, email links, mail to the address, throttling counters. The
/// audit trail keeps its events; the caller records this one.
///
/// Order: the last-admin rule is checked first, so a refusal touches
/// nothing; then the sessions end, so every token stops working at once
/// (an admin's inside the transaction below, after the rule is checked
/// again under the admins' locks: of two admins deleting each other, the
/// second is refused before it touches anything); then the rows go, in
/// that transaction; then the sessions are swept once more. A failure
/// before the rows go leaves the account whole (and perhaps signed out),
/// and the same request retried (after signing in again, for the
/// account's own) finishes the job.
pub fn erase(
    stores: AuthStores<'_>,
    admin_emails: &[Email],
    user_id: &str,
) -> Result<User, ApiError> {
    let target = guarded(stores.directory.deletable(user_id, admin_emails)?)?;
    // Only an admin's deletion can be refused by a concurrent one, so only
    // an admin's sessions end under the rule's locks; anyone else's end
    // before, so that a slow session store holds no lock up.
    let under_lock = is_active_admin(&target, admin_emails);
    if !under_lock {
        stores.sessions.forget_user(user_id)?;
    }
    let end_sessions = || match under_lock {
        true => stores.sessions.forget_user(user_id),
        false => Ok(()),
    };
    let user = guarded(
        stores
            .directory
            .delete_user(user_id, admin_emails, &end_sessions)?,
    )?;
    // A login that checked the account before the rows went may have
    // started a session since the first sweep; one that checks after finds
    // no account and ends its own.
    stores.sessions.forget_user(user_id)?;
    for key in counters_naming(&user.id, user.email.as_str()) {
        if let Err(error) = stores.counters.clear(&key) {
            // They lapse with their window; the account is gone either way.
            eprintln!("cannot clear a deleted account's counter: {error:?}");
        }
    }
    Ok(user)
}

/// A guarded change's outcome as the API answers it: 404 `not_found`, or
/// 409 `last_admin`.
pub fn guarded<T>(outcome: Guarded<T>) -> Result<T, ApiError> {
    match outcome {
        Guarded::Done(value) => Ok(value),
        Guarded::NotFound => Err(ApiError::NotFound("not_found")),
        Guarded::LastAdmin => Err(ApiError::Conflict("last_admin")),
    }
}
