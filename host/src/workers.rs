//! Worker threads, each serving its connections on a single-threaded
//! runtime with PostgreSQL pools and Redis connections of its own.
//!
//! A request's work then stays on one thread: the guest, its statements,
//! and the tasks that drive its connections' I/O wake each other without
//! crossing to another thread. Measured with the protected read at 32
//! connections (alternating runs): one multi-threaded runtime whose
//! workers shared the pools spent ≈35 % more host CPU per request and
//! served ≈30 % fewer requests per second. The listener's task accepts
//! connections and hands each to the worker with the fewest open ones; a
//! connection stays on its worker until it closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::outbound::Outbound;
use crate::server::App;

type Connection = (std::net::TcpStream, SocketAddr);

/// The worker threads of one [`App::serve`]; they stop when it is dropped.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    /// Where the search for the least busy worker starts, so that ties
    /// take turns.
    next: AtomicUsize,
}

struct Worker {
    sender: mpsc::UnboundedSender<Connection>,
    /// Connections handed over and not yet closed.
    open: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Workers {
    /// Starts the workers of `app`'s limits (at least one); the PostgreSQL
    /// connections of its limits are shared out between them, at least
    /// one each.
    pub(crate) fn start(app: &Arc<App>) -> anyhow::Result<Self> {
        let count = app.limits().workers.max(1);
        let pg_connections = (app.limits().pg_connections / count).max(1);
        let mut workers = Self {
            workers: Vec::with_capacity(count),
            next: AtomicUsize::new(0),
        };
        for index in 0..count {
            let (sender, receiver) = mpsc::unbounded_channel::<Connection>();
            let open = Arc::new(AtomicUsize::new(0));
            let outbound = Arc::new(app.outbound().for_worker(pg_connections));
            let (app, counter) = (app.clone(), open.clone());
            // The runtime is made on its own thread, which says whether it
            // could: one dropped here, in the caller's runtime, would panic.
            let (started, ready) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    let runtime = match runtime {
                        Ok(runtime) => {
                            let _ = started.send(Ok(()));
                            runtime
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                            return;
                        }
                    };
                    runtime.block_on(serve(app, outbound, receiver, counter));
                    // Requests still running are dropped with the runtime.
                    runtime.shutdown_background();
                })
                .context("cannot start a worker thread")?;
            // Pushed first, so that a failure below still joins it.
            workers.workers.push(Worker {
                sender,
                open,
                thread,
            });
            ready
                .recv()
                .context("a worker thread stopped as it started")?
                .context("cannot start a worker's runtime")?;
        }
        Ok(workers)
    }

    /// Hands `stream` to the worker with the fewest open connections.
    pub(crate) fn dispatch(
        &self,
        stream: tokio::net::TcpStream,
        client: SocketAddr,
    ) -> anyhow::Result<()> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.workers.len();
        let worker = (0..count)
            .map(|offset| &self.workers[(start + offset) % count])
            .min_by_key(|worker| worker.open.load(Ordering::Relaxed))
            .expect("at least one worker");
        // Leaves the listener's runtime; the worker registers it with its own.
        let stream = stream.into_std()?;
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.sender.send((stream, client)).is_err() {
            worker.open.fetch_sub(1, Ordering::Relaxed);
            anyhow::bail!("the worker has stopped");
        }
        Ok(())
    }
}

/// A worker's loop: serves each connection handed to it until the channel
/// closes.
async fn serve(
    app: Arc<App>,
    outbound: Arc<Outbound>,
    mut receiver: mpsc::UnboundedReceiver<Connection>,
    open: Arc<AtomicUsize>,
) {
    while let Some((stream, client)) = receiver.recv().await {
        // Counts the connection closed however its task ends.
        let closed = Closed(open.clone());
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            continue;
        };
        let (app, outbound) = (app.clone(), outbound.clone());
        tokio::spawn(async move {
            app.serve_connection(outbound, stream, client).await;
            drop(closed);
        });
    }
}

/// Takes a connection off its worker's count when dropped.
struct Closed(Arc<AtomicUsize>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Dropping a worker's sender closes its channel, which ends its loop.
        let threads: Vec<_> = self.workers.drain(..).map(|worker| worker.thread).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}
