//! Starting the fixture app on the host, and talking to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use spin_auth_host::{HostOptions, Limits, LogSink, RunningHost};

/// The local servers the tests use, overridable for other setups.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `scheme://host:port` of a URL, as an allowed_outbound_hosts entry.
pub fn allowed_entry(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a valid URL");
    format!(
        "{}://{}:{}",
        parsed.scheme(),
        parsed.host_str().expect("a host"),
        parsed
            .port_or_known_default()
            .unwrap_or(match parsed.scheme() {
                "postgres" => 5432,
                _ => 6379,
            })
    )
}

pub fn fixture_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture/spin.toml")
}

/// A running fixture app with its own state folder and captured log.
pub struct Fixture {
    pub host: RunningHost,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    pub state: tempfile::TempDir,
}

pub struct FixtureOptions {
    pub environment: Vec<(String, String)>,
    pub dotenv_dir: Option<PathBuf>,
    pub state: Option<tempfile::TempDir>,
    pub limits: Limits,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        Self {
            environment: vec![
                ("SPIN_VARIABLE_SECRET_WORD".into(), "xyzzy".into()),
                (
                    "SPIN_VARIABLE_PG_ALLOWED".into(),
                    allowed_entry(&database_url()),
                ),
                (
                    "SPIN_VARIABLE_REDIS_ALLOWED".into(),
                    allowed_entry(&redis_url()),
                ),
            ],
            dotenv_dir: None,
            state: None,
            limits: Limits::default(),
        }
    }
}

pub fn try_start(options: FixtureOptions) -> anyhow::Result<Fixture> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let state = match options.state {
        Some(state) => state,
        None => tempfile::tempdir()?,
    };
    let empty_dir = state.path().join("no-dotenv");
    std::fs::create_dir_all(&empty_dir)?;
    let host_options = HostOptions {
        manifest: fixture_manifest(),
        environment: options.environment,
        dotenv_dir: options.dotenv_dir.unwrap_or(empty_dir),
        state_dir: Some(state.path().join(".spin")),
        build: true,
        log: LogSink::Memory(logs.clone()),
    };
    let host = RunningHost::start_with_limits(
        host_options,
        options.limits,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )?;
    Ok(Fixture {
        host,
        logs,
        client: reqwest::Client::new(),
        state,
    })
}

pub fn start() -> Fixture {
    try_start(FixtureOptions::default()).expect("the fixture app starts")
}

impl Fixture {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.url())
    }

    /// `GET path` with the echo header: what the guest saw.
    pub async fn echo(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .header("x-fixture-echo", "1")
            .send()
            .await
            .expect("the host answers")
            .json()
            .await
            .expect("a JSON echo")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the host answers")
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the host answers");
        assert_eq!(response.status(), 200, "POST {path} {body}");
        response.json().await.expect("a JSON answer")
    }

    /// Runs `statement` through the guest's PostgreSQL connection.
    pub async fn pg(&self, statement: &str, params: Value) -> Value {
        self.pg_at(&database_url(), statement, params).await
    }

    pub async fn pg_at(&self, address: &str, statement: &str, params: Value) -> Value {
        self.post_json(
            "/pg",
            json!({"address": address, "statement": statement, "params": params}),
        )
        .await
    }

    pub async fn redis(&self, call: Value) -> Value {
        let mut call = call;
        call["address"] = json!(redis_url());
        self.post_json("/redis", call).await
    }

    pub async fn sqlite(&self, statement: &str, params: Value) -> Value {
        self.post_json(
            "/sqlite",
            json!({"database": "default", "statement": statement, "params": params}),
        )
        .await
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// A key prefix no other test uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}:{}:{nanos}:{n}", std::process::id())
}

/// Fails the test, saying how to start PostgreSQL, when it is not there.
pub async fn require_postgres() {
    let url = database_url();
    if let Err(error) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        panic!(
            "PostgreSQL is not reachable at {url}: {error}. Start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or `.ci/run` does it) or set TEST_DATABASE_URL."
        );
    }
}

/// Fails the test, saying how to start Redis, when it is not there.
pub async fn require_redis() {
    let url = redis_url();
    let reachable = match redis::Client::open(url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
        Err(_) => false,
    };
    if !reachable {
        panic!(
            "Redis is not reachable at {url}. Start it (`redis-server --daemonize yes --port 6379`, or `.ci/run` does it) or set TEST_REDIS_URL."
        );
    }
}
