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
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
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
    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_764_077_268), "2025-11-25T13:27:48Z");
    }
}
