//! Connections to the `default` database, lent one guest at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept.
const MAX_IDLE: usize = 16;

/// The `default` database and its idle connections.
#[derive(Clone)]
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

    pub(super) fn open(&self) -> Result<SqliteConnection, String> {
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
pub(super) struct Rows {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<Vec<SqlValue>>,
}

impl SqliteConnection {
    /// Runs one statement on a blocking thread; every SQLite error is
    /// `io(message)`, as in Spin.
    pub(super) async fn execute(
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

    pub(super) fn changes(&self) -> u64 {
        self.connection.as_ref().map_or(0, |c| c.changes())
    }

    pub(super) fn last_insert_rowid(&self) -> i64 {
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
