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
    sender: Option<mpsc::UnboundedSender<Connection>>,
    /// Connections handed over and not yet closed.
    open: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers (at least one) for `app`; the PostgreSQL
    /// connections of its limits are divided between them.
    pub(crate) fn start(app: &Arc<App>, count: usize) -> anyhow::Result<Self> {
        let count = count.max(1);
        let pg_connections = app.limits().pg_connections.div_ceil(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a worker's runtime")?;
            let (sender, mut receiver) = mpsc::unbounded_channel::<Connection>();
            let open = Arc::new(AtomicUsize::new(0));
            let outbound = Arc::new(app.outbound().for_worker(pg_connections));
            let (app, counter) = (app.clone(), open.clone());
            let thread = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some((stream, client)) = receiver.recv().await {
                            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                                counter.fetch_sub(1, Ordering::Relaxed);
                                continue;
                            };
                            let (app, outbound, counter) =
                                (app.clone(), outbound.clone(), counter.clone());
                            tokio::spawn(async move {
                                app.serve_connection(outbound, stream, client).await;
                                counter.fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                    });
                    // Requests still running are dropped with the runtime.
                    runtime.shutdown_background();
                })
                .context("cannot start a worker thread")?;
            workers.push(Worker {
                sender: Some(sender),
                open,
                thread: Some(thread),
            });
        }
        Ok(Self {
            workers,
            next: AtomicUsize::new(0),
        })
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
        let sent = worker
            .sender
            .as_ref()
            .map(|sender| sender.send((stream, client)));
        if !matches!(sent, Some(Ok(()))) {
            worker.open.fetch_sub(1, Ordering::Relaxed);
            anyhow::bail!("the worker has stopped");
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing a worker's channel ends its loop.
        for worker in &mut self.workers {
            worker.sender = None;
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
