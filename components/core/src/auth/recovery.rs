//! Email verification and password recovery, as use cases over the store
//! traits: single-use links, sent by mail through the outbox.
//!
//! A link's token is 256 random bits, URL-safe base64; only its digest is
//! stored. Verification links live 24 hours, reset links one hour, and a
//! new reset link voids the older ones.

use super::AuthStores;
use super::login::{Client, audit};
use super::throttling::{reset_email_key, throttle_address, verify_request_key};
use crate::clock::Timestamp;
use crate::config::{AuthSettings, MailSettings};
use crate::domain::{Email, Password, Role, User, roles_for};
use crate::error::ApiError;
use crate::mail;
use crate::password::hash_password;
use crate::store::{LinkPurpose, StoreError};
use crate::throttle;
use crate::tokens::RefreshToken as LinkToken;

/// How long a verification link works.
const VERIFY_LINK_SECONDS: i64 = 24 * 3_600;
/// How long a reset link works.
const RESET_LINK_SECONDS: i64 = 3_600;
/// New verification links one account may ask for per hour.
const VERIFY_REQUESTS_PER_HOUR: u64 = 5;
/// Reset requests per email address, and per client address, per hour.
const RESETS_PER_EMAIL_PER_HOUR: u64 = 5;
const RESETS_PER_ADDRESS_PER_HOUR: u64 = 30;
const HOUR: u64 = 3_600;

/// Stores a verification link for `user` and queues its message.
pub(super) fn send_verification_link(
    stores: AuthStores<'_>,
    mail_settings: &MailSettings,
    user: &User,
    now: Timestamp,
) -> Result<(), ApiError> {
    let token = LinkToken::generate();
    let expires = now + VERIFY_LINK_SECONDS;
    let purpose = LinkPurpose::VerifyEmail;
    stores
        .links
        .issue_link(&token.digest(), &user.id, purpose, now, expires)?;
    let message = mail::verification(&mail_settings.app_url, &user.email, token.expose());
    queue(stores, mail_settings, &message, now)
}

/// Stores `message` in the outbox. Without `mail_url`, the development log
/// shows it: the only place a link's token is ever printed.
fn queue(
    stores: AuthStores<'_>,
    mail_settings: &MailSettings,
    message: &mail::Message,
    now: Timestamp,
) -> Result<(), ApiError> {
    let id = stores.outbox.enqueue(&message.to_store(), now)?;
    if mail_settings.mail_url.is_none() {
        eprintln!(
            "mail {id} to {} (kept in the outbox; mail_url is not set):\n{}",
            message.to, message.text
        );
    }
    Ok(())
}

