//! Email verification and password recovery: single-use links, sent by
//! mail through the outbox.
//!
//! A link's token is 256 random bits, URL-safe base64; only its digest is
//! stored. Verification links live 24 hours, reset links one hour, and a
//! new reset link voids the older ones.

use super::throttling::throttle_address;
use super::{AuthService, Who, role_names};
use crate::api_types::UserBody;
use crate::clock;
use crate::component::after_response;
use crate::domain::{Email, Password, User, roles_for};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::mail;
use crate::password::hash_password;
use crate::service::authenticate;
use crate::store::{LinkPurpose, LinkStore, Outbox, UserStore};
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
pub(super) fn send_verification_link(service: &AuthService, user: &User) -> Result<(), ApiError> {
    let token = LinkToken::generate();
    let now = clock::now();
    service.stores.database.issue_link(
        &token.digest(),
        &user.id,
        LinkPurpose::VerifyEmail,
        now,
        now + VERIFY_LINK_SECONDS,
        false,
    )?;
    let message = mail::verification(&service.settings.mail.app_url, &user.email, token.expose());
    queue(service, &message)
}

/// Stores `message` in the outbox, then (after the response) delivers
/// what is due. Without `mail_url`, the development log shows it.
fn queue(service: &AuthService, message: &mail::Message) -> Result<(), ApiError> {
    let id = service
        .stores
        .database
        .enqueue(&message.to_store(), clock::now())?;
    if service.settings.mail.mail_url.is_none() {
        // The embedded default's development log: the only place a token
        // is ever printed.
        eprintln!(
            "mail {id} to {} (kept in the outbox; mail_url is not set):\n{}",
            message.to, message.text
        );
    }
    deliver_after_response(service);
    Ok(())
}

/// Delivers due messages once the response has gone out; nothing to do
/// (and nothing read) without `mail_url`.
pub fn deliver_after_response(service: &AuthService) {
    if service.settings.mail.mail_url.is_none() {
        return;
    }
    after_response(|| match AuthService::from_spin() {
        Ok(service) => {
            mail::delivery::deliver_due(&service.stores.database, &service.settings.mail)
        }
        Err(error) => eprintln!("mail: not delivered, configuration: {error}"),
    });
}

/// `POST /auth/verify-email/request` (Bearer): a new verification link.
pub fn request_verification(
    service: &AuthService,
    request: &Request,
) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let user = service
        .stores
        .database
        .user_by_id(&claims.user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    if user.email_verified {
        return Err(ApiError::Conflict("already_verified"));
    }
    let (count, left) = service.stores.counters().hit(
        &format!("verify-request:{}", user.id),
        HOUR,
        clock::now_millis(),
    )?;
    if let Some(retry_after) = throttle::exhausted(count, VERIFY_REQUESTS_PER_HOUR + 1, left) {
        return Err(ApiError::RateLimited { retry_after });
    }
    send_verification_link(service, &user)?;
    service.audit(
        "verification_requested",
        request,
        Who::session(&user.id, &claims.session_id),
        None,
    );
    Ok(Response::new(202))
}

/// The `token` of a link, from a JSON body; `invalid_token` when it cannot
/// be one this service issued.
fn link_token(fields: &mut crate::http::JsonFields) -> Option<LinkToken> {
    fields
        .string("token")
        .and_then(|token| LinkToken::parse(&token))
}

/// `POST /auth/verify-email`: uses a verification link.
pub fn verify_email(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let token = link_token(&mut fields);
    fields.finish()?;
    let token = token.ok_or(ApiError::InvalidLink)?;
    let now = clock::now();
    let database = &service.stores.database;
    let user_id = database
        .use_link(&token.digest(), LinkPurpose::VerifyEmail, now)?
        .ok_or(ApiError::InvalidLink)?;
    database.mark_email_verified(&user_id, now)?;
    let user = database
        .user_by_id(&user_id)?
        .ok_or(ApiError::InvalidLink)?;
    service.audit(
        "email_verified",
        request,
        Who {
            user_id: Some(&user.id),
            session_id: None,
        },
        None,
    );
    let roles = roles_for(&user, &service.settings.admin_emails);
    Ok(Response::json(
        200,
        &UserBody::new(&user, role_names(&roles)),
    ))
}

