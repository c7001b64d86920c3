//! A local host for Spin applications, built on wasmtime.
//!
//! It runs `spin.toml` the way `spin up` does, for the part of Spin that
//! spin-auth uses: HTTP triggers, `wasm32-wasip1` components, outbound
//! HTTP, PostgreSQL and Redis, SQLite and application variables. Real Spin
//! is the reference; where a component could tell the two apart, this host
//! follows Spin (see the README's "The local host" section for the known
//! gaps).
//!
//! The root package's binary (`cargo run`) serves an app with [`App`];
//! tests use [`RunningHost`] to start one on a free port.

#![deny(missing_docs)]

pub mod build;
pub mod componentize;
pub mod log;
pub mod manifest;
pub mod outbound;
pub mod routes;
pub mod server;
pub mod timeline;
pub mod variables;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::log::LogSink;
pub use crate::server::{App, HostOptions, Limits};

/// An app served on a background thread with its own runtime; it stops
/// when dropped.
pub struct RunningHost {
    address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningHost {
    /// Loads the app and starts serving it on `listen` (port 0 picks a free
    /// port); returns once the socket is open, or the load error.
    pub fn start(options: HostOptions, listen: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with_limits(options, Limits::default(), listen)
    }

    /// [`RunningHost::start`], with `limits` instead of the defaults.
    pub fn start_with_limits(
        options: HostOptions,
        limits: Limits,
        listen: SocketAddr,
    ) -> anyhow::Result<Self> {
        let app = Arc::new(App::load_with_limits(&options, limits)?);
        // It only accepts connections: workers serve them.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Bound here, outside any runtime, so that a caller inside an async
        // test can start a host; the thread's runtime takes the socket over.
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("host-{}", address.port()))
            .spawn(move || {
                let _ = runtime.block_on(async {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    app.serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                });
                // Requests still running are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The socket address being served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
