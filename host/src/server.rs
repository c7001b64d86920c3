//! Loading an app and serving its HTTP triggers.
//!
//! Everything that can be wrong with the configuration (the manifest, a
//! missing `.wasm`, a missing variable, an import this host lacks) is found
//! by [`App::load`], before a socket is opened. Serving then costs, per
//! request, a new [`Store`] and an instance from a pre-linked
//! [`ProxyPre`] on the pooling allocator: no compilation, no linking.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::log::{GuestOutput, LogSink};
use crate::manifest::Manifest;
use crate::outbound::allowed_hosts::AllowedHosts;
use crate::outbound::http::{HttpTimeouts, OutboundHttp};
use crate::outbound::{self, ComponentContext, Outbound, RequestState};
use crate::routes::Router;
use crate::variables::{Provider, ResolvedVariables};
use crate::workers::Workers;

/// How to load and serve an app.
#[derive(Clone)]
pub struct HostOptions {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// Environment that supplies `SPIN_VARIABLE_*` values.
    pub environment: Vec<(String, String)>,
    /// Folder of the `.env` file read for variables (Spin reads the one in
    /// its working directory).
    pub dotenv_dir: PathBuf,
    /// Where `.spin/` state lives; `<app dir>/.spin` when `None`.
    pub state_dir: Option<PathBuf>,
    /// Run the components' build commands when their output is stale.
    pub build: bool,
    /// Where the host's lines and guest output go.
    pub log: LogSink,
}

impl HostOptions {
    /// Options for `manifest`, with the process environment and working
    /// directory, building stale components, logging to stderr.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            environment: std::env::vars().collect(),
            dotenv_dir: std::env::current_dir().unwrap_or_default(),
            state_dir: None,
            build: true,
            log: LogSink::Stderr,
        }
    }
}

/// How long the host waits for a client, and for servers its guests call.
///
/// A client that sends half its headers, or announces a body and sends only
/// part of it, would otherwise hold a connection (and, for the body, a guest
/// instance from the pool) forever; a few thousand such clients exhaust the
/// pool. The defaults suit an API whose requests are small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed for a request's line and headers to arrive, from when
    /// the host starts reading them (for a kept-alive connection, from the
    /// end of the previous response: an idle connection is closed too).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed for a request's whole body to arrive once its headers
    /// have; past it, the guest reading the body gets an error, and the
    /// connection is closed after the response. Default 30 s.
    pub body_read_timeout: Duration,
    /// The longest a guest's outbound HTTP request may wait to connect, for
    /// its response, and between chunks of the response body; a guest may
    /// ask for less in its `request-options`.
    pub outbound_http: HttpTimeouts,
    /// Connections kept to each PostgreSQL address; statements beyond that
    /// many at once wait for one (for at most 5 s). They are shared out
    /// between the worker threads, each keeping its own pool of an equal
    /// share (at least one): a statement waits for its worker's pool even
    /// when another's has a connection free. Default: four times this
    /// machine's cores, at least 4 and at most 64.
    pub pg_connections: usize,
    /// Threads that serve connections, each with a single-threaded runtime
    /// (see [`crate::workers`]). Default: this machine's cores.
    pub workers: usize,
}

/// The default of [`Limits::pg_connections`].
///
/// Measured on 2 cores with 32 clients: PostgreSQL answered the protected
/// read ≈30 % faster from 4 connections than from 32, each extra server
/// process costing context switches and cold caches; with a pool per
/// worker thread, 4 each (8 in all) served ≈15–35 % more reads than 2 each,
/// in alternating runs. A server with more cores of its own may take more
/// (`SPIN_AUTH_PG_POOL_SIZE`).
pub fn default_pg_connections() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (4 * cores).clamp(4, 64)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            outbound_http: HttpTimeouts::default(),
            pg_connections: default_pg_connections(),
            workers: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

/// A component ready to serve.
struct PreparedComponent {
    context: Arc<ComponentContext>,
    pre: ProxyPre<RequestState>,
    stdout: GuestOutput,
    stderr: GuestOutput,
}

