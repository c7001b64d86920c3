//! Forward-only schema migrations, by version, embedded in the components.
//!
//! Nothing runs them by hand: the first statement a request sends to the
//! database is preceded by a check of the database's version (one indexed
//! read of `schema_migrations`), and a database behind this code is brought
//! up to date before the request goes on ([`super::sql::SqlStore`]), so a
//! migration that only adds an index is applied as surely as one that adds
//! a table. Concurrent first requests serialise on a lock (a PostgreSQL
//! transaction-scoped advisory lock, SQLite's write lock); each migration
//! runs in a transaction with its version row, so a database is never left
//! half-migrated.

use super::sql::{Dialect, SqlDb, SqlError, SqlValue};
use crate::clock;

/// A numbered migration: its statements, per dialect.
struct Migration {
    version: i64,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        postgres: include_str!("../../../../migrations/postgres/0001_init.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        postgres: include_str!("../../../../migrations/postgres/0002_audit_by_event.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0002_audit_by_event.sql"),
    },
    Migration {
        version: 3,
        postgres: include_str!("../../../../migrations/postgres/0003_credential_version.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0003_credential_version.sql"),
    },
    Migration {
        version: 4,
        postgres: include_str!("../../../../migrations/postgres/0004_email.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0004_email.sql"),
    },
    Migration {
        version: 5,
        postgres: include_str!("../../../../migrations/postgres/0005_mfa.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0005_mfa.sql"),
    },
    Migration {
        version: 6,
        postgres: include_str!("../../../../migrations/postgres/0006_admin.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0006_admin.sql"),
    },
    Migration {
        version: 7,
        postgres: include_str!("../../../../migrations/postgres/0007_delivered_mail.sql"),
        sqlite: include_str!("../../../../migrations/sqlite/0007_delivered_mail.sql"),
    },
];

/// The version a database must have for this code: the newest migration's.
pub fn current_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// The schema's version, as one row with one column (0 before any
/// migration); a database without `schema_migrations` fails as
/// [`SqlError::MissingSchema`].
pub const VERSION_QUERY: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/// The version a database has (0 for none); fails with
/// [`SqlError::MissingSchema`] on a database never migrated.
pub fn database_version(db: &dyn SqlDb) -> Result<i64, SqlError> {
    version_from(
        db.query(VERSION_QUERY, &[])?
            .first()
            .and_then(|row| row.0.first()),
    )
}

/// The version [`VERSION_QUERY`] gave: the first column of its first row,
/// or the column a query carrying it put there.
pub fn version_from(value: Option<&SqlValue>) -> Result<i64, SqlError> {
    match value {
        Some(SqlValue::Int(version)) => Ok(*version),
        other => Err(SqlError::Other(format!(
            "schema_migrations: expected a version, found {other:?}"
        ))),
    }
}

/// Key of the PostgreSQL advisory lock that serialises migrations.
const PG_LOCK_KEY: i64 = 0x5350_494e_4155_5448; // "SPINAUTH"

/// Splits a script into statements: each ends with `;` at the end of a
/// line. Comment lines are dropped.
pub fn statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').to_owned();
            statements.push(statement);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// Applies every migration the database lacks.
