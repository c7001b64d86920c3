//! `fermyon:spin/key-value@2.0.0`: the store `default`, kept where `spin up`
//! keeps it (`.spin/sqlite_key_value.db`, table `spin_key_value`), so the
//! same state folder serves both hosts.
//!
//! Key-value calls are few and small (a verifier's cached key set), so one
//! connection, opened on first use and taken by one call at a time on a
//! blocking thread, is enough.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::OptionalExtension;
use wasmtime::component::Resource;

use super::RequestState;
use super::fermyon::spin::key_value::{Error, Host, HostStore};

/// How long a call waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The app's key-value data: the one store `default`.
#[derive(Clone)]
pub struct Stores {
    path: PathBuf,
    connection: Arc<Mutex<Option<rusqlite::Connection>>>,
}

/// A guest's open store.
pub struct KeyValueStore {
    label: String,
}

impl Stores {
    /// `default` lives in the file at `path`; the folder is created on first use.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            connection: Arc::default(),
        }
    }

    /// Where the stores are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection, on a blocking thread. Every failure
    /// here is the host's (the file, the disk), so it is `other(message)`,
    /// as in Spin.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let (path, connection) = (self.path.clone(), self.connection.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = connection.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(open(&path).map_err(|e| e.to_string())?);
            }
            work(slot.as_ref().expect("opened above")).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .map_err(Error::Other)
    }
}

fn open(path: &Path) -> Result<rusqlite::Connection, Box<dyn std::error::Error>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        )",
    )?;
    Ok(connection)
}

impl Host for RequestState {}

impl HostStore for RequestState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueStore>, Error>> {
        // Spin checks the component's `key_value_stores` first, then
        // whether the store exists (only `default` without a runtime
        // configuration).
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != "default" {
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(KeyValueStore { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.table.get(&store)?.label.clone();
        let started = self.call_started();
        let result = self
            .outbound
            .key_value
            .run(move |c| {
                c.query_row(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (label, key),
                    |row| row.get(0),
                )
                .optional()
            })
            .await;
        self.call_ended("key-value.get", started);
        Ok(result)
    }

    async fn set(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.table.get(&store)?.label.clone();
        let started = self.call_started();
        let result = self
            .outbound
            .key_value
            .run(move |c| {
                c.execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    (label, key, value),
                )
                .map(drop)
            })
            .await;
        self.call_ended("key-value.set", started);
        Ok(result)
    }

    async fn delete(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.table.get(&store)?.label.clone();
        Ok(self
            .outbound
            .key_value
            .run(move |c| {
                c.execute(
                    "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (label, key),
                )
                .map(drop)
            })
            .await)
    }

    async fn exists(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.table.get(&store)?.label.clone();
        Ok(self
            .outbound
            .key_value
            .run(move |c| {
                c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
                    (label, key),
                    |row| row.get(0),
                )
            })
            .await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<KeyValueStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.table.get(&store)?.label.clone();
        Ok(self
            .outbound
            .key_value
            .run(move |c| {
                let mut statement =
                    c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                statement
                    .query_map([label], |row| row.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await)
    }

    async fn drop(&mut self, store: Resource<KeyValueStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_are_kept_per_store_in_spins_table() {
        let folder = tempfile::tempdir().unwrap();
        let stores = Stores::new(folder.path().join(".spin/sqlite_key_value.db"));
        let put = |store: &'static str, key: &'static str, value: &'static [u8]| {
            stores.run(move |c| {
                c.execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    (store, key, value),
                )
                .map(drop)
            })
        };
        put("default", "k", b"one").await.unwrap();
        put("default", "k", b"two").await.unwrap();
        put("other", "k", b"three").await.unwrap();
        let value: Vec<u8> = stores
            .run(|c| {
                c.query_row(
                    "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'k'",
                    [],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(value, b"two");
        assert!(folder.path().join(".spin/sqlite_key_value.db").is_file());
    }
}
