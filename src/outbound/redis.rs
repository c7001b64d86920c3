//! `fermyon:spin/redis@2.0.0` on the `redis` crate.
//!
//! Spin opens a new connection for every `open`. This host keeps idle
//! connections per address and lends one to each guest connection, which
//! saves a TCP handshake per request without letting two guests share a
//! connection: a guest that runs `MULTI`, `SELECT` or another command that
//! changes the connection's state gets a connection nobody else will use
//! after it, and a connection that failed is never lent again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use wasmtime::component::Resource;

use super::RequestState;
use super::fermyon::spin::redis::{
    Error, Host, HostConnection, Payload, RedisParameter, RedisResult,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per address.
const MAX_IDLE: usize = 32;

/// Commands after which a connection is not lent to another guest.
const STATEFUL_COMMANDS: &[&str] = &[
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
    async fn connect(&self, address: &str) -> Result<MultiplexedConnection, Error> {
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
    address: String,
    connection: MultiplexedConnection,
    clients: Clients,
    reusable: bool,
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
    async fn run<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Result<T, Error> {
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

impl Host for RequestState {}

impl HostConnection for RequestState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        let started = self.call_started();
        let result = self.open_redis(address).await;
        self.call_ended("redis.open", started);
        result
    }

    async fn publish(
        &mut self,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection
            .run::<i64>(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await
            .map(|_| ()))
    }

    async fn get(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Payload>, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.run(redis::cmd("GET").arg(key)).await)
    }

    async fn set(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        value: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.run(redis::cmd("SET").arg(key).arg(value)).await)
    }

    async fn incr(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.run(redis::cmd("INCRBY").arg(key).arg(1)).await)
    }

    async fn del(
        &mut self,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.run(redis::cmd("DEL").arg(keys)).await)
    }

    async fn sadd(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection
            .run(redis::cmd("SADD").arg(key).arg(values))
            .await)
    }

    async fn smembers(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection.run(redis::cmd("SMEMBERS").arg(key)).await)
    }

    async fn srem(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let connection = self.table.get_mut(&connection)?;
        Ok(connection
            .run(redis::cmd("SREM").arg(key).arg(values))
            .await)
    }

    async fn execute(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let started = self.call_started();
        let result = self.execute_redis(connection, command, arguments).await;
        self.call_ended("redis.execute", started);
        result
    }

    async fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl RequestState {
    async fn open_redis(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        // The guest's fault: Spin answers a refused address with
        // `invalid-address` and no message.
        if self
            .component
            .allowed_hosts
            .check_url(&address, "redis")
            .is_err()
        {
            return Ok(Err(Error::InvalidAddress));
        }
        let clients = self.outbound.redis.clone();
        let connection = match clients.connect(&address).await {
            Ok(connection) => connection,
            Err(error) => return Ok(Err(error)),
        };
        let resource = self.table.push(RedisConnection {
            address,
            connection,
            clients,
            reusable: true,
        })?;
        Ok(Ok(resource))
    }

    async fn execute_redis(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let connection = self.table.get_mut(&connection)?;
        if STATEFUL_COMMANDS.contains(&command.to_ascii_uppercase().as_str()) {
            connection.reusable = false;
        }
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(n) => cmd.arg(n),
                RedisParameter::Binary(bytes) => cmd.arg(bytes),
            };
        }
        let value: Value = match connection.run(&cmd).await {
            Ok(value) => value,
            Err(error) => return Ok(Err(error)),
        };
        let mut results = Vec::new();
        Ok(flatten(value, &mut results).map(|()| results))
    }
}

/// Flattens a reply into the WIT's list of results, as Spin does: nested
/// arrays and sets are spliced in order.
fn flatten(value: Value, out: &mut Vec<RedisResult>) -> Result<(), Error> {
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(n) => out.push(RedisResult::Int64(n)),
        Value::BulkString(bytes) => out.push(RedisResult::Binary(bytes)),
        Value::SimpleString(text) => out.push(RedisResult::Status(text)),
        Value::Okay => out.push(RedisResult::Status("OK".to_owned())),
        Value::Double(n) => out.push(RedisResult::Binary(n.to_string().into_bytes())),
        Value::Boolean(b) => out.push(RedisResult::Int64(i64::from(b))),
        Value::BigNumber(digits) => out.push(RedisResult::Binary(digits)),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        Value::ServerError(error) => return Err(Error::Other(error.to_string())),
        other => {
            return Err(Error::Other(format!(
                "Could not convert Redis response - TypeError: {other:?} is not supported"
            )));
        }
    }
    Ok(())
}
