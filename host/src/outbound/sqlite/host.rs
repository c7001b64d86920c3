//! Both WIT versions' `connection` resource on [`RequestState`].

use rusqlite::types::Value as SqlValue;
use wasmtime::component::Resource;

use super::client::SqliteConnection;
use crate::outbound::RequestState;
use crate::outbound::fermyon::spin::sqlite as v2;
use crate::outbound::spin::sqlite::sqlite as v3;

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
