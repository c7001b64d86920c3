//! The `auth` component's use cases, one function per route, in one module
//! per family: [`registration`], [`sign_in`] (login, refresh, logout) and
//! [`account`] (the signed-in user's own account and sessions). Each reads
//! as the steps of its use case; the component only routes to it.

mod account;
pub mod login;
mod mfa;
mod recovery;
mod registration;
pub mod second_factor;
mod sign_in;
mod throttling;

use std::ops::Deref;

pub use account::{change_password, health, list_sessions, me, revoke_session};
pub use mfa::{confirm_totp, disable_totp, enrol_totp, verify_second_factor};
pub use recovery::{
    deliver_after_response, forgot_password, request_verification, reset_password, verify_email,
};
pub use registration::register;
pub use sign_in::{login, logout, refresh, refresh_failure_response};

use crate::clock;
use crate::config::{AuthSettings, Config};
use crate::domain::Role;
use crate::error::ApiError;
use crate::http::Request;
use crate::service::Service;
use crate::store::SessionPolicy;
use crate::tokens::RefreshToken;

/// Name of the refresh cookie; `__Secure-` makes browsers insist on
/// `Secure` (RFC 6265bis section 4.1.3.1).
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The cookie is sent only to the routes that read it.
const REFRESH_COOKIE_PATH: &str = "/auth";
/// Longest `User-Agent` kept with a session or audit event.
const MAX_USER_AGENT: usize = 256;

/// The `auth` component's service: what every component has, and the
/// settings only this one reads.
pub struct AuthService {
    service: Service,
    /// Sessions, throttling, roles and proxies.
    pub settings: AuthSettings,
}

impl Deref for AuthService {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

impl AuthService {
    /// Reads the variables and prepares (but does not connect) the stores.
    pub fn from_spin() -> Result<Self, ApiError> {
        Ok(Self::new(Config::from_spin()?, AuthSettings::from_spin()?))
    }

    /// A service on these settings.
    pub fn new(config: Config, settings: AuthSettings) -> Self {
        Self {
            service: Service::new(config),
            settings,
        }
    }

    /// The stores a sign-in uses.
    fn sign_in_stores(&self) -> login::SignInStores<'_> {
        login::SignInStores {
            users: &self.stores.database,
            sessions: self.stores.sessions(),
            counters: self.stores.counters(),
            audit: &self.stores.database,
            mfa: &self.stores.database,
        }
    }

    fn policy(&self) -> SessionPolicy {
        SessionPolicy {
            refresh_ttl: self.settings.refresh_token_ttl,
            reuse_grace: self.settings.refresh_reuse_grace,
            max_lifetime: self.settings.session_max_lifetime,
        }
    }

    fn audit(&self, event: &str, request: &Request, who: Who<'_>, detail: Option<&str>) {
        let user_agent = user_agent(request);
        let ip = request.client_ip(&self.settings.trusted_proxies);
        self.record(event, who, &ip, &user_agent, detail);
    }

    /// Records an event for a client known by its address and user agent
    /// (after the response, when the request is gone).
    fn record(&self, event: &str, who: Who<'_>, ip: &str, user_agent: &str, detail: Option<&str>) {
        login::audit(
            &self.stores.database,
            event,
            who.user_id,
            who.session_id,
            login::Client { ip, user_agent },
            detail,
            clock::now(),
        );
    }
}

/// Whom an audit event is about.
#[derive(Default, Clone, Copy)]
struct Who<'a> {
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
}
impl<'a> Who<'a> {
    /// A user in one of their sessions.
    fn session(user_id: &'a str, session_id: &'a str) -> Self {
        Self {
            user_id: Some(user_id),
            session_id: Some(session_id),
        }
    }
}

pub(crate) fn user_agent(request: &Request) -> String {
    request
        .header("user-agent")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect()
}

fn refresh_cookie(token: &RefreshToken, max_age: u64) -> String {
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
