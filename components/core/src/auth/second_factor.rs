//! The second factor, as use cases over the store traits: enrolling a TOTP
//! authenticator ([`begin_enrolment`], [`confirm_enrolment`]), turning it
//! off ([`disable`]), and completing a login that asked for it
//! ([`verify`]). They know nothing of HTTP; the handlers in `mfa.rs` map
//! requests to them, and their rules are unit-tested natively here.
//!
//! A wrong code counts against the account and the client's address like
//! a wrong password ([`super::throttling::Attempt`]); a right one is
//! accepted once ([`crate::store::MfaStore::use_totp_step`]); and a
//! verified login ends by [`super::login::start_session`], the same path
//! as a login without a second factor.

use zeroize::Zeroizing;

use super::login::{AMR_PASSWORD_AND_OTP, Client, SignInStores, SignedIn, audit, start_session};
use super::throttling::{
    Attempt, account_key, mfa_confirm_account, password_account, throttle_address,
};
use crate::clock::Timestamp;
use crate::config::AuthSettings;
use crate::domain::{Password, User};
use crate::error::ApiError;
use crate::password::verify_password;
use crate::store::SessionPolicy;
use crate::totp::{self, MfaToken, TotpSecret};

/// Where the key that seals TOTP secrets comes from: called only when a
/// secret is sealed or opened, so a deployment without the key still
/// answers everything else.
pub type SealingKey<'a> = &'a dyn Fn() -> Result<Zeroizing<Vec<u8>>, ApiError>;

/// A new, pending enrolment: what the authenticator app is given.
pub struct Enrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: Zeroizing<String>,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: Zeroizing<String>,
}

/// The counter key of second-factor attempts on `user_id`'s account.
fn attempt_key(user_id: &str, client: Client<'_>) -> String {
    account_key(&format!("mfa:{user_id}"), &throttle_address(client.ip))
}

/// Counts a code attempt like a password attempt: per account (from this
/// address) and per address, refused with 429 during back-off.
fn begin_attempt<'a>(
    stores: SignInStores<'a>,
    settings: &AuthSettings,
    user_id: &str,
    client: Client<'_>,
) -> Result<Attempt<'a>, ApiError> {
    Attempt::begin(
        stores.counters,
        settings,
        attempt_key(user_id, client),
        Some(format!("login-ip:{}", throttle_address(client.ip))),
    )
}

/// Starts (or restarts) an enrolment for `user`: a fresh secret, stored
/// sealed and pending until [`confirm_enrolment`].
pub fn begin_enrolment(
    stores: SignInStores<'_>,
    key: SealingKey<'_>,
    issuer: &str,
    user: &User,
    client: Client<'_>,
    now: Timestamp,
) -> Result<Enrolment, ApiError> {
    if user.mfa_enabled {
        return Err(ApiError::Conflict("mfa_already_enabled"));
    }
    let secret = TotpSecret::generate();
    let sealed = secret.seal(&key()?, &user.id);
    if !stores.mfa.begin_totp(&user.id, &sealed, now)? {
        return Err(ApiError::Conflict("mfa_already_enabled"));
    }
    audit(
        stores.audit,
        "mfa_enrolment_started",
        Some(&user.id),
        None,
        client,
        None,
        now,
    );
    Ok(Enrolment {
        secret: secret.base32(),
        otpauth_uri: secret.otpauth_uri(issuer, user.email.as_str()),
    })
}

/// Turns TOTP on once the user shows a code from the pending secret, and
/// returns ten recovery codes (stored only as digests, shown this once).
pub fn confirm_enrolment(
    stores: SignInStores<'_>,
    settings: &AuthSettings,
    key: SealingKey<'_>,
    user: &User,
    code: &str,
    client: Client<'_>,
    now: Timestamp,
) -> Result<Vec<Zeroizing<String>>, ApiError> {
    let pending = match stores.mfa.totp(&user.id)? {
        Some(totp) if totp.enabled => return Err(ApiError::Conflict("mfa_already_enabled")),
        Some(totp) => totp,
        None => return Err(ApiError::Conflict("mfa_not_pending")),
    };
    // The caller is signed in and holds the secret: a guess gains nothing
    // here, so wrong codes count per account only, not against the
    // address that logins share.
    let attempt = Attempt::begin(
        stores.counters,
        settings,
        mfa_confirm_account(&user.id),
        None,
    )?;
    let secret = TotpSecret::open(&key()?, &user.id, &pending.sealed_secret).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "a stored TOTP secret does not open with mfa_encryption_key"
        ))
    })?;
    let Some(step) = secret.matching_step(code, now) else {
        audit(
            stores.audit,
            "mfa_enrolment_failed",
            Some(&user.id),
            None,
            client,
            Some("wrong code"),
            now,
        );
        return Err(ApiError::InvalidMfaCode);
    };
    attempt.succeeded()?;
    let codes = totp::generate_recovery_codes();
    let digests: Vec<String> = codes
        .iter()
        .filter_map(|code| totp::recovery_code_digest(&user.id, code))
        .collect();
    // The code proved this secret; a new enrolment may have replaced it
    // meanwhile, and then nothing is turned on.
    if !stores
        .mfa
        .enable_totp(&user.id, &pending.sealed_secret, step, &digests, now)?
    {
        return Err(ApiError::Conflict("mfa_not_pending"));
    }
    audit(
        stores.audit,
        "mfa_enabled",
        Some(&user.id),
        None,
        client,
        None,
        now,
    );
    Ok(codes)
}

