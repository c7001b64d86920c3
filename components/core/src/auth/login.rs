//! Signing in with a password, as a use case: a [`Login`] command in, a
//! [`SignInOutcome`] (a session, or a second factor to ask for) or the
//! error that refuses it out, over the store traits. It knows nothing of HTTP, cookies or tokens' encoding, so its
//! rules are unit-tested natively against the in-memory store.

use super::throttling::{Attempt, account_key, throttle_address};
use crate::clock::Timestamp;
use crate::config::AuthSettings;
use crate::domain::{Email, Password, Role, User, roles_for};
use crate::error::ApiError;
use crate::password::{Verification, hash_password, verify_against_dummy, verify_password};
use crate::store::{
    AuditEvent, AuditLog, CounterStore, MfaChallenge, MfaStore, NewSession, SessionPolicy,
    SessionStore, StoreError, UserStore, record_or_log,
};
use crate::tokens::RefreshToken;
use crate::totp::MfaToken;

/// How long an `mfa_token` waits for its second factor.
pub const MFA_TOKEN_TTL: i64 = 300;
/// RFC 8176 `amr` of a login by password alone.
pub const AMR_PASSWORD: &[&str] = &["pwd"];
/// RFC 8176 `amr` of a login by password and a one-time code.
pub const AMR_PASSWORD_AND_OTP: &[&str] = &["pwd", "otp"];

/// Where a request came from, as the audit trail and sessions keep it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's IP address.
    pub ip: &'a str,
    /// Its `User-Agent`, cut to a sane length.
    pub user_agent: &'a str,
}

impl<'a> Client<'a> {
    /// The audit event `event` of a request from this client.
    pub(crate) fn event<'e>(
        self,
        event: &'e str,
        user_id: Option<&'e str>,
        session_id: Option<&'e str>,
        detail: Option<&'e str>,
        at: Timestamp,
    ) -> AuditEvent<'e>
    where
        'a: 'e,
    {
        AuditEvent {
            event,
            user_id,
            session_id,
            ip: self.ip,
            user_agent: self.user_agent,
            detail,
            at,
        }
    }
}

/// The stores signing in uses.
#[derive(Clone, Copy)]
pub struct SignInStores<'a> {
    /// Accounts and credentials.
    pub users: &'a dyn UserStore,
    /// Sessions and refresh tokens.
    pub sessions: &'a dyn SessionStore,
    /// Throttling counters.
    pub counters: &'a dyn CounterStore,
    /// The audit trail.
    pub audit: &'a dyn AuditLog,
    /// Second-factor enrolments and pending logins.
    pub mfa: &'a dyn MfaStore,
}

/// `POST /auth/login`'s command: an email as typed, and a password.
pub struct Login<'a> {
    /// As the client typed it.
    pub email: &'a str,
    /// As the client typed it (checked for length only).
    pub password: Password,
    /// Who asks.
    pub client: Client<'a>,
}

/// A login that went through: a new session and its first refresh token.
#[derive(Debug)]
pub struct SignedIn {
    /// The account.
    pub user: User,
    /// Its roles now.
    pub roles: Vec<Role>,
    /// The new session (`sid`).
    pub session_id: String,
    /// The session's first refresh token.
    pub refresh_token: RefreshToken,
    /// How the login was authenticated (RFC 8176 `amr`).
    pub amr: &'static [&'static str],
}

/// What a right password leads to.
#[derive(Debug)]
pub enum SignInOutcome {
    /// A session: the account needs nothing more.
    SignedIn(Box<SignedIn>),
    /// The account has TOTP on: no session yet, but a single-use token
    /// that, with a code, completes this login at `POST /auth/mfa/verify`.
    MfaRequired(MfaToken),
}

impl SignInOutcome {
    /// The session, if the login needed no second factor.
    pub fn into_signed_in(self) -> Option<SignedIn> {
        match self {
            SignInOutcome::SignedIn(signed_in) => Some(*signed_in),
            SignInOutcome::MfaRequired(_) => None,
        }
    }
}

