//! `fermyon:spin/redis@2.0.0` on the `redis` crate.
//!
//! Spin opens a new connection for every `open`. This host keeps idle
//! connections per address and lends one to each guest connection, which
//! saves a TCP handshake per request without letting two guests share a
//! connection: a guest that runs `MULTI`, `SELECT` or another command that
//! changes the connection's state gets a connection nobody else will use
//! after it, and a connection that failed is never lent again.
//!
//! As in Spin's `factor-outbound-redis`: `client.rs` holds the connections,
//! `host.rs` implements the WIT.

mod client;
mod host;

pub use client::{Clients, RedisConnection};
