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
        let (count, _) = counters.hit(
            &format!("login-account:{account}"),
            throttle::LOGIN_WINDOW,
            now,
        )?;
        if count >= free {
            // From the last free attempt on, each attempt claims the current
            // back-off period (success lifts it): only the first claimant
            // goes ahead, any other waits. The last free attempt claims it
            // before its check, as if it had already failed, so parallel
            // guesses get no further than serial ones.
            let (claims, left) = counters.hit(
                &format!("login-block:{account}"),
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
        self.counters
            .clear(&format!("login-account:{}", self.account))?;
        self.counters
            .clear(&format!("login-block:{}", self.account))?;
        if let Some(address) = &self.address {
            self.counters.forgive(address)?;
        }
        Ok(())
    }
}
