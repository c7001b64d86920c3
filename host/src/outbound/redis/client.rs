//! Connections: idle ones by address, each lent to one guest at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::outbound::fermyon::spin::redis::Error;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per address.
const MAX_IDLE: usize = 32;

/// Commands after which a connection is not lent to another guest.
pub(super) const STATEFUL_COMMANDS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "AUTH",
    "HELLO",
    "CLIENT",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "RESET",
    "READONLY",
    "READWRITE",
    "ASKING",
];

/// Idle connections by address.
///
/// Hand-written rather than `deadpool-redis`: that pool checks every
/// connection it lends with an `UNWATCH` + `PING` round trip, which would
/// add a round trip to every request that opens Redis, while here a
/// connection that may carry state is never returned, so an idle one is
/// clean and lending it costs nothing.
#[derive(Default, Clone)]
pub struct Clients {
    idle: Arc<Mutex<HashMap<String, Vec<MultiplexedConnection>>>>,
}

impl Clients {
    pub(super) async fn connect(&self, address: &str) -> Result<MultiplexedConnection, Error> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(address)
            .and_then(Vec::pop);
        if let Some(connection) = reused {
            return Ok(connection);
        }
        // An address that is not a Redis URL is the guest's fault.
        let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| Error::Other(error.to_string()))
    }

    fn give_back(&self, address: String, connection: MultiplexedConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let connections = idle.entry(address).or_default();
        if connections.len() < MAX_IDLE {
            connections.push(connection);
        }
    }
}

/// A guest's connection, returned to the idle list when the guest drops it
/// (or the request ends), unless it may carry state.
pub struct RedisConnection {
    pub(super) address: String,
    pub(super) connection: MultiplexedConnection,
    pub(super) clients: Clients,
    pub(super) reusable: bool,
}

impl Drop for RedisConnection {
    fn drop(&mut self) {
        if self.reusable {
            self.clients
                .give_back(std::mem::take(&mut self.address), self.connection.clone());
        }
    }
}

impl RedisConnection {
    /// Runs `command`; a failure that is not the server's answer (an I/O
    /// error, a time-out) retires the connection.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &mut self,
        command: &redis::Cmd,
    ) -> Result<T, Error> {
        command
            .query_async(&mut self.connection)
            .await
            .map_err(|error| {
                if !matches!(error.kind(), redis::ErrorKind::Server(_)) {
                    self.reusable = false;
                }
                Error::Other(error.to_string())
            })
    }
}