/// A loaded app: routes and pre-linked components.
pub struct App {
    limits: Limits,
    timelines: bool,
    manifest: Manifest,
    router: Router<usize>,
    components: Vec<PreparedComponent>,
    outbound: Arc<Outbound>,
    log: LogSink,
}

/// Set to `1`, the host writes a perf map of compiled guest code, so that
/// `perf report` shows which guest functions a profile's samples fall in.
pub const PERF_MAP_ENV: &str = "SPIN_AUTH_PERFMAP";

/// How often a running guest yields to other requests on its worker (the
/// interval at which Spin's engine ticks too).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine all apps of this process share, so that compiled code and
/// the instance pool are set up once.
fn engine() -> anyhow::Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    // A fresh instance per request comes from a pool of pre-reserved slots;
    // linear memories are reset by copy-on-write rather than re-mapped.
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(1000)
        .total_core_instances(8000)
        .total_memories(2000)
        .total_tables(2000)
        .total_stacks(1000)
        // Argon2 needs 19 MiB; the rest is the components' heap.
        .max_memory_size(256 << 20)
        // Measured with bench/run.sh: resetting a finished instance's memory
        // with madvise cost a TLB shootdown per request (half the CPU at
        // load). Keeping pages resident and resetting only the ones the
        // guest dirtied (found with Linux's PAGEMAP_SCAN, where the kernel
        // has it) doubles throughput.
        .linear_memory_keep_resident(32 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto)
        // Tables likewise: their dirty pages are zeroed in place rather
        // than released with madvise.
        .table_keep_resident(64 << 10)
        // A slot goes back to the pool as soon as its instance is done.
        // wasmtime 48 queues every reset memory for decommit, even with
        // nothing to decommit, and a larger batch holds warm slots back
        // until it fills: the next instance then gets a cold slot and
        // faults its pages in again (≈3,900 faults, 5 ms of a login).
        // With nothing left to release, a batch of one costs no syscall.
        .decommit_batch_size(1);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    // A guest that computes for long (a login's Argon2, ≈20–40 ms) yields
    // to its worker's other connections at every tick instead of holding
    // them up until it is done.
    config.epoch_interruption(true);
    // For profiling: `perf` names guest functions from /tmp/perf-<pid>.map.
    if std::env::var_os(PERF_MAP_ENV).is_some_and(|value| value == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the WebAssembly engine")?;
    let engine = ENGINE.get_or_init(|| engine);
    static TICKER: OnceLock<()> = OnceLock::new();
    TICKER.get_or_init(|| {
        let engine = engine.clone();
        let ticker = std::thread::Builder::new()
            .name("epoch-ticker".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        if let Err(error) = ticker {
            // Guests then run to the end of each call without yielding.
            eprintln!("cannot start the epoch ticker: {error}");
        }
    });
    Ok(engine)
}

impl App {
    /// Reads the manifest, builds stale components, resolves variables,
    /// compiles and links every component; any problem is an error that
    /// names it. The app serves with the default [`Limits`].
    pub fn load(options: &HostOptions) -> anyhow::Result<Self> {
        Self::load_with_limits(options, Limits::default())
    }

    /// [`App::load`], serving with `limits`.
    pub fn load_with_limits(options: &HostOptions, limits: Limits) -> anyhow::Result<Self> {
        let manifest = Manifest::load(&options.manifest)?;
        if options.build {
            crate::build::build_stale_components(&manifest)?;
        }
        let provider =
            Provider::from_environment(options.environment.iter().cloned(), &options.dotenv_dir)?;
        let variables = ResolvedVariables::resolve(&manifest.variables, &provider)?;
        variables.check_manifest(&manifest)?;

        let state_dir = options
            .state_dir
            .clone()
            .unwrap_or_else(|| manifest.app_dir.join(".spin"));
        let engine = engine()?;
        let mut linker = Linker::new(engine);
        outbound::add_to_linker(&mut linker)?;

        let mut index_of = HashMap::new();
        let mut components = Vec::new();
        // Only components that a trigger serves are loaded, as in Spin.
        for trigger in &manifest.triggers {
            if index_of.contains_key(&trigger.component) {
                continue;
            }
            let decl = &manifest.components[&trigger.component];
            let component = load_component(engine, decl, &state_dir)?;
            let instance_pre = linker.instantiate_pre(&component).map_err(|error| {
                anyhow::anyhow!("component {} cannot run on this host: {error}", decl.id)
            })?;
            let pre = ProxyPre::new(instance_pre).map_err(|error| {
                anyhow::anyhow!(
                    "component {} does not export wasi:http/incoming-handler@0.2: {error}",
                    decl.id
                )
            })?;
            let hosts: Vec<String> = decl
                .allowed_outbound_hosts
                .iter()
                .map(|entry| variables.expand(entry))
                .collect::<anyhow::Result<_>>()?;
            let context = ComponentContext {
                id: decl.id.clone(),
                variables: variables.for_component(decl)?,
                allowed_hosts: AllowedHosts::parse(hosts.iter().map(String::as_str))
                    .with_context(|| format!("component {}", decl.id))?,
                sqlite_databases: decl.sqlite_databases.clone(),
                key_value_stores: decl.key_value_stores.clone(),
                environment: decl.environment.clone().into_iter().collect(),
            };
            index_of.insert(trigger.component.clone(), components.len());
            let log_file = |stream: &str| {
                let path = state_dir
                    .join("logs")
                    .join(format!("{}_{stream}.txt", decl.id));
                std::fs::create_dir_all(state_dir.join("logs"))
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                    })
                    .map_err(|error| {
                        options
                            .log
                            .line(&format!("warning: cannot open {}: {error}", path.display()))
                    })
                    .ok()
            };
            components.push(PreparedComponent {
                context: Arc::new(context),
                pre,
                stdout: GuestOutput::new(&decl.id, options.log.clone(), log_file("stdout")),
                stderr: GuestOutput::new(&decl.id, options.log.clone(), log_file("stderr")),
            });
        }
        let router = Router::new(
            manifest
                .triggers
                .iter()
                .map(|trigger| (trigger.route.clone(), index_of[&trigger.component])),
        )?;
        if !router.duplicates().is_empty() {
            options
                .log
                .line("The following component routes are duplicates and will never be used:");
            for (route, replaced_by) in router.duplicates() {
                options.log.line(&format!(
                    "  {}: {} (duplicate of {})",
                    components[route.target].context.id,
                    route.raw,
                    components[*replaced_by].context.id
                ));
            }
        }
        let outbound = Arc::new(Outbound::new(
            state_dir.join("sqlite_db.db"),
            state_dir.join("sqlite_key_value.db"),
            limits.outbound_http,
            limits.pg_connections,
        ));
        if components
            .iter()
            .any(|c| c.context.sqlite_databases.contains("default"))
        {
            options.log.line(&format!(
                "Storing default SQLite data to {:?}.",
                outbound.sqlite.path()
            ));
        }
        if components
            .iter()
            .any(|c| c.context.key_value_stores.contains("default"))
        {
            options.log.line(&format!(
                "Storing default key-value data to {:?}.",
                outbound.key_value.path()
            ));
        }
        let timelines = options
            .environment
            .iter()
            .any(|(name, value)| name == crate::timeline::ENV && value == "1");
        Ok(Self {
            limits,
            timelines,
            manifest,
            router,
            components,
            outbound,
            log: options.log.clone(),
        })
    }

    /// The app's name from the manifest.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The lines `spin up` prints once it listens, most specific route first.
    pub fn startup_lines(&self, base_url: &str) -> Vec<String> {
        let mut lines = vec![
            String::new(),
            format!("Serving {base_url}"),
            "Available Routes:".to_owned(),
        ];
        for route in self.router.routes() {
            let id = &self.components[route.target].context.id;
            let wildcard = if route.raw.ends_with("/...") {
                " (wildcard)"
            } else {
                ""
            };
            lines.push(format!(
                "  {id}: {base_url}{}{wildcard}",
                route.pattern.component_route()
            ));
        }
        lines
    }

    /// Serves HTTP on `listener` until `shutdown` resolves: this task
    /// accepts connections and hands each to a worker thread (see
    /// [`crate::workers`]), which serves it to the end.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let workers = Workers::start(&self)?;
        tokio::pin!(shutdown);
        loop {
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // A failed accept (out of descriptors, a reset) is about
                    // one connection, not the server.
                    Err(error) => {
                        self.log.line(&format!("accept failed: {error}"));
                        continue;
                    }
                },
                () = &mut shutdown => return Ok(()),
            };
            // Responses are small and latency matters more than packet count.
            let _ = stream.set_nodelay(true);
            if let Err(error) = workers.dispatch(stream, client) {
                self.log
                    .line(&format!("cannot hand a connection over: {error}"));
            }
        }
    }

    /// The limits it serves with.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The shared state a worker thread starts from.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Serves HTTP/1.1 on one connection until it closes, with `outbound`,
    /// the calling worker's connections.
    pub(crate) async fn serve_connection(
        self: Arc<Self>,
        outbound: Arc<Outbound>,
        stream: tokio::net::TcpStream,
        client: SocketAddr,
    ) {
        let limits = self.limits;
        let app = self;
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            let outbound = outbound.clone();
            async move { Ok::<_, std::convert::Infallible>(app.handle(request, client, outbound).await) }
        });
        // hyper closes a connection whose request line and headers take
        // longer than the limit (the timer is what enables it); the body's
        // limit is applied by `DeadlineBody`.
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
        outbound: Arc<Outbound>,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = match self.router.route(&path) {
            // Spin answers an unrouted path with an empty 404.
            None => empty_response(StatusCode::NOT_FOUND),
            Some((route, found)) => {
                let component = &self.components[route.target];
                let request = with_spin_headers(request, route, &found, client)
                    .map(|body| DeadlineBody::new(body, self.limits.body_read_timeout));
                let timeline = self
                    .timelines
                    .then(|| crate::timeline::Timeline::new(format!("{method} {path}"), started));
                match self
                    .call(component, request, timeline, started, outbound)
                    .await
                {
                    Ok(response) => response,
                    Err(error) => {
                        // The chain's ends say what happened; the wasm
                        // backtrace in between is for a debugger.
                        self.log.line(&format!(
                            "Error processing request {method} {path} in component {}: {error}: {}",
                            component.context.id,
                            error.root_cause()
                        ));
                        empty_response(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                }
            }
        };
        self.log.line(&format!(
            "{method} {path} {} {:.2}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        response
    }

    async fn call(
        &self,
        component: &PreparedComponent,
        request: Request<DeadlineBody>,
        timeline: Option<crate::timeline::Timeline>,
        started: Instant,
        outbound: Arc<Outbound>,
    ) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(component.stdout.clone())
            .stderr(component.stderr.clone())
            .envs(&component.context.environment);
        let state = RequestState {
            component: component.context.clone(),
            http_hooks: OutboundHttp::new(component.context.clone(), outbound.http_timeouts),
            outbound,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            timeline,
            memory: crate::timeline::MemoryPeak::default(),
        };
        let timed = state.timeline.is_some();
        let mut store = Store::new(component.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        // Yield at the next tick (0–10 ms away), and then at every tick
        // (`EPOCH_TICK`). tokio's `yield_now` (rather than wasmtime's own
        // yield, which wakes the task at once) lets the worker's runtime
        // poll its sockets before the guest goes on: a single-threaded
        // runtime otherwise looks at them only every 61 polls, 0.6 s of
        // such slices.
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store.set_epoch_deadline(1);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let pre = component.pre.clone();
        let (responded_sender, responded) = tokio::sync::oneshot::channel::<(u16, u64)>();
        let log = self.log.clone();
        // The guest runs in its own task so it can keep writing the body
        // after the status and headers have gone out.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            if let Some(timeline) = store.data_mut().timeline.as_mut() {
                timeline.instantiated_us = timeline.now();
            }
            let result = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await;
            let data = store.data_mut();
            if let Some(mut timeline) = data.timeline.take() {
                if let Ok((status, at)) = responded.await {
                    timeline.status = status;
                    timeline.responded_us = at;
                }
                timeline.peak_memory_bytes = data.memory.peak;
                timeline.memory_growths = data.memory.growths;
                log.line(&format!(
                    "timeline {}",
                    serde_json::to_string(&timeline).unwrap_or_default()
                ));
            }
            // Dropping the store resets its instance's slot for the next
            // one: the pages it wrote are zeroed and scanned for, which for
            // a memory grown to hold Argon2's 19 MiB takes milliseconds.
            // That is done off the worker, which meanwhile writes out the
            // response and serves other requests (a login's p50 at one
            // connection: ≈3 ms less, in alternating runs).
            if data.memory.growths > 0 {
                tokio::task::spawn_blocking(move || drop(store));
            }
            result
        });
        match receiver.await {
            Ok(Ok(response)) => {
                if timed {
                    let _ = responded_sender.send((
                        response.status().as_u16(),
                        started.elapsed().as_micros() as u64,
                    ));
                }
                Ok(response)
            }
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "guest failed to produce a response: {code:?}"
            )),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!(
                    "guest failed to produce a response prior to returning"
                )),
                Ok(Err(error)) => {
                    Err(anyhow::Error::from(error).context("guest invocation failed"))
                }
                Err(join) => Err(anyhow::anyhow!("guest invocation panicked: {join}")),
            },
        }
    }
}