/// `POST /auth/password/forgot`: 202 whether or not the account exists,
/// with the same body and in the same time: the lookup and the message
/// happen after the response has gone out.
pub fn forgot_password(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let email = fields
        .string("email")
        .and_then(|input| match Email::parse(&input) {
            Ok(email) => Some(email),
            Err(reason) => {
                fields.reject(crate::error::FieldError::new("email", reason));
                None
            }
        });
    fields.finish()?;
    let email = email.ok_or_else(|| ApiError::invalid("email", "is required"))?;
    let ip = request.client_ip(&service.settings.trusted_proxies);
    let counters = service.stores.counters();
    let now = clock::now_millis();
    for (key, limit) in [
        (
            format!("reset-email:{}", email.as_str()),
            RESETS_PER_EMAIL_PER_HOUR,
        ),
        (
            format!("reset-ip:{}", throttle_address(&ip)),
            RESETS_PER_ADDRESS_PER_HOUR,
        ),
    ] {
        let (count, left) = counters.hit(&key, HOUR, now)?;
        if let Some(retry_after) = throttle::exhausted(count, limit + 1, left) {
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    let (user_agent, forwarded_ip) = (super::user_agent(request), ip);
    after_response(move || {
        let sent = AuthService::from_spin()
            .map_err(|error| error.to_string())
            .and_then(|service| {
                send_reset_link(&service, &email, &forwarded_ip, &user_agent)
                    .map_err(|error| format!("{error:?}"))
            });
        if let Err(error) = sent {
            eprintln!("password reset for a requested address not sent: {error}");
        }
    });
    // A stored reset message schedules its own delivery (queue).
    Ok(Response::new(202))
}

/// After a forgot-password response: a reset link for `email`'s account,
/// if there is one.
fn send_reset_link(
    service: &AuthService,
    email: &Email,
    ip: &str,
    user_agent: &str,
) -> Result<(), ApiError> {
    let database = &service.stores.database;
    let Some((user, _)) = database.user_by_email(email)? else {
        return Ok(());
    };
    let token = LinkToken::generate();
    let now = clock::now();
    database.issue_link(
        &token.digest(),
        &user.id,
        LinkPurpose::ResetPassword,
        now,
        now + RESET_LINK_SECONDS,
        true,
    )?;
    let message = mail::password_reset(&service.settings.mail.app_url, &user.email, token.expose());
    queue(service, &message)?;
    service.record(
        "password_reset_requested",
        Who {
            user_id: Some(&user.id),
            session_id: None,
        },
        ip,
        user_agent,
        None,
    );
    Ok(())
}

/// `POST /auth/password/reset`: sets a new password with a reset link,
/// ends every session, and counts the address as verified.
pub fn reset_password(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let token = link_token(&mut fields);
    let new_password = fields.string("new_password");
    fields.finish()?;
    let token = token.ok_or(ApiError::InvalidLink)?;
    let new_password =
        new_password.ok_or_else(|| ApiError::invalid("new_password", "is required"))?;
    let now = clock::now();
    let database = &service.stores.database;
    // The password is checked against the policy before the link is used,
    // so a refused password does not cost the link.
    let user_id = database
        .link_user(&token.digest(), LinkPurpose::ResetPassword, now)?
        .ok_or(ApiError::InvalidLink)?;
    let user = database
        .user_by_id(&user_id)?
        .ok_or(ApiError::InvalidLink)?;
    let context = [
        user.email.as_str(),
        user.first_name.as_deref().unwrap_or_default(),
    ];
    let new_password = Password::parse(&new_password, &context)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    let hash = hash_password(&new_password)?;
    let sessions = service.stores.sessions();
    // Sessions first: a 503 here leaves the password and the link as they
    // were.
    sessions.revoke_all_sessions(&user.id, None)?;
    if database
        .use_link(&token.digest(), LinkPurpose::ResetPassword, now)?
        .as_deref()
        != Some(user.id.as_str())
    {
        return Err(ApiError::InvalidLink);
    }
    database.change_password_hash(&user.id, &hash, now)?;
    database.mark_email_verified(&user.id, now)?;
    // A login that checked the old password before the change and created
    // its session after the first revocation sees the new credentials'
    // version and ends itself, or is ended here.
    sessions.revoke_all_sessions(&user.id, None)?;
    service.audit(
        "password_reset",
        request,
        Who {
            user_id: Some(&user.id),
            session_id: None,
        },
        None,
    );
    Ok(Response::new(204))
}
