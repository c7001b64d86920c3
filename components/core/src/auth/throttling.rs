//! Counting password attempts: the counter keys (no email in the clear,
//! IPv6 by /64) and [`Attempt`], which applies [`crate::throttle`]'s rules
//! before a password is checked.

use sha2::{Digest, Sha256};

use crate::clock;
use crate::config::AuthSettings;
use crate::error::ApiError;
use crate::store::CounterStore;
use crate::throttle;

/// A counter key that does not store the email in the clear.
pub(super) fn account_key(email: &str, address: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    format!("{}|{address}", hex::encode(&digest[..16]))
}

/// The account name of password checks by a signed-in user (password
/// change, disabling TOTP, deleting the account).
pub(super) fn password_account(user_id: &str) -> String {
    format!("password:{user_id}")
}

/// The account name of TOTP enrolment confirmations.
pub(super) fn mfa_confirm_account(user_id: &str) -> String {
    format!("mfa-confirm:{user_id}")
}

/// The counter of verification mails a user asked for.
pub(super) fn verify_request_key(user_id: &str) -> String {
    format!("verify-request:{user_id}")
}

/// The counter of reset links asked for an address.
pub(super) fn reset_email_key(email: &str) -> String {
    format!("reset-email:{email}")
}

/// The two counters of an account's attempts: failures, and the back-off.
fn attempt_keys(account: &str) -> [String; 2] {
    [
        format!("login-account:{account}"),
        format!("login-block:{account}"),
    ]
}

/// Every counter that names the user by id or email, to clear when the
/// account is deleted. (Login counters name a digest of the email with the
/// address, and lapse with their window.)
pub(super) fn counters_naming(user_id: &str, email: &str) -> Vec<String> {
    let mut keys = vec![verify_request_key(user_id), reset_email_key(email)];
    for account in [password_account(user_id), mfa_confirm_account(user_id)] {
        keys.extend(attempt_keys(&account));
    }
    keys
}

/// The address throttling counts by: an IPv4 address, or the /64 an IPv6
/// address is in (one client usually holds a whole /64, and counting each
/// address apart would let it step around every limit).
pub(crate) fn throttle_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        _ => ip.to_owned(),
    }
}

/// A password check that throttling let through. A failure needs nothing
/// more (the attempt is already counted); a success is settled with
/// [`Attempt::succeeded`]. See [`crate::throttle`] for the rules.
pub(super) struct Attempt<'a> {
    counters: &'a dyn CounterStore,
    account: String,
    address: Option<String>,
}

impl<'a> Attempt<'a> {
    /// Counts the attempt against the account (and the address, for
    /// logins) and refuses it with 429 when a limit or back-off is in force.
    pub(super) fn begin(
        counters: &'a dyn CounterStore,
        settings: &AuthSettings,
        account: String,
        address: Option<String>,
    ) -> Result<Self, ApiError> {
        let now = clock::now_millis();
        if let Some(address) = &address {
            let (count, left) = counters.hit(address, throttle::LOGIN_WINDOW, now)?;
            if let Some(retry_after) =
                throttle::exhausted(count, settings.login_failures_per_ip + 1, left)
            {
                return Err(ApiError::RateLimited { retry_after });
            }
        }
        let free = settings.login_failures_per_account;
        let [failures, block] = attempt_keys(&account);
        let (count, _) = counters.hit(&failures, throttle::LOGIN_WINDOW, now)?;
        if count >= free {
            // From the last free attempt on, each attempt claims the current
            // back-off period (success lifts it): only the first claimant
            // goes ahead, any other waits. The last free attempt claims it
            // before its check, as if it had already failed, so parallel
            // guesses get no further than serial ones.
            let (claims, left) = counters.hit(
                &block,
                throttle::backoff(count.max(free + 1) - 1, free),
                now,
            )?;
            if claims > 1 {
                return Err(ApiError::RateLimited {
                    retry_after: left.max(1),
                });
            }
        }
        Ok(Self {
            counters,
            account,
            address,
        })
    }

    /// The password was right: the account starts afresh, and the attempt
    /// does not count against the address.
    pub(super) fn succeeded(self) -> Result<(), ApiError> {
        let [failures, block] = attempt_keys(&self.account);
        self.counters
            .settle(&[&failures, &block], self.address.as_deref())?;
        Ok(())
    }
}
