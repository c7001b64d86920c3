//! `cargo run`: serve spin.toml the way `spin up` does, with the local
//! host in `host/` (the `spin-auth-host` library).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use spin_auth_host::{App, HostOptions, Limits};

/// mimalloc rather than the system allocator: every request allocates and
/// frees the same shapes on every worker thread (instance state, headers,
/// rows), and with mimalloc the host spent ≈7 % less CPU per protected
/// read at 32 connections (CPU per request as bench/run.sh counts it, in
/// alternating runs of the two builds).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
Usage: spin-auth [--listen ADDRESS] [--from MANIFEST] [--state-dir DIR] [--no-build]

Serves a Spin application locally, as `spin up` does.

Options:
  --listen ADDRESS   address to listen on (default 127.0.0.1:3000)
  -f, --from PATH    the manifest (default spin.toml)
  --state-dir DIR    where the embedded database and caches live
                     (default .spin beside the manifest)
  --no-build         do not run the components' build commands
  -h, --help         print this help

Variables come from SPIN_VARIABLE_<NAME> in the environment or in .env.
SPIN_AUTH_PG_POOL_SIZE sets how many connections the host keeps to each
PostgreSQL address (default four times this machine's cores, 4 to 64),
shared out between its worker threads, one per core.";

/// Overrides [`Limits::pg_connections`].
const PG_POOL_SIZE_ENV: &str = "SPIN_AUTH_PG_POOL_SIZE";

struct Args {
    listen: SocketAddr,
    manifest: PathBuf,
    state_dir: Option<PathBuf>,
    build: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: std::env::var("SPIN_HTTP_LISTEN_ADDR")
            .ok()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
        manifest: PathBuf::from("spin.toml"),
        state_dir: None,
        build: true,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let value = iter.next().ok_or("--listen needs an address")?;
                args.listen = value.parse().map_err(|_| {
                    format!("--listen: {value:?} is not an address such as 127.0.0.1:3000")
                })?;
            }
            "-f" | "--from" => {
                args.manifest = iter.next().ok_or("--from needs a path")?.into();
            }
            "--state-dir" => {
                args.state_dir = Some(iter.next().ok_or("--state-dir needs a folder")?.into());
            }
            "--no-build" => args.build = false,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("Error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: what failed and why, outermost context first.
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut options = HostOptions::new(&args.manifest);
    options.build = args.build;
    options.state_dir = args.state_dir;
    let mut limits = Limits::default();
    if let Some(value) = std::env::var_os(PG_POOL_SIZE_ENV) {
        limits.pg_connections = value
            .to_str()
            .and_then(|text| text.parse().ok())
            .filter(|&size: &usize| size > 0)
            .ok_or_else(|| anyhow::anyhow!("{PG_POOL_SIZE_ENV} must be a positive number"))?;
    }
    let app = Arc::new(App::load_with_limits(&options, limits)?);
    // It only accepts connections: the app's worker threads serve them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", args.listen))?;
        let base_url = format!("http://{}", listener.local_addr()?);
        for line in app.startup_lines(&base_url) {
            println!("{line}");
        }
        app.serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("Shutting down");
        })
        .await
    })
}
