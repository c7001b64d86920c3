//! `spin:postgres/postgres@4.0.0` on `tokio-postgres`, with a
//! `deadpool-postgres` pool per address shared by every request.
//!
//! Like Spin, the host connects without TLS only when the address says
//! `sslmode=disable`; this host has no TLS client, so any other mode is
//! refused with a message saying so, where Spin would try TLS.

// The error type is the WIT's, with the server's error record inline.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use tokio_postgres::{Row, Statement, config::SslMode};
use wasmtime::component::Resource;

use super::RequestState;
use super::spin::postgres::postgres::{
    Column, DbDataType, DbError, DbValue, Error, Host, HostConnection, Interval, ParameterValue,
    QueryError, RangeBoundKind, RowSet,
};

/// How long a request waits for a connection before the open fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per address; more requests than this wait for one.
const MAX_CONNECTIONS: usize = 64;

/// A `deadpool` pool per address, shared by every request, as in Spin.
///
/// A request borrows one connection for as long as its guest holds the
/// resource. Spin resets session state at every checkout (a round trip);
/// this host instead closes a connection whose guest may have changed its
/// session (see [`PgConnection::track`]), so an idle one is always clean and
/// lending it costs nothing: the pool only checks that it is still open.
/// Each connection keeps the statements prepared on it (deadpool's
/// statement cache).
#[derive(Default, Clone)]
pub struct Pools {
    pools: Arc<Mutex<HashMap<String, Pool>>>,
}

impl Pools {
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
            .max_size(MAX_CONNECTIONS)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Other(format!("cannot pool connections: {e}")))?;
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }

    async fn connect(&self, address: &str) -> Result<PgConnection, Error> {
        let pool = self.pool(address)?;
        // A failure here is the server's (or the network's).
        let client = pool.get().await.map_err(|error| match error {
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
                Error::ConnectionFailed("too many connections".to_owned())
            }
            PoolError::Timeout(_) => {
                Error::ConnectionFailed("timed out connecting to the server".to_owned())
            }
            PoolError::Backend(error) => Error::ConnectionFailed(error_text(&error)),
            other => Error::ConnectionFailed(other.to_string()),
        })?;
        Ok(PgConnection {
            client: Some(client),
            in_transaction: false,
            stateful: false,
        })
    }
}

/// A guest's connection: a client borrowed until the guest drops the
/// resource (or the request ends).
pub struct PgConnection {
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
    stateful: bool,
}

impl PgConnection {
    fn client(&mut self) -> wasmtime::Result<&mut deadpool_postgres::Object> {
        self.client
            .as_mut()
            .ok_or_else(|| wasmtime::Error::msg("the connection was released"))
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
            "SET" | "RESET" | "LISTEN" | "PREPARE" | "DECLARE" | "LOCK" | "DISCARD" => {
                self.stateful = true
            }
            "CREATE" if matches!(second, "TEMP" | "TEMPORARY") => self.stateful = true,
            _ => {}
        }
        let lower = statement.to_ascii_lowercase();
        if lower.contains("pg_advisory_lock") || lower.contains("set_config") {
            self.stateful = true;
        }
    }
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
async fn prepared(
    client: &deadpool_postgres::Object,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    client.prepare_cached(sql).await
}

/// Drops the prepared statement for `sql`, so its next use prepares it
/// again (the schema may have changed under it).
fn forget(client: &deadpool_postgres::Object, sql: &str) {
    client.statement_cache.remove(sql, &[]);
}

impl Host for RequestState {}

