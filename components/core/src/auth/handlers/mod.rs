//! The `auth` component's HTTP layer: each handler reads a request into a
//! use case's command, runs it, and writes its outcome as a response
//! (cookies, status, problem+json through [`ApiError`]). The rules live in
//! the use cases (the modules beside this one).

mod account;
mod discovery;
mod mfa;
mod recovery;
mod registration;
mod sign_in;

pub use account::{change_password, delete_me, health, list_sessions, me, revoke_session};
pub use discovery::{jwks, openid_configuration};
pub use mfa::{confirm_totp, disable_totp, enrol_totp, verify_second_factor};
pub use recovery::{
    deliver_after_response, forgot_password, request_verification, reset_password, verify_email,
};
pub use registration::register;
pub use sign_in::{login, logout, refresh, refresh_failure_response};

use super::AuthService;
use super::login::Client;
use crate::config::AuthSettings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::http::Request;
use crate::tokens::RefreshToken;

/// Name of the refresh cookie; `__Secure-` makes browsers insist on
/// `Secure` (RFC 6265bis section 4.1.3.1).
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The cookie is sent only to the routes that read it.
const REFRESH_COOKIE_PATH: &str = "/auth";

/// Where a request comes from, owned: the address (behind trusted proxies,
/// the one they forwarded) and the user agent, cut to a sane length.
struct ClientInfo {
    ip: String,
    user_agent: String,
}

impl ClientInfo {
    fn of(service: &AuthService, request: &Request) -> Self {
        Self {
            ip: request.client_ip(&service.settings.trusted_proxies),
            user_agent: request.user_agent(),
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            ip: &self.ip,
            user_agent: &self.user_agent,
        }
    }
}

/// The refresh cookie; it lives as long as its token: the refresh TTL, but
/// never past the end of the session (`session_left` seconds from now).
fn refresh_cookie(token: &RefreshToken, settings: &AuthSettings, session_left: u64) -> String {
    let max_age = settings.refresh_token_ttl.min(session_left);
    format!(
        "{REFRESH_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path={REFRESH_COOKIE_PATH}; Max-Age={max_age}",
        token.expose()
    )
}

fn cleared_cookie() -> String {
    format!(
        "{REFRESH_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path={REFRESH_COOKIE_PATH}; Max-Age=0"
    )
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// The body `{current_password}` of a route that asks for the password
/// again (checked for length only).
fn current_password(request: &Request) -> Result<crate::domain::Password, ApiError> {
    let mut fields = request.json_object()?;
    let current = fields.string("current_password");
    fields.finish()?;
    crate::domain::Password::for_login(&current.unwrap_or_default())
        .map_err(|reason| ApiError::invalid("current_password", reason))
}

/// The account behind a verified access token is gone.
fn account_gone() -> ApiError {
    ApiError::InvalidToken("the account no longer exists")
}
