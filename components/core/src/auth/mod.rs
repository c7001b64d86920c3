//! The `auth` component's use cases, as plain functions over typed
//! commands and outcomes and the store traits ([`AuthStores`]), one module
//! per family: [`registration`], [`login`] (signing in), [`sessions`]
//! (refresh, logout, listing and revoking), [`account`] (the signed-in
//! user's password) and [`recovery`] (email verification and password
//! reset). They know nothing of HTTP, so their rules are unit-tested
//! natively against [`crate::store::memory`].
//!
//! `handlers` is the thin HTTP layer the component routes to: request to
//! command, outcome to response.

pub mod account;
pub mod erasure;
mod handlers;
pub mod login;
pub mod recovery;
pub mod registration;
pub mod second_factor;
pub mod sessions;
#[cfg(test)]
pub(crate) mod testing;
mod throttling;

use std::ops::Deref;

pub use handlers::{
    REFRESH_COOKIE, change_password, confirm_totp, delete_me, deliver_after_response, disable_totp,
    enrol_totp, forgot_password, health, jwks, list_sessions, login, logout, me,
    openid_configuration, refresh, refresh_failure_response, register, request_verification,
    reset_password, revoke_session, verify_email, verify_second_factor,
};
pub use login::SignInStores;

use crate::config::{AuthSettings, Config};
use crate::error::ApiError;
use crate::service::Service;
use crate::store::{
    AuditLog, CounterStore, LinkStore, MfaStore, Outbox, SessionPolicy, SessionStore, Stores,
    UserDirectory, UserStore,
};

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

    /// The stores the use cases run on, chosen by the configuration.
    pub fn use_case_stores(&self) -> AuthStores<'_> {
        AuthStores::of(&self.stores)
    }

    fn policy(&self) -> SessionPolicy {
        SessionPolicy {
            refresh_ttl: self.settings.refresh_token_ttl,
            reuse_grace: self.settings.refresh_reuse_grace,
            max_lifetime: self.settings.session_max_lifetime,
        }
    }
}

/// Every store the `auth` use cases work on, as traits: the backends in
/// a component, [`crate::store::memory`] in native tests.
#[derive(Clone, Copy)]
pub struct AuthStores<'a> {
    /// Accounts and credentials.
    pub users: &'a dyn UserStore,
    /// Sessions and refresh tokens.
    pub sessions: &'a dyn SessionStore,
    /// Throttling counters.
    pub counters: &'a dyn CounterStore,
    /// The audit trail.
    pub audit: &'a dyn AuditLog,
    /// Single-use email links.
    pub links: &'a dyn LinkStore,
    /// Mail waiting for delivery.
    pub outbox: &'a dyn Outbox,
    /// Second-factor enrolments and pending logins.
    pub mfa: &'a dyn MfaStore,
    /// Listing, changing and deleting accounts.
    pub directory: &'a dyn UserDirectory,
}

impl<'a> AuthStores<'a> {
    /// The configured backends.
    pub fn of(stores: &'a Stores) -> Self {
        let database = &stores.database;
        AuthStores {
            users: database,
            sessions: stores.sessions(),
            counters: stores.counters(),
            audit: database,
            links: database,
            outbox: database,
            mfa: database,
            directory: database,
        }
    }

    /// The subset signing in needs.
    pub fn sign_in(&self) -> SignInStores<'a> {
        SignInStores {
            users: self.users,
            sessions: self.sessions,
            counters: self.counters,
            audit: self.audit,
            mfa: self.mfa,
        }
    }
}