/// Turns TOTP off (its recovery codes and pending logins go with it) for
/// a caller who proves the password; throttled like a password change.
pub fn disable(
    stores: SignInStores<'_>,
    settings: &AuthSettings,
    user: &User,
    current_password: &Password,
    client: Client<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let Some(credentials) = stores.users.credentials(&user.id)? else {
        return Err(ApiError::InvalidToken("the account no longer exists"));
    };
    let attempt = Attempt::begin(stores.counters, settings, password_account(&user.id), None)?;
    if !verify_password(current_password, &credentials.hash).matches {
        audit(
            stores.audit,
            "mfa_disable_failed",
            Some(&user.id),
            None,
            client,
            Some("wrong password"),
            now,
        );
        return Err(ApiError::InvalidCredentials);
    }
    attempt.succeeded()?;
    if stores.mfa.disable_totp(&user.id)? {
        audit(
            stores.audit,
            "mfa_disabled",
            Some(&user.id),
            None,
            client,
            None,
            now,
        );
    }
    Ok(())
}

/// `POST /auth/mfa/verify`'s command.
pub struct Verify<'a> {
    /// The `mfa_token` the login answered with.
    pub mfa_token: &'a str,
    /// A TOTP code or a recovery code.
    pub code: &'a str,
    /// Who asks.
    pub client: Client<'a>,
}

/// Completes a login that asked for a second factor: the token must be
/// live, the code right and unused; then the login ends exactly as one
/// without a second factor would, and the token is spent.
pub fn verify(
    stores: SignInStores<'_>,
    settings: &AuthSettings,
    policy: &SessionPolicy,
    key: SealingKey<'_>,
    command: Verify<'_>,
    now: Timestamp,
) -> Result<SignedIn, ApiError> {
    let Verify {
        mfa_token,
        code,
        client,
    } = command;
    let Some(token) = MfaToken::parse(mfa_token) else {
        return Err(ApiError::InvalidMfaToken);
    };
    let digest = token.digest();
    let Some(challenge) = stores.mfa.challenge(&digest, now)? else {
        audit(
            stores.audit,
            "mfa_failed",
            None,
            None,
            client,
            Some("unknown or expired mfa_token"),
            now,
        );
        return Err(ApiError::InvalidMfaToken);
    };
    let user_id = challenge.user_id.as_str();
    let attempt = begin_attempt(stores, settings, user_id, client)?;
    let user = match stores.users.user_by_id(user_id)? {
        Some(user) if user.mfa_enabled => user,
        _ => return Err(ApiError::InvalidMfaToken),
    };
    // A password change since the login voids it, before a code is spent
    // on it (a change racing past this point is caught by start_session).
    let current = stores.users.credentials(user_id)?.map(|c| c.version);
    if current != Some(challenge.credential_version) {
        stores.mfa.take_challenge(&digest, now)?;
        return Err(ApiError::InvalidMfaToken);
    }
    let method = if totp::is_recovery_code(code) {
        let digest = totp::recovery_code_digest(user_id, code).unwrap_or_default();
        stores
            .mfa
            .use_recovery_code(user_id, &digest, now)?
            .then_some("recovery code")
    } else {
        let stored = stores.mfa.totp(user_id)?.filter(|totp| totp.enabled);
        let Some(stored) = stored else {
            return Err(ApiError::InvalidMfaToken);
        };
        let secret =
            TotpSecret::open(&key()?, user_id, &stored.sealed_secret).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "a stored TOTP secret does not open with mfa_encryption_key"
                ))
            })?;
        match secret.matching_step(code, now) {
            // A code already accepted (or older than one that was) is
            // refused for the rest of its window.
            Some(step) if stores.mfa.use_totp_step(user_id, step)? => Some("totp"),
            _ => None,
        }
    };
    let Some(method) = method else {
        audit(
            stores.audit,
            "mfa_failed",
            Some(user_id),
            None,
            client,
            Some("wrong or used code"),
            now,
        );
        return Err(ApiError::InvalidMfaCode);
    };
    attempt.succeeded()?;
    // Spent here: of two requests with the same token, one goes on.
    let Some(challenge) = stores.mfa.take_challenge(&digest, now)? else {
        return Err(ApiError::InvalidMfaToken);
    };
    let detail = if method == "recovery code" {
        let left = stores.mfa.recovery_codes_left(&user.id)?;
        format!("recovery code; {left} left")
    } else {
        method.to_owned()
    };
    audit(
        stores.audit,
        "mfa_verified",
        Some(&user.id),
        None,
        client,
        Some(&detail),
        now,
    );
    let signed_in = start_session(
        stores,
        settings,
        policy,
        user,
        challenge.credential_version,
        AMR_PASSWORD_AND_OTP,
        client,
        now,
    );
    // A password change (or the account's deletion) that overtook this
    // verification voids the pending login, as it does before a code is
    // spent: the route's own answer, not the password login's.
    signed_in.map_err(|error| match error {
        ApiError::InvalidCredentials => ApiError::InvalidMfaToken,
        other => other,
    })
}

#[cfg(test)]
#[path = "second_factor_tests.rs"]
mod tests;
