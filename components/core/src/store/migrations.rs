//! Forward-only schema migrations, embedded in the components.
//!
//! Nothing runs them by hand and no request pays for checking them: a
//! query that fails because a table or column is missing makes the store
//! run the pending migrations and try the query once more
//! ([`super::sql::SqlStore`]). Concurrent first requests serialise on a
//! lock (a PostgreSQL advisory lock, SQLite's write lock); each migration
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

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    postgres: include_str!("../../../../migrations/postgres/0001_init.sql"),
    sqlite: include_str!("../../../../migrations/sqlite/0001_init.sql"),
}];

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
pub fn migrate(db: &dyn SqlDb) -> Result<(), SqlError> {
    let dialect = db.dialect();
    match dialect {
        Dialect::Postgres => {
            db.execute("SELECT pg_advisory_lock($1)", &[SqlValue::Int(PG_LOCK_KEY)])?;
        }
        // The write lock is taken by each migration's BEGIN IMMEDIATE.
        Dialect::Sqlite => {}
    }
    let result = apply_pending(db, dialect);
    if dialect == Dialect::Postgres {
        let _ = db.execute(
            "SELECT pg_advisory_unlock($1)",
            &[SqlValue::Int(PG_LOCK_KEY)],
        );
    }
    result
}

fn apply_pending(db: &dyn SqlDb, dialect: Dialect) -> Result<(), SqlError> {
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        &[],
    )?;
    for migration in MIGRATIONS {
        db.execute(dialect.begin(), &[])?;
        let applied = db.query(
            "SELECT version FROM schema_migrations WHERE version = $1",
            &[SqlValue::Int(migration.version)],
        );
        let outcome = match applied {
            Ok(rows) if !rows.is_empty() => Ok(()),
            Ok(_) => apply(db, dialect, migration),
            Err(error) => Err(error),
        };
        match outcome {
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

    #[test]
    fn every_migration_has_both_dialects_with_the_same_tables() {
        for migration in MIGRATIONS {
            let tables = |script: &str| -> Vec<String> {
                statements(script)
                    .iter()
                    .filter_map(|s| s.strip_prefix("CREATE TABLE "))
                    .map(|rest| {
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .collect()
            };
            assert_eq!(tables(migration.postgres), tables(migration.sqlite));
            assert!(!tables(migration.postgres).is_empty());
        }
    }
}
