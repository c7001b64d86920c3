//! Spin's embedded SQLite database `default`, through
//! `spin:sqlite/sqlite@3.0.0`.

use std::cell::OnceCell;

use spin_sdk::sqlite3::{self, Value};

use super::sql::{Dialect, Row, SqlDb, SqlError, SqlValue};

/// The `default` database, opened on first use and kept for the request.
pub struct SqliteDb {
    connection: OnceCell<sqlite3::Connection>,
}

impl Default for SqliteDb {
    fn default() -> Self {
        Self::new()
    }
}

impl SqliteDb {
    /// The database named `default`.
    pub fn new() -> Self {
        Self {
            connection: OnceCell::new(),
        }
    }

    fn connection(&self) -> Result<&sqlite3::Connection, SqlError> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection);
        }
        let connection = sqlite3::Connection::open_default()
            .map_err(|error| SqlError::Unavailable(format!("{error:?}")))?;
        Ok(self.connection.get_or_init(|| connection))
    }

    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<sqlite3::QueryResult, SqlError> {
        let params: Vec<Value> = params
            .iter()
            .map(|value| match value {
                SqlValue::Null => Value::Null,
                SqlValue::Int(n) => Value::Integer(*n),
                SqlValue::Text(text) => Value::Text(text.clone()),
            })
            .collect();
        self.connection()?
            .execute(&placeholders(sql), &params)
            .map_err(classify)
    }
}

/// `$1` becomes `?1`: SQLite would read `$1` as a named parameter.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn classify(error: sqlite3::Error) -> SqlError {
    match error {
        sqlite3::Error::Io(message) => {
            if message.starts_with("no such table") || message.starts_with("no such column") {
                SqlError::MissingSchema(message)
            } else if message.starts_with("UNIQUE constraint failed") {
                SqlError::UniqueViolation(message)
            } else if message.contains("database is locked") || message.contains("unable to open") {
                SqlError::Unavailable(message)
            } else {
                SqlError::Other(message)
            }
        }
        other => SqlError::Unavailable(format!("{other:?}")),
    }
}

impl SqlDb for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
        let result = self.run(sql, params)?;
        Ok(result
            .rows
            .into_iter()
            .map(|row| {
                Row(row
                    .values
                    .into_iter()
                    .map(|value| match value {
                        Value::Null => SqlValue::Null,
                        Value::Integer(n) => SqlValue::Int(n),
                        Value::Real(n) => SqlValue::Int(n as i64),
                        Value::Text(text) => SqlValue::Text(text),
                        Value::Blob(bytes) => {
                            SqlValue::Text(String::from_utf8_lossy(&bytes).into_owned())
                        }
                    })
                    .collect())
            })
            .collect())
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        self.run(sql, params)?;
        Ok(self.connection()?.changes())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_placeholders_become_sqlite_style() {
        assert_eq!(
            super::placeholders("SELECT $1, $12 WHERE a = '$' AND b = $2"),
            "SELECT ?1, ?12 WHERE a = '$' AND b = ?2"
        );
    }
}
