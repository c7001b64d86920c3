//! The WIT's `connection` resource on [`RequestState`].

use redis::Value;
use wasmtime::component::Resource;

use super::client::{RedisConnection, STATEFUL_COMMANDS};
use crate::outbound::RequestState;
use crate::outbound::fermyon::spin::redis::{
    Error, Host, HostConnection, Payload, RedisParameter, RedisResult,
};

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
