//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` on rusqlite
//! (SQLite compiled in), with the database `default` in a file under the
//! app's state folder (`.spin/sqlite_db.db`), as `spin up` keeps it.
//!
//! Opening a connection is not free (SQLite reads the schema on first use),
//! so connections are kept and lent to one guest connection at a time. A
//! connection comes back with any transaction the guest left open rolled
//! back, so no request sees another's uncommitted state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use super::RequestState;
use super::fermyon::spin::sqlite as v2;
use super::spin::sqlite::sqlite as v3;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept.
const MAX_IDLE: usize = 16;

/// The `default` database and its idle connections.
pub struct Databases {
    path: PathBuf,
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

impl Databases {
    /// `default` lives at `path`; the folder is created on first use.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::default(),
        }
    }

    /// Where `default` is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<SqliteConnection, String> {
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match reused {
            Some(connection) => connection,
            None => {
                if let Some(parent) = self.path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                let connection =
                    rusqlite::Connection::open(&self.path).map_err(|e| e.to_string())?;
                connection
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                connection
            }
        };
        Ok(SqliteConnection {
            connection: Some(connection),
            idle: self.idle.clone(),
        })
    }
}

/// A guest's connection.
pub struct SqliteConnection {
    connection: Option<rusqlite::Connection>,
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }
}

/// A result in neither interface's types, so both can share the code.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

impl SqliteConnection {
    /// Runs one statement on a blocking thread; every SQLite error is
    /// `io(message)`, as in Spin.
    async fn execute(
        &mut self,
        statement: String,
        parameters: Vec<SqlValue>,
    ) -> Result<Rows, String> {
        let connection = self.connection.take().ok_or("the connection is busy")?;
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = run_statement(&connection, &statement, parameters);
            (connection, result)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.connection = Some(connection);
        result.map_err(|e| e.to_string())
    }

    fn changes(&self) -> u64 {
        self.connection.as_ref().map_or(0, |c| c.changes())
    }

    fn last_insert_rowid(&self) -> i64 {
        self.connection
            .as_ref()
            .map_or(0, |c| c.last_insert_rowid())
    }
}

fn run_statement(
    connection: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<SqlValue>,
) -> rusqlite::Result<Rows> {
    let mut prepared = connection.prepare_cached(statement)?;
    let columns: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut result = prepared.query(rusqlite::params_from_iter(parameters))?;
    let mut rows = Vec::new();
    while let Some(row) = result.next()? {
        let values = (0..columns.len())
            .map(|index| {
                Ok(match row.get_ref(index)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(n) => SqlValue::Integer(n),
                    ValueRef::Real(n) => SqlValue::Real(n),
                    ValueRef::Text(bytes) => {
                        SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                    ValueRef::Blob(bytes) => SqlValue::Blob(bytes.to_vec()),
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

impl RequestState {
    /// Spin checks the component's `sqlite_databases` first, then whether
    /// the database exists.
    fn open_sqlite(&mut self, database: &str) -> Result<SqliteConnection, OpenError> {
        if !self.component.sqlite_databases.contains(database) {
            return Err(OpenError::AccessDenied);
        }
        if database != "default" {
            return Err(OpenError::NoSuchDatabase);
        }
        self.outbound.sqlite.open().map_err(OpenError::Io)
    }
}

enum OpenError {
    AccessDenied,
    NoSuchDatabase,
    Io(String),
}

/// Implements one version of the interface; v2 and v3 have the same shapes
/// in different modules.
macro_rules! sqlite_interface {
    ($module:ident) => {
        impl From<OpenError> for $module::Error {
            fn from(error: OpenError) -> Self {
                match error {
                    OpenError::AccessDenied => Self::AccessDenied,
                    OpenError::NoSuchDatabase => Self::NoSuchDatabase,
                    OpenError::Io(message) => Self::Io(message),
                }
            }
        }

        impl From<$module::Value> for SqlValue {
            fn from(value: $module::Value) -> Self {
                match value {
                    $module::Value::Integer(n) => SqlValue::Integer(n),
                    $module::Value::Real(n) => SqlValue::Real(n),
                    $module::Value::Text(text) => SqlValue::Text(text),
                    $module::Value::Blob(bytes) => SqlValue::Blob(bytes),
                    $module::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<SqlValue> for $module::Value {
            fn from(value: SqlValue) -> Self {
                match value {
                    SqlValue::Integer(n) => Self::Integer(n),
                    SqlValue::Real(n) => Self::Real(n),
                    SqlValue::Text(text) => Self::Text(text),
                    SqlValue::Blob(bytes) => Self::Blob(bytes),
                    SqlValue::Null => Self::Null,
                }
            }
        }

        impl $module::Host for RequestState {}

        impl $module::HostConnection for RequestState {
            async fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<SqliteConnection>, $module::Error>> {
                match self.open_sqlite(&database) {
                    Ok(connection) => Ok(Ok(self.table.push(connection)?)),
                    Err(error) => Ok(Err(error.into())),
                }
            }

            async fn execute(
                &mut self,
                connection: Resource<SqliteConnection>,
                statement: String,
                parameters: Vec<$module::Value>,
            ) -> wasmtime::Result<Result<$module::QueryResult, $module::Error>> {
                let started = self.call_started();
                let connection = self.table.get_mut(&connection)?;
                let parameters = parameters.into_iter().map(SqlValue::from).collect();
                let result = connection.execute(statement, parameters).await;
                self.call_ended("sqlite.execute", started);
                Ok(match result {
                    Ok(rows) => Ok($module::QueryResult {
                        columns: rows.columns,
                        rows: rows
                            .rows
                            .into_iter()
                            .map(|values| $module::RowResult {
                                values: values.into_iter().map(Into::into).collect(),
                            })
                            .collect(),
                    }),
                    Err(message) => Err($module::Error::Io(message)),
                })
            }

            sqlite_interface!(@extra $module);

            async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
                self.table.delete(connection)?;
                Ok(())
            }
        }
    };
    (@extra v2) => {};
    (@extra v3) => {
        async fn last_insert_rowid(
            &mut self,
            connection: Resource<SqliteConnection>,
        ) -> wasmtime::Result<i64> {
            Ok(self.table.get(&connection)?.last_insert_rowid())
        }

        async fn changes(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<u64> {
            Ok(self.table.get(&connection)?.changes())
        }
    };
}

sqlite_interface!(v2);
sqlite_interface!(v3);
