//! PostgreSQL through Spin's `spin:postgres/postgres@4.0.0`.

use std::cell::OnceCell;

use spin_sdk::pg4::{self, DbValue, ParameterValue, PgError, QueryError};

use super::sql::{Dialect, Row, SqlDb, SqlError, SqlValue};

/// SQLSTATEs that mean the schema is behind: undefined table, column.
const MISSING_SCHEMA: &[&str] = &["42P01", "42703"];
/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a foreign key violation; the schema's keys to `users` are
/// all `<table>_user_id_fkey`.
const FOREIGN_KEY_VIOLATION: &str = "23503";
/// SQLSTATEs that mean the server is going away or full: connection
/// exceptions (class 08), shutdown (57P01-57P03), too many connections.
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// A connection to `url`, opened on first use and kept for the request.
pub struct PgDb {
    url: String,
    connection: OnceCell<pg4::Connection>,
}

impl PgDb {
    /// A database at `url` (`postgres://...`).
    pub fn new(url: String) -> Self {
        Self {
            url,
            connection: OnceCell::new(),
        }
    }

    fn connection(&self) -> Result<&pg4::Connection, SqlError> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection);
        }
        let connection = pg4::Connection::open(&self.url).map_err(classify)?;
        Ok(self.connection.get_or_init(|| connection))
    }
}

fn parameter(value: &SqlValue) -> ParameterValue {
    match value {
        SqlValue::Null => ParameterValue::DbNull,
        SqlValue::Int(n) => ParameterValue::Int64(*n),
        SqlValue::Text(text) => ParameterValue::Str(text.clone()),
    }
}

fn column(value: &DbValue) -> Result<SqlValue, SqlError> {
    Ok(match value {
        DbValue::DbNull => SqlValue::Null,
        DbValue::Int64(n) => SqlValue::Int(*n),
        DbValue::Int32(n) => SqlValue::Int(i64::from(*n)),
        DbValue::Int16(n) => SqlValue::Int(i64::from(*n)),
        DbValue::Boolean(b) => SqlValue::Int(i64::from(*b)),
        DbValue::Str(text) => SqlValue::Text(text.clone()),
        other => {
            return Err(SqlError::Other(format!(
                "unexpected column value {other:?}"
            )));
        }
    })
}

fn classify(error: PgError) -> SqlError {
    match error {
        // Spin's words for an address allowed_outbound_hosts does not list.
        PgError::ConnectionFailed(cause) if cause.contains("is not permitted") => SqlError::Refused,
        PgError::ConnectionFailed(cause) => {
            SqlError::Unavailable(super::redact_credentials(&cause))
        }
        PgError::QueryFailed(QueryError::DbError(db)) => {
            if MISSING_SCHEMA.contains(&db.code.as_str()) {
                SqlError::MissingSchema(db.message)
            } else if db.code == UNIQUE_VIOLATION {
                SqlError::UniqueViolation(db.message)
            } else if db.code == FOREIGN_KEY_VIOLATION && db.message.contains("_user_id_fkey") {
                SqlError::UserGone(db.message)
            } else if is_unavailable(&db.code) {
                SqlError::Unavailable(db.message)
            } else {
                SqlError::Other(format!("{} ({}): {}", db.severity, db.code, db.message))
            }
        }
        PgError::QueryFailed(QueryError::Text(text)) => {
            let lower = text.to_ascii_lowercase();
            if lower.contains("connection")
                || lower.contains("closed")
                || lower.contains("timed out")
            {
                SqlError::Unavailable(text)
            } else {
                SqlError::Other(text)
            }
        }
        other => SqlError::Other(format!("{other:?}")),
    }
}

/// `sql` rewritten to return at least one row, each led by the schema's
/// version (when `versioned`) and its row number, and a single row whose
/// number is NULL when `sql` matched nothing.
///
/// Spin 4.0.0 to 4.0.2 never return from a synchronous `query` that matches
/// no rows (spinframework/spin#3671, fixed by #3673 after 4.0.2): the
/// instance hangs, and with it any lock its transaction holds. Wrapping
/// every query this way works on those versions and on fixed ones alike,
/// for any statement a CTE may hold (`SELECT .. FOR UPDATE`, `INSERT ..
/// RETURNING`), and keeps the statement's own order.
///
/// `writes`, when there are any, are data-modifying CTEs (see
/// [`SqlDb::query_writing`]): PostgreSQL takes those only at the top
/// level, so they go before `spin_auth_rows` rather than inside it.
fn never_empty(writes: Option<&str>, sql: &str, versioned: bool) -> String {
    let version = if versioned {
        format!(
            "({}) AS spin_auth_schema, ",
            super::migrations::VERSION_QUERY
        )
    } else {
        String::new()
    };
    let writes = writes.map_or(String::new(), |writes| format!("{writes}, "));
    format!(
        "WITH {writes}spin_auth_rows AS ({sql}) \
         SELECT {version}numbered.* FROM (SELECT 1) AS spin_auth_one \
         LEFT JOIN (SELECT row_number() OVER () AS spin_auth_row, spin_auth_rows.* FROM spin_auth_rows) AS numbered \
         ON true ORDER BY numbered.spin_auth_row"
    )
}

impl PgDb {
    /// Runs `sql` wrapped by [`never_empty`]: the schema's version if
    /// asked for, and the rows.
    fn wrapped(
        &self,
        writes: Option<&str>,
        sql: &str,
        params: &[SqlValue],
        versioned: bool,
    ) -> Result<(Option<SqlValue>, Vec<Row>), SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(parameter).collect();
        let result = self
            .connection()?
            .query(&never_empty(writes, sql, versioned), &params)
            .map_err(classify)?;
        let lead = usize::from(versioned);
        let version = match result.rows.first().and_then(|row| row.first()) {
            Some(value) if versioned => Some(column(value)?),
            _ => None,
        };
        let rows = result
            .rows
            .iter()
            // The filler row of an empty result has no row number.
            .filter(|row| !matches!(row.get(lead), Some(DbValue::DbNull) | None))
            .map(|row| {
                row.iter()
                    .skip(lead + 1)
                    .map(column)
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect::<Result<_, _>>()?;
        Ok((version, rows))
    }

    /// [`PgDb::wrapped`] with the schema's version.
    fn versioned(
        &self,
        writes: Option<&str>,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(i64, Vec<Row>), SqlError> {
        let (version, rows) = self.wrapped(writes, sql, params, true)?;
        Ok((super::migrations::version_from(version.as_ref())?, rows))
    }
}

impl SqlDb for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
        Ok(self.wrapped(None, sql, params, false)?.1)
    }

    fn query_versioned(&self, sql: &str, params: &[SqlValue]) -> Result<(i64, Vec<Row>), SqlError> {
        self.versioned(None, sql, params)
    }

    fn query_writing(
        &self,
        writes: &str,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(i64, Vec<Row>), SqlError> {
        self.versioned(Some(writes), sql, params)
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        let params: Vec<ParameterValue> = params.iter().map(parameter).collect();
        self.connection()?.execute(sql, &params).map_err(classify)
    }
}
