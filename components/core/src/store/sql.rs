//! The stores over a SQL database, written once for PostgreSQL and SQLite.
//!
//! Statements use `$1`-style placeholders, integers for times and flags and
//! text for ids, which both databases read the same way; the SQLite driver
//! rewrites placeholders to `?1`. Where the dialects differ (how a
//! transaction takes its lock), [`Dialect`] says which form to use.
//!
//! This file is the engine (values, rows, errors, transactions, the schema
//! check); the stores are in `sql_users` (users, audit) and `sql_sessions`
//! (sessions, refresh tokens, counters).

use std::cell::Cell;

use crate::store::{Store, StoreError, StoreResult, migrations};

/// PostgreSQL's CTE `relaxed`: a statement that reads it (`FROM relaxed`)
/// commits without waiting for the write-ahead log to reach the disk.
macro_rules! relaxed_cte {
    () => {
        "relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"
    };
}
/// [`relaxed_cte!`] as a CTE among others (see [`SqlStore::read_writing`]).
pub(crate) const RELAXED_CTE: &str = relaxed_cte!();

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// Starts a transaction that will write. SQLite takes the write lock at
    /// once, so two such transactions never deadlock upgrading a read lock.
    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// A statement's head and `FROM` clause that make its commit not wait
    /// for the write-ahead log to reach the disk, at no extra round trip:
    /// the head `WITH relaxed AS (...)` sets `synchronous_commit = off` for
    /// the statement's own transaction, and ` FROM relaxed` makes the
    /// statement read it. For writes whose loss in a crash is acceptable
    /// (see [`crate::store::AuditLog`]); SQLite has no such setting per
    /// transaction, so there both are empty.
    pub fn relaxed_commit(self) -> (&'static str, &'static str) {
        match self {
            Dialect::Postgres => (concat!("WITH ", relaxed_cte!(), " "), " FROM relaxed"),
            Dialect::Sqlite => ("", ""),
        }
    }

    /// Suffix of a `SELECT` that locks the rows it reads until commit.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            // BEGIN IMMEDIATE already holds the database's write lock.
            Dialect::Sqlite => "",
        }
    }

    /// Suffix of a `SELECT` that serialises writers on the rows it reads
    /// without holding up inserts that merely refer to them (a foreign
    /// key's check takes a lock that `FOR UPDATE` would block).
    pub fn for_no_key_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR NO KEY UPDATE",
            Dialect::Sqlite => "",
        }
    }
}

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer (`BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(text: &str) -> Self {
        SqlValue::Text(text.to_owned())
    }
}

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        SqlValue::Int(n)
    }
}

impl From<Option<&str>> for SqlValue {
    fn from(text: Option<&str>) -> Self {
        text.map_or(SqlValue::Null, SqlValue::from)
    }
}

/// A result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    /// Text column `index`; a type mismatch is a bug, reported as one.
    pub fn text(&self, index: usize) -> anyhow::Result<String> {
        match self.0.get(index) {
            Some(SqlValue::Text(text)) => Ok(text.clone()),
            other => anyhow::bail!("column {index}: expected text, found {other:?}"),
        }
    }

    /// Nullable text column `index`.
    pub fn optional_text(&self, index: usize) -> anyhow::Result<Option<String>> {
        match self.0.get(index) {
            Some(SqlValue::Null) => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    /// Integer column `index`.
    pub fn int(&self, index: usize) -> anyhow::Result<i64> {
        match self.0.get(index) {
            Some(SqlValue::Int(n)) => Ok(*n),
            other => anyhow::bail!("column {index}: expected an integer, found {other:?}"),
        }
    }

    /// Nullable integer column `index`.
    pub fn optional_int(&self, index: usize) -> anyhow::Result<Option<i64>> {
        match self.0.get(index) {
            Some(SqlValue::Null) => Ok(None),
            _ => self.int(index).map(Some),
        }
    }
}

/// How a statement failed, as far as the store needs to know.
#[derive(Debug)]
pub enum SqlError {
    /// The server is unreachable.
    Unavailable(String),
    /// The host's `allowed_outbound_hosts` does not list the server.
    Refused,
    /// A table or column does not exist: the schema is behind.
    MissingSchema(String),
    /// A unique constraint refused the row.
    UniqueViolation(String),
    /// A foreign key to `users` refused the row: the user is gone
    /// (PostgreSQL, whose error names the key; SQLite's does not, so the
    /// SQLite paths that race a deletion check the user themselves).
    UserGone(String),
    /// Anything else.
    Other(String),
}

/// One database connection, opened on first use.
pub trait SqlDb {
    /// The dialect.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows.
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError>;
    /// Runs a statement; returns the rows it changed.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError>;
    /// Runs a statement that returns rows, and reads the schema's version
    /// alongside: in the same round trip where the database allows it.
    fn query_versioned(&self, sql: &str, params: &[SqlValue]) -> Result<(i64, Vec<Row>), SqlError> {
        let rows = self.query(migrations::VERSION_QUERY, &[])?;
        let version = migrations::version_from(rows.first().and_then(|row| row.0.first()))?;
        Ok((version, self.query(sql, params)?))
    }
    /// Runs the `SELECT` `sql` in one statement with `writes`: CTEs,
    /// comma-separated, among them some that change rows (`name AS
    /// (INSERT ...)`), which run whether or not `sql` reads them, and any
    /// they read (such as [`RELAXED_CTE`]); reads the schema's version
    /// alongside. Only PostgreSQL has data-modifying CTEs; elsewhere this
    /// is an error, and callers check [`SqlDb::dialect`] first.
    fn query_writing(
        &self,
        _writes: &str,
        _sql: &str,
        _params: &[SqlValue],
    ) -> Result<(i64, Vec<Row>), SqlError> {
        Err(SqlError::Other(format!(
            "{:?} has no data-modifying CTEs",
            self.dialect()
        )))
    }
}