impl HostConnection for RequestState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let started = self.call_started();
        let result = self.open_pg(address).await;
        self.call_ended("pg.open", started);
        result
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let started = self.call_started();
        let result = self.query_pg(connection, statement, params).await;
        self.call_ended("pg.query", started);
        result
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let started = self.call_started();
        let result = self.execute_pg(connection, statement, params).await;
        self.call_ended("pg.execute", started);
        result
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl RequestState {
    /// Checks every host the address would connect to (a connection string
    /// may name several, in its URL or its `host` parameter), as Spin does.
    fn check_pg_address(&self, address: &str) -> Result<(), Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
        let ports = config.get_ports();
        for (index, host) in config.get_hosts().iter().enumerate() {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name,
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => {
                    return Err(Error::ConnectionFailed(
                        "Unix sockets are not supported on WebAssembly".to_owned(),
                    ));
                }
            };
            let name = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.clone()
            };
            let port = ports.get(index).or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            });
            let url = match port {
                Some(port) => format!("postgres://{name}:{port}"),
                None => format!("postgres://{name}"),
            };
            if let Err(destination) = self.component.allowed_hosts.check_url(&url, "postgres") {
                return Err(Error::ConnectionFailed(format!(
                    "address {destination} is not permitted"
                )));
            }
        }
        Ok(())
    }

    async fn open_pg(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        // The guest's fault when refused: the manifest does not list the
        // address. Spin's message names only scheme, host and port.
        if let Err(error) = self.check_pg_address(&address) {
            return Ok(Err(error));
        }
        // A failure here is the server's (or the network's): the guest
        // hears it as `connection-failed`.
        match self.outbound.pg.connect(&address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn query_pg(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let tracked = self.table.get_mut(&connection)?;
        tracked.track(&statement);
        let client = tracked.client()?;
        let params = match convert_params(params) {
            Ok(params) => params,
            Err(error) => return Ok(Err(error)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let sql = statement;
        let statement = match prepared(client, &sql).await {
            Ok(statement) => statement,
            Err(error) => return Ok(Err(query_failed(error))),
        };
        let rows = match client.query(&statement, &refs).await {
            Ok(rows) => rows,
            Err(error) => {
                // The schema may have changed under the prepared statement.
                forget(client, &sql);
                return Ok(Err(query_failed(error)));
            }
        };
        // Spin takes the column list from the first row, so a query that
        // returns no rows has no columns; a component must not rely on them.
        let columns = rows
            .first()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|column| Column {
                        name: column.name().to_owned(),
                        data_type: data_type(column.type_()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = match rows.iter().map(convert_row).collect::<Result<Vec<_>, _>>() {
            Ok(rows) => rows,
            Err(error) => return Ok(Err(error)),
        };
        Ok(Ok(RowSet { columns, rows }))
    }

    async fn execute_pg(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let tracked = self.table.get_mut(&connection)?;
        tracked.track(&statement);
        let client = tracked.client()?;
        // Spin reports a parameter it cannot convert as `bad-parameter` from
        // `query` but as `value-conversion-failed` from `execute`; so does
        // this host, so that a component sees the same error under both.
        let params = match convert_params(params) {
            Ok(params) => params,
            Err(Error::BadParameter(text)) => return Ok(Err(Error::ValueConversionFailed(text))),
            Err(error) => return Ok(Err(error)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let sql = statement;
        let statement = match prepared(client, &sql).await {
            Ok(statement) => statement,
            Err(error) => return Ok(Err(query_failed(error))),
        };
        let result = client.execute(&statement, &refs).await;
        if result.is_err() {
            forget(client, &sql);
        }
        Ok(result.map_err(query_failed))
    }
}

fn convert_params(params: Vec<ParameterValue>) -> Result<Vec<Param>, Error> {
    params.into_iter().map(Param::try_from).collect()
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

fn query_failed(error: tokio_postgres::Error) -> Error {
    if let Some(db) = error.as_db_error() {
        let mut extras = Vec::new();
        let mut extra = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                extras.push((name.to_owned(), value.to_owned()));
            }
        };
        extra("hint", db.hint());
        extra("schema", db.schema());
        extra("table", db.table());
        extra("column", db.column());
        extra("constraint", db.constraint());
        extra("datatype", db.datatype());
        return Error::QueryFailed(QueryError::DbError(DbError {
            as_text: db.to_string(),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras,
        }));
    }
    if error.is_closed() {
        return Error::ConnectionFailed(error.to_string());
    }
    let mut text = error.to_string();
    if let Some(source) = error.source() {
        text = format!("{text}: {source}");
    }
    Error::QueryFailed(QueryError::Text(text))
}

fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

fn convert_row(row: &Row) -> Result<Vec<DbValue>, Error> {
    (0..row.len())
        .map(|index| {
            let column = &row.columns()[index];
            convert_value(row, index, column.type_()).map_err(|error| {
                Error::QueryFailed(QueryError::Text(format!(
                    "column {:?} of type {}: {error}",
                    column.name(),
                    column.type_()
                )))
            })
        })
        .collect()
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn convert_value(row: &Row, index: usize, ty: &Type) -> Result<DbValue, BoxError> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a Row,
        index: usize,
        wrap: impl FnOnce(T) -> DbValue,
    ) -> Result<DbValue, BoxError> {
        Ok(row
            .try_get::<_, Option<T>>(index)?
            .map(wrap)
            .unwrap_or(DbValue::DbNull))
    }
    match *ty {
        Type::BOOL => get(row, index, DbValue::Boolean),
        Type::INT2 => get(row, index, DbValue::Int16),
        Type::INT4 => get(row, index, DbValue::Int32),
        Type::INT8 => get(row, index, DbValue::Int64),
        Type::FLOAT4 => get(row, index, DbValue::Floating32),
        Type::FLOAT8 => get(row, index, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, index, DbValue::Str),
        Type::BYTEA => get(row, index, DbValue::Binary),
        Type::DATE => get(row, index, |d: NaiveDate| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => get(row, index, |t: NaiveTime| DbValue::Time(time_tuple(t))),
        // Spin reads `timestamptz` as a `timestamp`, which fails: a component
        // must select such columns as text or epoch seconds, here as there.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, index, |dt: NaiveDateTime| {
            DbValue::Datetime(datetime_tuple(dt))
        }),
        Type::UUID => get(row, index, |u: uuid::Uuid| DbValue::Uuid(u.to_string())),
        Type::JSONB => get(row, index, |j: serde_json::Value| {
            DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())
        }),
        Type::NUMERIC => get(row, index, |d: rust_decimal::Decimal| {
            DbValue::Decimal(d.to_string())
        }),
        Type::INT4_RANGE => get(row, index, |r: PgRange<i32>| {
            DbValue::RangeInt32(r.bounds())
        }),
        Type::INT8_RANGE => get(row, index, |r: PgRange<i64>| {
            DbValue::RangeInt64(r.bounds())
        }),
        Type::NUM_RANGE => get(row, index, |r: PgRange<rust_decimal::Decimal>| {
            let (lower, upper) = r.bounds();
            let text = |b: Option<(rust_decimal::Decimal, RangeBoundKind)>| {
                b.map(|(value, kind)| (value.to_string(), kind))
            };
            DbValue::RangeDecimal((text(lower), text(upper)))
        }),
        Type::INT4_ARRAY => get(row, index, DbValue::ArrayInt32),
        Type::INT8_ARRAY => get(row, index, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get(row, index, |values: Vec<Option<rust_decimal::Decimal>>| {
            DbValue::ArrayDecimal(
                values
                    .into_iter()
                    .map(|v| v.map(|d| d.to_string()))
                    .collect(),
            )
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, index, DbValue::ArrayStr)
        }
        Type::INTERVAL => get(row, index, |i: PgInterval| DbValue::Interval(i.0)),
        _ => get(row, index, |raw: RawValue| DbValue::Unsupported(raw.0)),
    }
}

fn time_tuple(t: NaiveTime) -> (u8, u8, u8, u32) {
    (
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    )
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (h, m, s, ns) = time_tuple(dt.time());
    (dt.year(), dt.month() as u8, dt.day() as u8, h, m, s, ns)
}

/// A guest parameter, converted to a Rust value `tokio-postgres` can send.
#[derive(Debug)]
enum Param {
    Bool(bool),
    Char(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Timestamp(chrono::DateTime<chrono::Utc>),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    Decimal(rust_decimal::Decimal),
    RangeI32(PgRange<i32>),
    RangeI64(PgRange<i64>),
    RangeDecimal(PgRange<rust_decimal::Decimal>),
    ArrayI32(Vec<Option<i32>>),
    ArrayI64(Vec<Option<i64>>),
    ArrayDecimal(Vec<Option<rust_decimal::Decimal>>),
    ArrayStr(Vec<Option<String>>),
    Interval(PgInterval),
    Null,
}

impl TryFrom<ParameterValue> for Param {
    type Error = Error;

    /// A value that cannot be represented is the guest's fault: `bad-parameter`.
    fn try_from(value: ParameterValue) -> Result<Self, Error> {
        let bad = |what: &str| Error::BadParameter(what.to_owned());
        let decimal = |text: &str| {
            text.parse::<rust_decimal::Decimal>()
                .map_err(|e| Error::BadParameter(format!("invalid decimal {text:?}: {e}")))
        };
        Ok(match value {
            ParameterValue::Boolean(v) => Param::Bool(v),
            ParameterValue::Int8(v) => Param::Char(v),
            ParameterValue::Int16(v) => Param::I16(v),
            ParameterValue::Int32(v) => Param::I32(v),
            ParameterValue::Int64(v) => Param::I64(v),
            ParameterValue::Floating32(v) => Param::F32(v),
            ParameterValue::Floating64(v) => Param::F64(v),
            ParameterValue::Str(v) => Param::Str(v),
            ParameterValue::Binary(v) => Param::Bytes(v),
            ParameterValue::Date((y, m, d)) => Param::Date(
                NaiveDate::from_ymd_opt(y, m.into(), d.into())
                    .ok_or_else(|| bad("invalid date"))?,
            ),
            ParameterValue::Time((h, m, s, ns)) => Param::Time(
                NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid time"))?,
            ),
            ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
                let date = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                    .ok_or_else(|| bad("invalid datetime"))?;
                let time = NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid datetime"))?;
                Param::DateTime(NaiveDateTime::new(date, time))
            }
            ParameterValue::Timestamp(secs) => Param::Timestamp(
                chrono::DateTime::from_timestamp(secs, 0)
                    .ok_or_else(|| bad("invalid timestamp"))?,
            ),
            ParameterValue::Uuid(text) => Param::Uuid(
                text.parse()
                    .map_err(|e| Error::BadParameter(format!("invalid uuid {text:?}: {e}")))?,
            ),
            ParameterValue::Jsonb(bytes) => Param::Json(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::BadParameter(format!("invalid JSON: {e}")))?,
            ),
            ParameterValue::Decimal(text) => Param::Decimal(decimal(&text)?),
            ParameterValue::RangeInt32((lower, upper)) => Param::RangeI32(PgRange {
                lower,
                upper,
                empty: false,
            }),
            ParameterValue::RangeInt64((lower, upper)) => Param::RangeI64(PgRange {
                lower,
                upper,
                empty: false,
            }),
            ParameterValue::RangeDecimal((lower, upper)) => {
                let convert = |bound: Option<(String, RangeBoundKind)>| {
                    bound
                        .map(|(text, kind)| Ok((decimal(&text)?, kind)))
                        .transpose()
                };
                Param::RangeDecimal(PgRange {
                    lower: convert(lower)?,
                    upper: convert(upper)?,
                    empty: false,
                })
            }
            ParameterValue::ArrayInt32(v) => Param::ArrayI32(v),
            ParameterValue::ArrayInt64(v) => Param::ArrayI64(v),
            ParameterValue::ArrayDecimal(v) => Param::ArrayDecimal(
                v.iter()
                    .map(|item| item.as_deref().map(decimal).transpose())
                    .collect::<Result<_, _>>()?,
            ),
            ParameterValue::ArrayStr(v) => Param::ArrayStr(v),
            ParameterValue::Interval(v) => Param::Interval(PgInterval(v)),
            ParameterValue::DbNull => Param::Null,
        })
    }
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Bool(v) => v.to_sql_checked(ty, out),
            Param::Char(v) => v.to_sql_checked(ty, out),
            Param::I16(v) => v.to_sql_checked(ty, out),
            Param::I32(v) => v.to_sql_checked(ty, out),
            Param::I64(v) => v.to_sql_checked(ty, out),
            Param::F32(v) => v.to_sql_checked(ty, out),
            Param::F64(v) => v.to_sql_checked(ty, out),
            Param::Str(v) => v.to_sql_checked(ty, out),
            Param::Bytes(v) => v.to_sql_checked(ty, out),
            Param::Date(v) => v.to_sql_checked(ty, out),
            Param::Time(v) => v.to_sql_checked(ty, out),
            Param::DateTime(v) => v.to_sql_checked(ty, out),
            Param::Timestamp(v) => v.to_sql_checked(ty, out),
            Param::Uuid(v) => v.to_sql_checked(ty, out),
            Param::Json(v) => v.to_sql_checked(ty, out),
            Param::Decimal(v) => v.to_sql_checked(ty, out),
            Param::RangeI32(v) => v.to_sql_checked(ty, out),
            Param::RangeI64(v) => v.to_sql_checked(ty, out),
            Param::RangeDecimal(v) => v.to_sql_checked(ty, out),
            Param::ArrayI32(v) => v.to_sql_checked(ty, out),
            Param::ArrayI64(v) => v.to_sql_checked(ty, out),
            Param::ArrayDecimal(v) => v.to_sql_checked(ty, out),
            Param::ArrayStr(v) => v.to_sql_checked(ty, out),
            Param::Interval(v) => v.to_sql_checked(ty, out),
            Param::Null => Ok(IsNull::Yes),
        }
    }

    /// Each variant checks its own type in `to_sql`; NULL fits any column.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// PostgreSQL's `interval`: microseconds, days and months, in that order on
/// the wire.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("an interval is 16 bytes".into());
        }
        let (micros, rest) = raw.split_at(8);
        let (days, months) = rest.split_at(4);
        Ok(Self(Interval {
            micros: i64::from_be_bytes(micros.try_into()?),
            days: i32::from_be_bytes(days.try_into()?),
            months: i32::from_be_bytes(months.try_into()?),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

type Bound<T> = Option<(T, RangeBoundKind)>;

/// A PostgreSQL range in its binary form: a flags byte, then each present
/// bound as a length-prefixed value of the element type.
#[derive(Debug)]
struct PgRange<T> {
    lower: Bound<T>,
    upper: Bound<T>,
    empty: bool,
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LOWER_INCLUSIVE: u8 = 0x02;
const RANGE_UPPER_INCLUSIVE: u8 = 0x04;
const RANGE_LOWER_INFINITE: u8 = 0x08;
const RANGE_UPPER_INFINITE: u8 = 0x10;

impl<T: Clone> PgRange<T> {
    /// The bounds as the WIT shows them; an empty range has none.
    fn bounds(&self) -> (Bound<T>, Bound<T>) {
        if self.empty {
            return (None, None);
        }
        (self.lower.clone(), self.upper.clone())
    }
}

fn element_type(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Range(element) => Some(element),
        _ => None,
    }
}

impl<T: ToSql + std::fmt::Debug> ToSql for PgRange<T> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let element = element_type(ty).ok_or("not a range type")?;
        let mut flags = 0;
        if self.empty {
            flags |= RANGE_EMPTY;
        }
        for (bound, inclusive, infinite) in [
            (&self.lower, RANGE_LOWER_INCLUSIVE, RANGE_LOWER_INFINITE),
            (&self.upper, RANGE_UPPER_INCLUSIVE, RANGE_UPPER_INFINITE),
        ] {
            match bound {
                None => flags |= infinite,
                Some((_, RangeBoundKind::Inclusive)) => flags |= inclusive,
                Some((_, RangeBoundKind::Exclusive)) => {}
            }
        }
        out.put_u8(flags);
        for (value, _) in [&self.lower, &self.upper].into_iter().flatten() {
            let length_at = out.len();
            out.put_i32(0);
            let start = out.len();
            value.to_sql_checked(element, out)?;
            let length = i32::try_from(out.len() - start)?;
            out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        element_type(ty).is_some_and(T::accepts)
    }

    to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for PgRange<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let element = element_type(ty).ok_or("not a range type")?;
        let (&flags, mut rest) = raw.split_first().ok_or("empty range value")?;
        let mut read_bound = |present: bool, inclusive: bool| -> Result<Bound<T>, BoxError> {
            if !present {
                return Ok(None);
            }
            let length_bytes: [u8; 4] = rest.get(..4).ok_or("truncated range")?.try_into()?;
            let length = usize::try_from(i32::from_be_bytes(length_bytes))?;
            let value = rest.get(4..4 + length).ok_or("truncated range")?;
            rest = &rest[4 + length..];
            let kind = if inclusive {
                RangeBoundKind::Inclusive
            } else {
                RangeBoundKind::Exclusive
            };
            Ok(Some((T::from_sql(element, value)?, kind)))
        };
        let empty = flags & RANGE_EMPTY != 0;
        let lower = read_bound(
            !empty && flags & RANGE_LOWER_INFINITE == 0,
            flags & RANGE_LOWER_INCLUSIVE != 0,
        )?;
        let upper = read_bound(
            !empty && flags & RANGE_UPPER_INFINITE == 0,
            flags & RANGE_UPPER_INCLUSIVE != 0,
        )?;
        Ok(Self {
            lower,
            upper,
            empty,
        })
    }

    fn accepts(ty: &Type) -> bool {
        element_type(ty).is_some_and(T::accepts)
    }
}

/// The raw bytes of a column whose type has no WIT variant.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