fn load_component(
    engine: &Engine,
    decl: &crate::manifest::ComponentDecl,
    state_dir: &std::path::Path,
) -> anyhow::Result<wasmtime::component::Component> {
    if !decl.source.is_file() {
        anyhow::bail!(
            "component {}: {} does not exist; build it (`cargo build --target wasm32-wasip1 --release`) or let the host build it",
            decl.id,
            decl.source.display()
        );
    }
    crate::componentize::load_component(engine, &decl.source, &state_dir.join("cache"))
        .with_context(|| format!("component {}", decl.id))
}

fn empty_response(status: StatusCode) -> Response<HyperOutgoingBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// Makes the URI absolute and adds Spin's request headers. Like Spin, the
/// host appends them to the client's headers rather than replacing any of
/// the same name, so a component must read the last value.
fn with_spin_headers(
    request: Request<Incoming>,
    route: &crate::routes::Route<usize>,
    found: &crate::routes::RouteMatch,
    client: SocketAddr,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(http::header::CONNECTION);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    if let Ok(uri) = http::Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()
    {
        parts.uri = uri;
    }
    let matched_route = route.raw.strip_suffix('/').unwrap_or(&route.raw);
    let mut add = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            parts.headers.append(name, value);
        }
    };
    add("spin-path-info", &found.path_info);
    add("spin-full-url", &format!("http://{host}{path_and_query}"));
    add("spin-matched-route", matched_route);
    add("spin-base-path", "/");
    add("spin-raw-component-route", &route.raw);
    add(
        "spin-component-route",
        route.raw.strip_suffix("/...").unwrap_or(&route.raw),
    );
    add("spin-client-addr", &client.to_string());
    for (name, value) in &found.params {
        add(
            &format!(
                "spin-path-match-{}",
                name.to_ascii_lowercase().replace('_', "-")
            ),
            value,
        );
    }
    Request::from_parts(parts, body)
}

/// A request body that must arrive in full before a deadline.
///
/// Past the deadline the body answers the guest with
/// `connection-read-timeout` and drops the connection's body stream, which
/// makes hyper stop reading and close the connection once the response is
/// written. Data that has already arrived is still delivered first.
struct DeadlineBody {
    inner: Option<Incoming>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner: Some(inner),
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.inner = None;
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_some_and(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(Incoming::size_hint)
            .unwrap_or_default()
    }
}