/// The condition that the database's schema is at least the version this
/// code expects, for a write that runs before its statement's version is
/// seen (see [`SqlStore::read_writing`]).
pub(crate) fn schema_is_current() -> String {
    format!(
        "({}) >= {}",
        migrations::VERSION_QUERY,
        migrations::current_version()
    )
}

/// Users, audit, questions and (without Redis) sessions and counters, in
/// one SQL database.
pub struct SqlStore {
    db: Counted,
    /// Whether this request has found the schema current (or made it so).
    schema_current: Cell<bool>,
    /// Whether a [`SqlStore::transaction`] is running.
    in_transaction: Cell<bool>,
}

/// A database and how many calls were made to it: each is one statement
/// (one round trip, to a server), except that a database without
/// [`SqlDb::query_versioned`] of its own makes two for it.
struct Counted {
    db: Box<dyn SqlDb>,
    calls: Cell<u64>,
}

impl Counted {
    fn call(&self) -> &dyn SqlDb {
        self.calls.set(self.calls.get() + 1);
        self.db.as_ref()
    }
}

impl SqlDb for Counted {
    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
        self.call().query(sql, params)
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        self.call().execute(sql, params)
    }

    fn query_versioned(&self, sql: &str, params: &[SqlValue]) -> Result<(i64, Vec<Row>), SqlError> {
        self.call().query_versioned(sql, params)
    }

    fn query_writing(
        &self,
        writes: &str,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(i64, Vec<Row>), SqlError> {
        self.call().query_writing(writes, sql, params)
    }
}

pub(crate) fn store_error(error: SqlError) -> StoreError {
    match error {
        SqlError::Unavailable(cause) => StoreError::Unavailable(Store::Database, cause),
        SqlError::Refused => StoreError::Refused("database_allowed_host"),
        SqlError::UserGone(cause) => StoreError::Gone(cause),
        SqlError::MissingSchema(cause)
        | SqlError::UniqueViolation(cause)
        | SqlError::Other(cause) => StoreError::Other(anyhow::anyhow!(cause)),
    }
}

