//! Email verification and password recovery over HTTP; mail goes out after
//! the response.

use super::{AuthService, ClientInfo, role_names};
use crate::api_types::UserBody;
use crate::auth::login::Client;
use crate::auth::recovery;
use crate::clock;
use crate::component::after_response;
use crate::domain::Email;
use crate::error::{ApiError, FieldError};
use crate::http::{JsonFields, Request, Response};
use crate::mail;
use crate::service::authenticate;
use crate::tokens::RefreshToken as LinkToken;

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
    let client = ClientInfo::of(service, request);
    recovery::request_verification(
        service.use_case_stores(),
        &service.settings,
        &claims.user_id,
        &claims.session_id,
        client.client(),
        clock::now(),
    )?;
    deliver_after_response(service);
    Ok(Response::new(202))
}

/// The `token` of a link, from a JSON body; `None` when it cannot be one
/// this service issued.
fn link_token(fields: &mut JsonFields) -> Option<LinkToken> {
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
    let client = ClientInfo::of(service, request);
    let (user, roles) = recovery::verify_email(
        service.use_case_stores(),
        &service.settings,
        &token,
        client.client(),
        clock::now(),
    )?;
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
                fields.reject(FieldError::new("email", reason));
                None
            }
        });
    fields.finish()?;
    let email = email.ok_or_else(|| ApiError::invalid("email", "is required"))?;
    let client = ClientInfo::of(service, request);
    let stores = service.use_case_stores();
    recovery::admit_reset_request(stores, &email, &client.ip)?;
    after_response(move || {
        let sent = AuthService::from_spin()
            .map_err(|error| error.to_string())
            .and_then(|service| {
                let client = Client {
                    ip: &client.ip,
                    user_agent: &client.user_agent,
                };
                let stores = service.use_case_stores();
                let mail_settings = &service.settings.mail;
                let sent =
                    recovery::send_reset_link(stores, mail_settings, &email, client, clock::now());
                if let Ok(true) = sent {
                    deliver_after_response(&service);
                }
                sent.map_err(|error| format!("{error:?}"))
            });
        if let Err(error) = sent {
            eprintln!("password reset for a requested address not sent: {error}");
        }
    });
    Ok(Response::new(202))
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
    let client = ClientInfo::of(service, request);
    recovery::reset_password(
        service.use_case_stores(),
        &token,
        &new_password,
        client.client(),
        clock::now(),
    )?;
    // The cookie stays: a reset link is no proof that this browser's cookie
    // is the account's (on a shared browser it may be another account's
    // live session); a dead one is cleared by its next refresh.
    Ok(Response::new(204))
}
