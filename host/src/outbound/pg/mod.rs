//! `spin:postgres/postgres@4.0.0` on `tokio-postgres`, with a
//! `deadpool-postgres` pool per address shared by every request of a
//! worker thread.
//!
//! Like Spin, the host connects without TLS only when the address says
//! `sslmode=disable`; this host has no TLS client, so any other mode is
//! refused with a message saying so, where Spin would try TLS.
//!
//! As in Spin's `factor-outbound-pg`: `client.rs` pools connections,
//! `host.rs` implements the WIT, `types.rs` converts values.

// The error type is the WIT's, with the server's error record inline.
#![allow(clippy::result_large_err)]

mod client;
mod host;
mod types;

pub use client::{PgConnection, Pools};