impl SqlStore {
    /// A store on `db`.
    pub fn new(db: Box<dyn SqlDb>) -> Self {
        Self {
            db: Counted {
                db,
                calls: Cell::new(0),
            },
            schema_current: Cell::new(false),
            in_transaction: Cell::new(false),
        }
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// How many calls this store has made to its database so far: on
    /// PostgreSQL, its round trips (what the conformance suite holds the
    /// one-statement paths to).
    pub fn calls(&self) -> u64 {
        self.db.calls.get()
    }

    /// Brings the schema up to date, once per request: one read of its
    /// version, and the pending migrations if it is behind this code.
    fn ensure_schema(&self) -> Result<(), SqlError> {
        if self.schema_current.get() {
            return Ok(());
        }
        let db: &dyn SqlDb = &self.db;
        let behind = match migrations::database_version(db) {
            Ok(version) => version < migrations::current_version(),
            Err(SqlError::MissingSchema(_)) => true,
            Err(error) => return Err(error),
        };
        if behind {
            eprintln!("the database schema is behind; migrating");
            migrations::migrate(db)?;
        }
        self.schema_current.set(true);
        Ok(())
    }

    /// Runs `operation` on a current schema.
    fn with_schema<T>(
        &self,
        operation: impl Fn(&dyn SqlDb) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.ensure_schema()?;
        operation(&self.db)
    }

    /// Runs a query on a current schema.
    pub fn query(&self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Row>> {
        self.with_schema(|db| db.query(sql, params))
            .map_err(store_error)
    }

    /// Runs a statement that changes nothing, without a round trip of its
    /// own for the schema check: the statement reads the schema's version
    /// as it runs, and if the schema turns out to be behind (or to lack a
    /// table or column the statement names), the pending migrations run and
    /// the statement runs again. Writes keep [`SqlStore::query`], which
    /// checks first, so that no write lands on a schema this code does not
    /// expect.
    pub fn read(&self, sql: &str, params: &[SqlValue]) -> StoreResult<Vec<Row>> {
        if self.schema_current.get() {
            return self.db.query(sql, params).map_err(store_error);
        }
        match self.db.query_versioned(sql, params) {
            Ok((version, rows)) if version >= migrations::current_version() => {
                self.schema_current.set(true);
                Ok(rows)
            }
            Ok(_) | Err(SqlError::MissingSchema(_)) => self.query(sql, params),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Runs the `SELECT` `sql` and `writes` in one statement, one round
    /// trip (see [`SqlDb::query_writing`]; PostgreSQL only). Each CTE that
    /// writes must hold [`schema_is_current`] in its `WHERE`, so that
    /// nothing is written on a schema this code does not expect: when the
    /// schema turns out to be behind, the migrations run and the statement
    /// runs again (after them, the version it reads is current).
    pub fn read_writing(
        &self,
        writes: &str,
        sql: &str,
        params: &[SqlValue],
    ) -> StoreResult<Vec<Row>> {
        match self.db.query_writing(writes, sql, params) {
            Ok((version, rows)) if version >= migrations::current_version() => {
                self.schema_current.set(true);
                Ok(rows)
            }
            Ok(_) | Err(SqlError::MissingSchema(_)) => {
                self.schema_current.set(false);
                self.ensure_schema().map_err(store_error)?;
                let (_, rows) = self
                    .db
                    .query_writing(writes, sql, params)
                    .map_err(store_error)?;
                Ok(rows)
            }
            Err(error) => Err(store_error(error)),
        }
    }

    /// Runs a statement on a current schema.
    pub fn execute(&self, sql: &str, params: &[SqlValue]) -> StoreResult<u64> {
        self.with_schema(|db| db.execute(sql, params))
            .map_err(store_error)
    }

    /// Runs an insert; `Ok(false)` when a unique constraint refused it.
    pub fn insert_unique(&self, sql: &str, params: &[SqlValue]) -> StoreResult<bool> {
        match self.with_schema(|db| db.execute(sql, params)) {
            Ok(_) => Ok(true),
            Err(SqlError::UniqueViolation(_)) => Ok(false),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Runs `work` in a write transaction: committed if it returns `Ok`,
    /// rolled back otherwise. The schema check happens before `BEGIN`.
    /// Transactions do not nest: an inner one is refused with an error (an
    /// inner `BEGIN` would be ignored and its `COMMIT` end the outer early).
    pub fn transaction<T>(&self, work: impl Fn(&Self) -> StoreResult<T>) -> StoreResult<T> {
        if self.in_transaction.get() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a transaction was begun inside another"
            )));
        }
        // Migrations run in transactions of their own: outside this one.
        self.ensure_schema().map_err(store_error)?;
        self.db
            .execute(self.dialect().begin(), &[])
            .map_err(store_error)?;
        self.in_transaction.set(true);
        let done = work(self);
        self.in_transaction.set(false);
        match done {
            Ok(value) => {
                self.db.execute("COMMIT", &[]).map_err(store_error)?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.db.execute("ROLLBACK", &[]);
                Err(error)
            }
        }
    }

    /// Inside a transaction: locks user `user_id`'s row against other
    /// writers of it and its deletion (PostgreSQL; SQLite's transaction
    /// holds the write lock already), without holding up inserts that refer
    /// to the user; `Gone` when the user no longer exists.
    pub(super) fn lock_user(&self, user_id: &str) -> StoreResult<()> {
        let user = self.query(
            &format!(
                "SELECT id FROM users WHERE id = $1{}",
                self.dialect().for_no_key_update()
            ),
            &[user_id.into()],
        )?;
        if user.is_empty() {
            return Err(StoreError::Gone(format!("no user {user_id}")));
        }
        Ok(())
    }

    /// Checks the database answers (for `/health`).
    pub fn ping(&self) -> StoreResult<()> {
        self.db
            .query("SELECT 1", &[])
            .map(|_| ())
            .map_err(store_error)
    }

    /// A named setting (such as the generated signing key), if set.
    pub fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let rows = self.read("SELECT value FROM settings WHERE name = $1", &[name.into()])?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }

    /// Stores `value` under `name` unless a value is there already; returns
    /// the value that is stored after the call.
    pub fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String> {
        self.insert_unique(
            "INSERT INTO settings (name, value) VALUES ($1, $2)",
            &[name.into(), value.into()],
        )?;
        self.setting(name)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("setting {name} vanished")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A database that answers every statement with nothing and keeps them.
    struct Recorder(Rc<RefCell<Vec<String>>>);

    impl SqlDb for Recorder {
        fn dialect(&self) -> Dialect {
            Dialect::Postgres
        }
        fn query(&self, sql: &str, _: &[SqlValue]) -> Result<Vec<Row>, SqlError> {
            self.0.borrow_mut().push(sql.to_owned());
            Ok(Vec::new())
        }
        fn execute(&self, sql: &str, _: &[SqlValue]) -> Result<u64, SqlError> {
            self.0.borrow_mut().push(sql.to_owned());
            Ok(0)
        }
    }

    #[test]
    fn a_transaction_inside_another_is_refused_and_the_outer_rolled_back() {
        let statements = Rc::new(RefCell::new(Vec::new()));
        let store = SqlStore::new(Box::new(Recorder(statements.clone())));
        store.schema_current.set(true);
        let nested = store.transaction(|tx| tx.transaction(|_| Ok(())));
        assert!(nested.is_err());
        assert_eq!(*statements.borrow(), ["BEGIN", "ROLLBACK"]);
        // The store is usable again afterwards.
        store.transaction(|_| Ok(())).unwrap();
        assert_eq!(
            *statements.borrow(),
            ["BEGIN", "ROLLBACK", "BEGIN", "COMMIT"]
        );
    }
}
