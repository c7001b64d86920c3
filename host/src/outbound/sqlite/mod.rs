//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` on rusqlite
//! (SQLite compiled in), with the database `default` in a file under the
//! app's state folder (`.spin/sqlite_db.db`), as `spin up` keeps it.
//!
//! Opening a connection is not free (SQLite reads the schema on first use),
//! so connections are kept and lent to one guest connection at a time. A
//! connection comes back with any transaction the guest left open rolled
//! back, so no request sees another's uncommitted state.
//!
//! `client.rs` keeps the connections and runs statements; `host.rs`
//! implements both WIT versions.

mod client;
mod host;

pub use client::{Databases, SqliteConnection};
