//! Connections: a pool per address, lent to one guest connection at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::managed::QueueMode;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{Statement, config::SslMode};

use crate::outbound::spin::postgres::postgres::Error;

/// How long a request waits for a connection before the open fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A `deadpool` pool per address, shared by every request (of a worker
/// thread: each has its own), as in Spin.
///
/// A guest's connection holds a pooled connection only while it needs one:
/// from the open to the end of its first statement, and then for each
/// statement, or for as long as a transaction or session state lasts (see
/// `PgConnection::track`). A request that computes between statements
/// (a login's password hash) holds none meanwhile, so a small pool serves
/// many requests. Spin resets session state at every checkout (a round
/// trip); this host instead closes a connection whose guest may have
/// changed its session, so an idle one is always clean and lending it
/// costs nothing: the pool only checks that it is still open. The most
/// recently returned connection is lent first, so the busy few stay warm.
/// Each connection keeps the statements prepared on it (deadpool's
/// statement cache).
#[derive(Clone)]
pub struct Pools {
    pools: Arc<Mutex<HashMap<String, Pool>>>,
    size: usize,
}

impl Pools {
    /// Pools of at most `size` connections each (at least one).
    pub fn new(size: usize) -> Self {
        Self {
            pools: Arc::default(),
            size: size.max(1),
        }
    }

    fn pool(&self, address: &str) -> Result<Pool, Error> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let mut config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
        if config.get_ssl_mode() != SslMode::Disable {
            // The guest's fault: the address asks for TLS, which this host
            // cannot provide.
            return Err(Error::ConnectionFailed(
                "this host connects without TLS only: add `sslmode=disable` to the address"
                    .to_owned(),
            ));
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.size)
            .queue_mode(QueueMode::Lifo)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Other(format!("cannot pool connections: {e}")))?;
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }

    pub(super) async fn connect(&self, address: &str) -> Result<PgConnection, Error> {
        let pool = self.pool(address)?;
        let client = checkout(&pool).await?;
        Ok(PgConnection {
            pool,
            client: Some(client),
            in_transaction: false,
            stateful: false,
        })
    }
}

/// A connection from `pool`; a failure here is the server's (or the
/// network's), or the pool stayed busy.
async fn checkout(pool: &Pool) -> Result<deadpool_postgres::Object, Error> {
    pool.get().await.map_err(|error| match error {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            Error::ConnectionFailed("too many connections".to_owned())
        }
        PoolError::Timeout(_) => {
            Error::ConnectionFailed("timed out connecting to the server".to_owned())
        }
        PoolError::Backend(error) => Error::ConnectionFailed(error_text(&error)),
        other => Error::ConnectionFailed(other.to_string()),
    })
}

/// A guest's connection: a pooled client while a statement, a transaction
/// or session state needs one (see [`Pools`]).
pub struct PgConnection {
    pool: Pool,
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
    stateful: bool,
}

impl PgConnection {
    /// The client to run `statement` on: the one held, or one from the
    /// pool; notes first what the statement does to the session.
    pub(super) async fn client(
        &mut self,
        statement: &str,
    ) -> Result<&mut deadpool_postgres::Object, Error> {
        self.track(statement);
        let client = match self.client.take() {
            Some(client) => client,
            None => checkout(&self.pool).await?,
        };
        Ok(self.client.insert(client))
    }

    /// After a statement: the client goes back to the pool unless the
    /// session it carries (an open transaction, settings, locks) is needed
    /// by the next statement.
    pub(super) fn statement_done(&mut self) {
        if !self.in_transaction && !self.stateful {
            self.client = None;
        }
    }

    /// Notes what a statement does to the session: a transaction left open,
    /// or session state (settings, prepared statements, temporary tables,
    /// locks, listeners) that must not reach another request.
    fn track(&mut self, statement: &str) {
        let words: Vec<String> = statement
            .split_whitespace()
            .take(2)
            .map(str::to_ascii_uppercase)
            .collect();
        let first = words.first().map(String::as_str).unwrap_or_default();
        let second = words.get(1).map(String::as_str).unwrap_or_default();
        match first {
            "BEGIN" | "START" => self.in_transaction = true,
            "COMMIT" | "END" | "ROLLBACK" | "ABORT" => self.in_transaction = false,
            // `SET LOCAL` ends with the transaction.
            "SET" if second == "LOCAL" => {}
            "SET" | "RESET" | "LISTEN" | "PREPARE" | "DECLARE" | "LOCK" | "DISCARD" => {
                self.stateful = true
            }
            "CREATE" if matches!(second, "TEMP" | "TEMPORARY") => self.stateful = true,
            _ => {}
        }
        let lower = statement.to_ascii_lowercase();
        if lower.contains("pg_advisory_lock") || sets_session_config(&lower) {
            self.stateful = true;
        }
    }
}

/// Whether `statement` (lower case) calls `set_config` other than for its
/// own transaction: a call whose third argument is the literal `true` is
/// undone at commit, so it leaves the session as it was (the service sets
/// `synchronous_commit` this way on its audit writes, and closing the
/// connection after each would cost a new server process per request).
fn sets_session_config(statement: &str) -> bool {
    statement.match_indices("set_config(").any(|(at, call)| {
        let arguments = &statement[at + call.len()..];
        // The arguments up to the closing parenthesis, split at the commas
        // outside quotes and nested parentheses.
        let mut depth = 0;
        let mut quoted = false;
        let mut last = String::new();
        for c in arguments.chars() {
            match c {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted && depth == 0 => return last.trim() != "true",
                ')' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    last.clear();
                    continue;
                }
                _ => {}
            }
            last.push(c);
        }
        true
    })
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // A connection that may carry session state is taken out of the
        // pool and dropped, which closes it (the server rolls back and
        // forgets the session), instead of being lent again; any other goes
        // back to the pool when `client` drops.
        if self.in_transaction || self.stateful {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The prepared statement for `sql` on `client`, prepared on first use.
pub(super) async fn prepared(
    client: &deadpool_postgres::Object,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    client.prepare_cached(sql).await
}

/// Drops the prepared statement for `sql`, so its next use prepares it
/// again (the schema may have changed under it).
pub(super) fn forget(client: &deadpool_postgres::Object, sql: &str) {
    client.statement_cache.remove(sql, &[]);
}

/// The error and its causes, on one line.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::sets_session_config;

    #[test]
    fn only_a_transaction_local_set_config_leaves_the_session_alone() {
        for local in [
            "with relaxed as (select set_config('synchronous_commit', 'off', true)) insert into t select 1 from relaxed",
            "select set_config('a.b', concat('x', ','), true)",
            "select 1",
        ] {
            assert!(!sets_session_config(local), "{local}");
        }
        for session in [
            "select set_config('application_name', 'x', false)",
            "select set_config('a', 'b', $1)",
            "select set_config('a', 'b', true), set_config('c', 'd', false)",
            "select set_config('a', 'b'",
        ] {
            assert!(sets_session_config(session), "{session}");
        }
    }
}
