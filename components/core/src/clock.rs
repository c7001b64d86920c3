//! Time as the service uses it: whole seconds since the Unix epoch, stored
//! as integers (portable across PostgreSQL and SQLite, and readable through
//! Spin's PostgreSQL interface, which cannot read `timestamptz`), shown to
//! clients as RFC 3339 UTC strings.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

/// The current time.
pub fn now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch, for throttling windows, where a
/// second's rounding would shorten a one-second block to almost nothing.
///
/// A type of its own, not an `i64`: a count of seconds passed where
/// milliseconds are meant is a compile error, not a window a thousand
/// times too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(i64);

impl Millis {
    /// `seconds` later.
    pub fn plus_seconds(self, seconds: u64) -> Millis {
        Millis(self.0.saturating_add((seconds as i64).saturating_mul(1000)))
    }

    /// Whole seconds from `self` until `later`, rounded up (so a client
    /// that waits that long is never early); 0 if `later` has passed.
    pub fn seconds_until(self, later: Millis) -> u64 {
        ((later.0 - self.0).max(0) as u64).div_ceil(1000)
    }

    /// The number, as stored.
    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// A time read back from storage.
    pub fn from_stored(millis: i64) -> Millis {
        Millis(millis)
    }
}

/// The current time, in milliseconds.
pub fn now_millis() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or_default(),
    )
}

/// `2026-11-25T13:27:48Z`.
pub fn rfc3339(timestamp: Timestamp) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::Millis;

    #[test]
    fn seconds_left_round_up_and_never_go_negative() {
        let now = Millis::from_stored(10_000);
        assert_eq!(now.seconds_until(now.plus_seconds(3600)), 3600);
        assert_eq!(now.seconds_until(Millis::from_stored(10_001)), 1);
        assert_eq!(now.seconds_until(Millis::from_stored(9_000)), 0);
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_764_077_268), "2025-11-25T13:27:48Z");
    }
}