/// Checks the password and starts a session.
///
/// Rules: throttled attempts are refused before any hashing; unknown and
/// known emails take the same steps (one Argon2 verification) and fail
/// alike; a correct password for a disabled account is refused (403), as
/// is one for an unverified address when `require_verified_email` is on; a weaker stored hash is upgraded; an
/// account with TOTP on gets an `mfa_token` instead of a session; and a
/// password change that overtook the login ends the session it created.
pub fn sign_in(
    stores: SignInStores<'_>,
    settings: &AuthSettings,
    policy: &SessionPolicy,
    command: Login<'_>,
    now: Timestamp,
) -> Result<SignInOutcome, ApiError> {
    let Login {
        email,
        password,
        client,
    } = command;
    // The same canonical form as registration's; an input that is no
    // address this service accepts cannot name an account, but still
    // takes the same steps.
    let parsed = Email::parse(email).ok();
    let account = match &parsed {
        Some(email) => email.as_str().to_owned(),
        None => email.trim().to_ascii_lowercase(),
    };
    // Counted now, not after the check, so that parallel guesses cannot
    // all slip under the limit.
    let address = throttle_address(client.ip);
    let attempt = Attempt::begin(
        stores.counters,
        settings,
        account_key(&account, &address),
        Some(format!("login-ip:{address}")),
    )?;

    let found = match &parsed {
        Some(email) => stores.users.user_by_email(email)?,
        None => None,
    };
    let verified = match &found {
        Some((_, stored)) => verify_password(&password, &stored.hash),
        None => {
            verify_against_dummy(&password);
            Verification {
                matches: false,
                needs_rehash: false,
            }
        }
    };
    if !verified.matches {
        // The client hears the same either way; the trail keeps whose
        // account a wrong password was for, so that an admin can list an
        // account's failed logins.
        let user_id = found.as_ref().map(|(user, _)| user.id.as_str());
        let detail = user_id.map(|_| "wrong password");
        audit(
            stores.audit,
            "login_failed",
            user_id,
            None,
            client,
            detail,
            now,
        );
        return Err(ApiError::InvalidCredentials);
    }
    // Without an account nothing matched, so this holds one.
    let Some((user, checked)) = found else {
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded()?;

    if verified.needs_rehash {
        // Best effort: the login stands even if the upgrade cannot be saved.
        let upgraded = hash_password(&password)
            .map_err(ApiError::from)
            .and_then(|hash| {
                Ok(stores
                    .users
                    .upgrade_password_hash(&user.id, &checked, &hash)?)
            });
        if let Err(error) = upgraded {
            eprintln!("cannot upgrade a password hash: {error}");
        }
    }
    let refusal = if user.disabled {
        Some((ApiError::AccountDisabled, "the account is disabled"))
    } else if settings.require_verified_email && !user.email_verified {
        let detail = "the email address is not verified";
        Some((ApiError::EmailNotVerified, detail))
    } else {
        None
    };
    if let Some((error, detail)) = refusal {
        let (user_id, detail) = (Some(user.id.as_str()), Some(detail));
        audit(
            stores.audit,
            "login_refused",
            user_id,
            None,
            client,
            detail,
            now,
        );
        return Err(error);
    }
    if user.mfa_enabled {
        // Bound to this login: to this account and the password version
        // just checked, so a password change in between voids it.
        let token = MfaToken::generate();
        let challenge = MfaChallenge {
            user_id: user.id.clone(),
            credential_version: checked.version,
        };
        stores
            .mfa
            .create_challenge(&token.digest(), &challenge, now, now + MFA_TOKEN_TTL)
            .map_err(as_if_unknown)?;
        audit(
            stores.audit,
            "login_mfa_required",
            Some(&user.id),
            None,
            client,
            None,
            now,
        );
        return Ok(SignInOutcome::MfaRequired(token));
    }
    start_session(
        stores,
        settings,
        policy,
        user,
        checked.version,
        AMR_PASSWORD,
        client,
        now,
    )
    .map(|signed_in| SignInOutcome::SignedIn(Box::new(signed_in)))
}

/// A login's store error, where an account deleted while the login was
/// checked answers as if it had been deleted before: its email unknown.
fn as_if_unknown(error: StoreError) -> ApiError {
    match error {
        StoreError::Gone(_) => ApiError::InvalidCredentials,
        error => error.into(),
    }
}

/// Starts the session of a login whose every factor was checked, the
/// password against version `checked_version` of the credentials: the one
/// path by which both `POST /auth/login` and `POST /auth/mfa/verify` end.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_session(
    stores: SignInStores<'_>,
    settings: &AuthSettings,
    policy: &SessionPolicy,
    user: User,
    checked_version: i64,
    amr: &'static [&'static str],
    client: Client<'_>,
    now: Timestamp,
) -> Result<SignedIn, ApiError> {
    // `admin_emails` grants `admin` at every login, even where an admin
    // took it away since the last one (recorded below, with the login).
    let user = User {
        admin_withheld: false,
        ..user
    };
    let roles = roles_for(&user, &settings.admin_emails);
    let session_id = crate::random::uuid().to_string();
    let refresh_token = RefreshToken::generate();
    let role_names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    let created = stores.sessions.create_session(
        &NewSession {
            id: &session_id,
            user_id: &user.id,
            roles: &role_names.join(","),
            created_at: now,
            user_agent: client.user_agent,
            ip: client.ip,
            amr: &amr.join(","),
        },
        &refresh_token.digest(),
        policy,
    );
    created.map_err(as_if_unknown)?;
    // A password change that overtook this login (after the old password
    // was checked, before the session existed) revoked every session but
    // could not see this one: the session ends here instead. A change after
    // this read revokes it itself. Disabling the account bumps the same
    // version, so it cannot be overtaken either. While the version is the
    // one checked, the same call records the login and its event.
    let amr_detail = format!("amr={}", amr.join(","));
    let succeeded = client.event(
        "login_succeeded",
        Some(&user.id),
        Some(&session_id),
        Some(&amr_detail),
        now,
    );
    let current = stores
        .users
        .record_login(&user.id, checked_version, &succeeded)?;
    if current != Some(checked_version) {
        stores.sessions.revoke_session(&user.id, &session_id)?;
        // Disabling bumps the version too: say which it was.
        let now_user = stores.users.user_by_id(&user.id)?;
        if now_user.is_some_and(|user| user.disabled) {
            let detail = Some("the account was disabled while the login was checked");
            let (user_id, sid) = (Some(user.id.as_str()), Some(session_id.as_str()));
            audit(
                stores.audit,
                "login_refused",
                user_id,
                sid,
                client,
                detail,
                now,
            );
            return Err(ApiError::AccountDisabled);
        }
        let detail = Some("the password changed while the login was checked");
        audit(
            stores.audit,
            "login_failed",
            Some(&user.id),
            Some(&session_id),
            client,
            detail,
            now,
        );
        return Err(ApiError::InvalidCredentials);
    }
    Ok(SignedIn {
        user,
        roles,
        session_id,
        refresh_token,
        amr,
    })
}

/// Records an event; a failure to record is logged, never the request's
/// failure.
pub(crate) fn audit(
    log: &dyn AuditLog,
    event: &str,
    user_id: Option<&str>,
    session_id: Option<&str>,
    client: Client<'_>,
    detail: Option<&str>,
    at: Timestamp,
) {
    record_or_log(log, &client.event(event, user_id, session_id, detail, at));
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
