//! The Spin host interfaces: outbound HTTP, PostgreSQL, Redis, SQLite,
//! key-value and variables.
//!
//! `bindgen!` generates the host traits from the WIT in `wit/`; each
//! submodule implements one capability on [`RequestState`], the data of a
//! request's [`wasmtime::Store`], laid out as Spin lays out its factors:
//! where a capability keeps connections, `client.rs` holds them and
//! `host.rs` implements the WIT (PostgreSQL adds `types.rs` for value
//! conversions); `allowed_hosts.rs` is the `allowed_outbound_hosts` check
//! they share, as Spin's outbound-networking factor. Connections to servers
//! live in [`Outbound`], one per worker thread (see
//! [`Outbound::for_worker`]), shared by every request that thread serves,
//! so a request reuses pooled connections instead of dialling; this module
//! wires it all into the linker.

pub mod allowed_hosts;
pub mod http;
pub mod key_value;
pub mod pg;
pub mod redis;
pub mod sqlite;
pub mod variables;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use self::allowed_hosts::AllowedHosts;

/// Host-side bindings generated from `wit/`.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-auth:host/host",
    imports: { default: async | trappable },
    with: {
        "spin:postgres/postgres.connection": super::pg::PgConnection,
        "fermyon:spin/redis.connection": super::redis::RedisConnection,
        "fermyon:spin/sqlite.connection": super::sqlite::SqliteConnection,
        "spin:sqlite/sqlite.connection": super::sqlite::SqliteConnection,
        "fermyon:spin/key-value.store": super::key_value::KeyValueStore,
    },
    });
}

pub use bindings::{fermyon, spin};

/// What one component may use, fixed at startup and shared by its requests.
#[derive(Debug)]
pub struct ComponentContext {
    /// The component id from the manifest.
    pub id: String,
    /// Its variables, expanded.
    pub variables: HashMap<String, String>,
    /// Its `allowed_outbound_hosts`, expanded and parsed.
    pub allowed_hosts: AllowedHosts,
    /// Its `sqlite_databases`.
    pub sqlite_databases: HashSet<String>,
    /// Its `key_value_stores`.
    pub key_value_stores: HashSet<String>,
    /// Its `environment`, given to the guest through WASI.
    pub environment: Vec<(String, String)>,
}

/// Connections shared by every request of a worker thread, and the app's
/// SQLite and key-value data, shared by all of them.
pub struct Outbound {
    /// PostgreSQL pools, by address.
    pub pg: pg::Pools,
    /// Redis connections, by address.
    pub redis: redis::Clients,
    /// SQLite databases, by name.
    pub sqlite: sqlite::Databases,
    /// Key-value stores.
    pub key_value: key_value::Stores,
    /// The ceilings of outbound HTTP requests' timeouts.
    pub http_timeouts: http::HttpTimeouts,
}

impl Outbound {
    /// Shared state for an app whose `default` SQLite database lives at
    /// `sqlite_path`, whose key-value stores live at `key_value_path`, whose
    /// outbound HTTP requests wait at most `http_timeouts`, and which keeps
    /// at most `pg_connections` connections to each PostgreSQL address
    /// (the app keeps one, from which each worker's comes).
    pub fn new(
        sqlite_path: PathBuf,
        key_value_path: PathBuf,
        http_timeouts: http::HttpTimeouts,
        pg_connections: usize,
    ) -> Self {
        Self {
            pg: pg::Pools::new(pg_connections),
            redis: redis::Clients::default(),
            sqlite: sqlite::Databases::new(sqlite_path),
            key_value: key_value::Stores::new(key_value_path),
            http_timeouts,
        }
    }

    /// The state one worker thread uses: PostgreSQL pools of `pg_connections`
    /// per address and Redis connections of its own, since a connection's
    /// I/O is driven by the runtime that opened it and would otherwise wake
    /// another thread at every statement; the SQLite databases, key-value
    /// stores and timeouts are shared.
    pub fn for_worker(&self, pg_connections: usize) -> Self {
        Self {
            pg: pg::Pools::new(pg_connections),
            redis: redis::Clients::default(),
            sqlite: self.sqlite.clone(),
            key_value: self.key_value.clone(),
            http_timeouts: self.http_timeouts,
        }
    }
}

/// The data of one request's store.
pub struct RequestState {
    /// The component serving the request.
    pub component: Arc<ComponentContext>,
    /// Its worker's connections.
    pub outbound: Arc<Outbound>,
    /// WASI state: stdio, environment, clocks, random.
    pub wasi: WasiCtx,
    /// `wasi:http` state.
    pub http: WasiHttpCtx,
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// Outbound HTTP policy.
    pub http_hooks: http::OutboundHttp,
    /// Where the request's time went, when timelines are on.
    pub timeline: Option<crate::timeline::Timeline>,
    /// Peak linear memory and how often it grew.
    pub memory: crate::timeline::MemoryPeak,
}

impl RequestState {
    /// When a host call starts, if timelines are on.
    pub fn call_started(&self) -> Option<u64> {
        self.timeline.as_ref().map(crate::timeline::Timeline::now)
    }

    /// Records a host call that started at `started`.
    pub fn call_ended(&mut self, name: &'static str, started: Option<u64>) {
        if let (Some(timeline), Some(started)) = (self.timeline.as_mut(), started) {
            timeline.call(name, started);
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Adds WASI, `wasi:http` and the Spin interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    spin::postgres::postgres::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    fermyon::spin::redis::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    fermyon::spin::variables::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    fermyon::spin::sqlite::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    fermyon::spin::key_value::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    spin::sqlite::sqlite::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    Ok(())
}
