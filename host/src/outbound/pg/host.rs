//! The WIT's `connection` resource on [`RequestState`].

use std::error::Error as _;

use tokio_postgres::types::ToSql;
use wasmtime::component::Resource;

use super::client::{PgConnection, forget, prepared};
use super::types::{Param, convert_row, data_type};
use crate::outbound::RequestState;
use crate::outbound::spin::postgres::postgres::{
    Column, DbError, Error, Host, HostConnection, ParameterValue, QueryError, RowSet,
};

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
        let params = match convert_params(params) {
            Ok(params) => params,
            Err(error) => return Ok(Err(error)),
        };
        let tracked = self.table.get_mut(&connection)?;
        let result = query_on(tracked, &statement, &params).await;
        tracked.statement_done();
        Ok(result)
    }

    async fn execute_pg(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        // Spin reports a parameter it cannot convert as `bad-parameter` from
        // `query` but as `value-conversion-failed` from `execute`; so does
        // this host, so that a component sees the same error under both.
        let params = match convert_params(params) {
            Ok(params) => params,
            Err(Error::BadParameter(text)) => return Ok(Err(Error::ValueConversionFailed(text))),
            Err(error) => return Ok(Err(error)),
        };
        let tracked = self.table.get_mut(&connection)?;
        let result = execute_on(tracked, &statement, &params).await;
        tracked.statement_done();
        Ok(result)
    }
}

async fn query_on(
    connection: &mut PgConnection,
    sql: &str,
    params: &[Param],
) -> Result<RowSet, Error> {
    let client = connection.client(sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
    let statement = prepared(client, sql).await.map_err(query_failed)?;
    let rows = match client.query(&statement, &refs).await {
        Ok(rows) => rows,
        Err(error) => {
            // The schema may have changed under the prepared statement.
            forget(client, sql);
            return Err(query_failed(error));
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
    let rows = rows
        .iter()
        .map(convert_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RowSet { columns, rows })
}

async fn execute_on(
    connection: &mut PgConnection,
    sql: &str,
    params: &[Param],
) -> Result<u64, Error> {
    let client = connection.client(sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
    let statement = prepared(client, sql).await.map_err(query_failed)?;
    let result = client.execute(&statement, &refs).await;
    if result.is_err() {
        forget(client, sql);
    }
    result.map_err(query_failed)
}

fn convert_params(params: Vec<ParameterValue>) -> Result<Vec<Param>, Error> {
    params.into_iter().map(Param::try_from).collect()
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