/// A new verification link for a signed-in user whose address is not
/// verified yet; at most a few per hour.
pub fn request_verification(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    user_id: &str,
    session_id: &str,
    client: Client<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let user = stores
        .users
        .user_by_id(user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    if user.email_verified {
        return Err(ApiError::Conflict("already_verified"));
    }
    let key = verify_request_key(&user.id);
    let (count, left) = stores
        .counters
        .hit(&key, HOUR, crate::clock::now_millis())?;
    if let Some(retry_after) = throttle::exhausted(count, VERIFY_REQUESTS_PER_HOUR + 1, left) {
        return Err(ApiError::RateLimited { retry_after });
    }
    send_verification_link(stores, &settings.mail, &user, now)?;
    let (user, sid) = (Some(user_id), Some(session_id));
    audit(
        stores.audit,
        "verification_requested",
        user,
        sid,
        client,
        None,
        now,
    );
    Ok(())
}

/// Uses a verification link: the account and its roles, now that its
/// address counts as verified.
pub fn verify_email(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    token: &LinkToken,
    client: Client<'_>,
    now: Timestamp,
) -> Result<(User, Vec<Role>), ApiError> {
    let purpose = LinkPurpose::VerifyEmail;
    let user_id = stores
        .links
        .use_link(&token.digest(), purpose, now)?
        .ok_or(ApiError::InvalidLink)?;
    stores.users.mark_email_verified(&user_id, now)?;
    let user = stores
        .users
        .user_by_id(&user_id)?
        .ok_or(ApiError::InvalidLink)?;
    audit(
        stores.audit,
        "email_verified",
        Some(&user.id),
        None,
        client,
        None,
        now,
    );
    let roles = roles_for(&user, &settings.admin_emails);
    Ok((user, roles))
}

/// Counts a forgot-password request against its address and its client,
/// before anything else is done: refused with 429 past the limits.
pub fn admit_reset_request(
    stores: AuthStores<'_>,
    email: &Email,
    client_ip: &str,
) -> Result<(), ApiError> {
    for (key, limit) in [
        (reset_email_key(email.as_str()), RESETS_PER_EMAIL_PER_HOUR),
        (
            format!("reset-ip:{}", throttle_address(client_ip)),
            RESETS_PER_ADDRESS_PER_HOUR,
        ),
    ] {
        let (count, left) = stores
            .counters
            .hit(&key, HOUR, crate::clock::now_millis())?;
        if let Some(retry_after) = throttle::exhausted(count, limit + 1, left) {
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    Ok(())
}

/// A reset link for `email`'s account, if there is one; `false` if there
/// is none (the caller must not tell the client which).
pub fn send_reset_link(
    stores: AuthStores<'_>,
    mail_settings: &MailSettings,
    email: &Email,
    client: Client<'_>,
    now: Timestamp,
) -> Result<bool, ApiError> {
    let Some((user, _)) = stores.users.user_by_email(email)? else {
        return Ok(false);
    };
    let token = LinkToken::generate();
    let expires = now + RESET_LINK_SECONDS;
    let purpose = LinkPurpose::ResetPassword;
    let issued = stores
        .links
        .issue_link(&token.digest(), &user.id, purpose, now, expires);
    match issued {
        // Deleted since it was read: as for an address with no account.
        Err(StoreError::Gone(_)) => return Ok(false),
        other => other?,
    }
    let message = mail::password_reset(&mail_settings.app_url, &user.email, token.expose());
    queue(stores, mail_settings, &message, now)?;
    let event = "password_reset_requested";
    audit(stores.audit, event, Some(&user.id), None, client, None, now);
    Ok(true)
}

/// Sets a new password with a reset link, ends every session, and counts
/// the address as verified.
///
/// Rules: the new password is checked against the policy before the link
/// is used, so a refused password does not cost the link; sessions end
/// before anything changes, so a store failure leaves password and link as
/// they were; and again after, for a login that raced the change.
pub fn reset_password(
    stores: AuthStores<'_>,
    token: &LinkToken,
    new_password: &str,
    client: Client<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let (links, users, sessions) = (stores.links, stores.users, stores.sessions);
    let purpose = LinkPurpose::ResetPassword;
    let user_id = links
        .link_user(&token.digest(), purpose, now)?
        .ok_or(ApiError::InvalidLink)?;
    let user = users.user_by_id(&user_id)?.ok_or(ApiError::InvalidLink)?;
    let context = [
        user.email.as_str(),
        user.first_name.as_deref().unwrap_or_default(),
    ];
    let new_password = Password::parse(new_password, &context)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    let hash = hash_password(&new_password)?;
    sessions.revoke_all_sessions(&user.id, None)?;
    if links.use_link(&token.digest(), purpose, now)?.as_deref() != Some(user.id.as_str()) {
        return Err(ApiError::InvalidLink);
    }
    if !users.change_password_hash(&user.id, None, &hash, now)? {
        // Deleted since the link was read.
        return Err(ApiError::InvalidLink);
    }
    users.mark_email_verified(&user.id, now)?;
    // A login that checked the old password before the change and created
    // its session after the first revocation sees the new credentials'
    // version and ends itself, or is ended here.
    sessions.revoke_all_sessions(&user.id, None)?;
    audit(
        stores.audit,
        "password_reset",
        Some(&user.id),
        None,
        client,
        None,
        now,
    );
    Ok(())
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
