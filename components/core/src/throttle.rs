//! Throttling decisions, pure: the counts come in, the decision goes out,
//! and the tests move the numbers by hand.
//!
//! ```text
//!  attempts on (account, IP) in the window, counted before the check
//!   1 .. N   ──▶ allowed           (N = login_failures_per_account)
//!   N        ──▶ also starts a 1 s block, lifted if it succeeds
//!   then one attempt per block, each block twice the last (2 s, 4 s, ...,
//!   at most 15 min); attempts during a block get 429 and still count
//!  success   ──▶ the account's count and block are cleared
//!  window (15 min) or block ends ──▶ allowed again (decay)
//! ```
//!
//! Counting before the check matters: parallel guesses all reserve their
//! place in the count at once, so no more than N of them reach the password
//! check together. A successful login gives its place back to the address.
//!
//! The account counter is kept per (account, client IP): an attacker
//! guessing from one address slows down only their own attempts, and the
//! account's owner logging in from another address is not locked out
//! (OWASP ASVS 5.0 6.3.1, without the lock-out). A second counter per IP,
//! across accounts, stops one address from spraying guesses over many
//! accounts.

/// Window of the login failure counters, seconds.
pub const LOGIN_WINDOW: u64 = 15 * 60;
/// Window of the registration counter, seconds.
pub const REGISTRATION_WINDOW: u64 = 60 * 60;
/// Longest back-off, seconds.
pub const MAX_BACKOFF: u64 = 15 * 60;

/// How long to block after `failures` failures when `free` are allowed
/// without delay; zero means not blocked.
pub fn backoff(failures: u64, free: u64) -> u64 {
    if failures < free {
        return 0;
    }
    let exponent = (failures - free).min(20);
    (1u64 << exponent).min(MAX_BACKOFF)
}

/// Whether a limit of `limit` in a window is exhausted by `count`; if so,
/// the seconds until the window ends (at least one).
pub fn exhausted(count: u64, limit: u64, window_left: u64) -> Option<u64> {
    (count >= limit).then_some(window_left.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free() {
        assert_eq!(backoff(0, 5), 0);
        assert_eq!(backoff(4, 5), 0);
    }

    #[test]
    fn back_off_doubles_from_the_threshold_and_is_capped() {
        assert_eq!(backoff(5, 5), 1);
        assert_eq!(backoff(6, 5), 2);
        assert_eq!(backoff(9, 5), 16);
        assert_eq!(backoff(30, 5), MAX_BACKOFF);
        assert_eq!(backoff(u64::MAX, 5), MAX_BACKOFF);
    }

    #[test]
    fn a_limit_is_exhausted_at_its_count() {
        assert_eq!(exhausted(19, 20, 100), None);
        assert_eq!(exhausted(20, 20, 100), Some(100));
        assert_eq!(exhausted(21, 20, 0), Some(1));
    }
}