///
/// Each migration runs in its own transaction, which first takes the lock:
/// PostgreSQL's transaction-scoped advisory lock, or SQLite's write lock
/// (`BEGIN IMMEDIATE`). The lock ends with the transaction, so an instance
/// that is killed or stuck mid-way cannot keep it past its connection's
/// transaction: Spin pools connections between requests, and a session-level
/// lock would outlive the request that took it.
pub fn migrate(db: &dyn SqlDb) -> Result<(), SqlError> {
    for migration in MIGRATIONS {
        db.execute(db.dialect().begin(), &[])?;
        match apply_if_missing(db, migration) {
            Ok(()) => {
                db.execute("COMMIT", &[])?;
            }
            Err(error) => {
                let _ = db.execute("ROLLBACK", &[]);
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Inside a transaction: takes the lock, then applies `migration` unless
/// its version is recorded.
fn apply_if_missing(db: &dyn SqlDb, migration: &Migration) -> Result<(), SqlError> {
    if db.dialect() == Dialect::Postgres {
        db.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[SqlValue::Int(PG_LOCK_KEY)],
        )?;
    }
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        &[],
    )?;
    let applied = db.query(
        "SELECT version FROM schema_migrations WHERE version = $1",
        &[SqlValue::Int(migration.version)],
    )?;
    if applied.is_empty() {
        apply(db, db.dialect(), migration)?;
    }
    Ok(())
}

fn apply(db: &dyn SqlDb, dialect: Dialect, migration: &Migration) -> Result<(), SqlError> {
    let script = match dialect {
        Dialect::Postgres => migration.postgres,
        Dialect::Sqlite => migration.sqlite,
    };
    for statement in statements(script) {
        db.execute(&statement, &[])?;
    }
    db.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
        &[
            SqlValue::Int(migration.version),
            SqlValue::Int(clock::now()),
        ],
    )?;
    eprintln!("applied schema migration {}", migration.version);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_without_comments() {
        let script = "-- header\nCREATE TABLE a (\n  x INT\n);\n\nCREATE INDEX i ON a (x);\n";
        assert_eq!(
            statements(script),
            vec![
                "CREATE TABLE a (\n  x INT\n)".to_owned(),
                "CREATE INDEX i ON a (x)".to_owned()
            ]
        );
    }

    /// What a script creates: each table with its column names, and each
    /// index with its table and columns, in order.
    fn schema_of(script: &str) -> Vec<String> {
        statements(script)
            .iter()
            .filter_map(|statement| {
                // Byte order: what SQLite compares by anyway.
                let flat = statement
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace(" COLLATE \"C\"", "");
                if let Some(rest) = flat.strip_prefix("CREATE TABLE ") {
                    let (name, body) = rest.split_once(" (")?;
                    let columns: Vec<&str> = body
                        .split(',')
                        .filter_map(|part| part.split_whitespace().next())
                        .filter(|word| {
                            !matches!(*word, "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK")
                                && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                        .collect();
                    Some(format!("table {name} ({})", columns.join(", ")))
                } else if let Some(rest) = flat.strip_prefix("ALTER TABLE ") {
                    let (table, change) = rest.split_once(' ')?;
                    let column = change
                        .strip_prefix("ADD COLUMN ")?
                        .split_whitespace()
                        .next()?;
                    Some(format!("column {table}.{column}"))
                } else {
                    let rest = flat
                        .strip_prefix("CREATE UNIQUE INDEX ")
                        .or_else(|| flat.strip_prefix("CREATE INDEX "))?;
                    Some(format!("index {rest}"))
                }
            })
            .collect()
    }

    #[test]
    fn every_migration_makes_the_same_tables_columns_and_indexes_in_both_dialects() {
        for migration in MIGRATIONS {
            let postgres = schema_of(migration.postgres);
            assert_eq!(
                postgres,
                schema_of(migration.sqlite),
                "migration {}",
                migration.version
            );
            // One that creates nothing only changes data, the same way in
            // both dialects (so that the parse above cannot have missed it).
            let data_only = !["CREATE ", "ALTER ", "DROP "]
                .iter()
                .any(|word| migration.postgres.contains(word));
            assert!(
                !postgres.is_empty() || (data_only && migration.postgres == migration.sqlite),
                "migration {}",
                migration.version
            );
        }
        assert!(
            schema_of(MIGRATIONS[0].postgres)
                .contains(&"table users (id, email, password_hash, first_name, last_name, created_at, updated_at)".to_owned()),
            "{:?}",
            schema_of(MIGRATIONS[0].postgres)
        );
    }

    #[test]
    fn versions_increase_one_by_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
        }
        assert_eq!(current_version(), MIGRATIONS.len() as i64);
    }
}
