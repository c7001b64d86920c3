//! `spawn_app` starts the real components on the local host against a
//! fresh database and key prefix, and `TestApp` has a method per endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use spin_auth_host::{HostOptions, LogSink, RunningHost};

/// Where the suite's data lives. Every test runs on each combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL for data, Redis for sessions (production).
    PostgresRedis,
    /// PostgreSQL for everything.
    Postgres,
    /// Embedded SQLite for data, Redis for sessions.
    SqliteRedis,
    /// Embedded SQLite for everything (the zero-setup default).
    Sqlite,
}

impl Backend {
    pub fn uses_postgres(self) -> bool {
        matches!(self, Backend::PostgresRedis | Backend::Postgres)
    }

    pub fn uses_redis(self) -> bool {
        matches!(self, Backend::PostgresRedis | Backend::SqliteRedis)
    }
}

pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A test's own PostgreSQL database, dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("spin_auth_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&database_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("can create a test database");
        Self {
            url: with_database(&database_url(), &name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// Runs `cleanup` to completion from a `Drop`, which cannot await: on a
/// thread with its own runtime, waited for, so nothing is left behind.
fn clean_up<F: std::future::Future<Output = ()> + Send + 'static>(cleanup: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(cleanup);
    })
    .join();
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up(async move {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&database_url(), tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(error) => panic!(
            "PostgreSQL is not reachable at {url}: {error}. Start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or run .ci/run) or set TEST_DATABASE_URL."
        ),
    }
}

pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("TEST_REDIS_URL is a Redis URL");
    match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "Redis is not reachable at {url}: {error}. Start it (`redis-server --daemonize yes --port 6379`, or run .ci/run) or set TEST_REDIS_URL."
        ),
    }
}

/// Options a test may change before the app starts.
#[derive(Default)]
pub struct AppOptions {
    /// Extra variables, by name (lower-case, as in spin.toml).
    pub variables: Vec<(&'static str, String)>,
    /// Reuse this state folder (for restart tests).
    pub state: Option<Arc<tempfile::TempDir>>,
    /// Reuse this database (for restart tests).
    pub database: Option<Arc<TestDatabase>>,
    /// Reuse this Redis prefix.
    pub redis_prefix: Option<String>,
    /// Set no variables at all (the zero-setup run).
    pub bare: bool,
    /// Serve this manifest instead of the app's spin.toml.
    pub manifest: Option<PathBuf>,
}

impl AppOptions {
    /// The defaults plus these variables.
    pub fn with_variables(variables: Vec<(&'static str, String)>) -> Self {
        Self {
            variables,
            ..Self::default()
        }
    }
}

/// These variables, and the test itself (127.0.0.1) as a trusted proxy: the
/// test speaks for several clients through X-Forwarded-For, which the app
/// believes only from a trusted proxy.
pub fn throttled(mut variables: Vec<(&'static str, String)>) -> AppOptions {
    variables.push(("trusted_proxies", "127.0.0.1".into()));
    AppOptions::with_variables(variables)
}

/// A running app and what a test needs to inspect it.
pub struct TestApp {
    pub backend: Backend,
    pub host: RunningHost,
    pub client: reqwest::Client,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub state: Arc<tempfile::TempDir>,
    pub database: Option<Arc<TestDatabase>>,
    pub redis_prefix: String,
    pub jwt_key: String,
}

pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spin.toml")
}

/// The app on `backend` with the default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: AppOptions) -> TestApp {
    let database = match (backend.uses_postgres(), options.database) {
        (true, Some(database)) => Some(database),
        (true, None) => Some(Arc::new(TestDatabase::create().await)),
        (false, _) => None,
    };
    if backend.uses_redis() {
        redis_connection().await;
    }
    let state = options
        .state
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("a temporary folder")));
    let redis_prefix = options
        .redis_prefix
        .unwrap_or_else(|| format!("test:{}:", uuid::Uuid::new_v4().simple()));
    let jwt_key = format!("test-key-{}", uuid::Uuid::new_v4().simple());
    // Like jwt_key: PostgreSQL needs it for two-factor sign-in.
    let mfa_key = format!("test-mfa-key-{}", uuid::Uuid::new_v4().simple());
    let mut variables: Vec<(String, String)> = Vec::new();
    if !options.bare {
        variables.push(("jwt_key".into(), jwt_key.clone()));
        variables.push(("mfa_encryption_key".into(), mfa_key.clone()));
        if let Some(database) = &database {
            variables.push(("database_url".into(), database.url.clone()));
        }
        if backend.uses_redis() {
            variables.push(("redis_url".into(), redis_url()));
            variables.push(("redis_key_prefix".into(), redis_prefix.clone()));
        }
    }
    for (name, value) in options.variables {
        variables.retain(|(existing, _)| existing != name);
        variables.push((name.to_owned(), value));
    }
    let environment = variables
        .into_iter()
        .map(|(name, value)| {
            (
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            )
        })
        .collect();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let empty = state.path().join("no-dotenv");
    std::fs::create_dir_all(&empty).unwrap();
    let host_options = HostOptions {
        manifest: options.manifest.unwrap_or_else(manifest),
        environment,
        dotenv_dir: empty,
        state_dir: Some(state.path().join(".spin")),
        build: true,
        log: LogSink::Memory(logs.clone()),
    };
    // Loading compiles or builds; keep it off the async runtime's threads.
    let host = tokio::task::spawn_blocking(move || {
        RunningHost::start(host_options, SocketAddr::from(([127, 0, 0, 1], 0)))
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| panic!("the app starts: {error:#}"));
    TestApp {
        backend,
        host,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        logs,
        state,
        database,
        redis_prefix,
        jwt_key: if options.bare { String::new() } else { jwt_key },
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap_or_default().to_owned())
    }

    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The problem `code`, for error responses.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// The refresh token set by `Set-Cookie`, if any.
    pub fn refresh_cookie(&self) -> Option<String> {
        self.headers_all("set-cookie").iter().find_map(|cookie| {
            cookie
                .strip_prefix("__Secure-refresh_token=")
                .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        })
    }

    /// The access token of a login or refresh answer.
    pub fn access_token(&self) -> String {
        self.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token in {} {}", self.status, self.text))
            .to_owned()
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}",
            self.text
        );
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The token of the newest verification link for `email` in the app's log
/// (without `mail_url`, messages are printed there).
pub fn verification_token_from_log(app: &TestApp, email: &str) -> Option<String> {
    let log = app.log_text();
    let start = log.rfind(&format!(" to {email} (kept in the outbox"))?;
    crate::mail_sink::link_token(&log[start..], "/verify-email")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.url())
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn patch_json(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        let mut request = self.client.patch(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// A DELETE with a JSON body (`DELETE /auth/me {current_password}`).
    pub async fn delete_json(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        let mut request = self.client.delete(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/register",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn login_from(&self, email: &str, password: &str, ip: &str) -> Reply {
        // The app believes X-Forwarded-For only from trusted proxies; tests
        // that need distinct clients configure 127.0.0.1 as one.
        self.send(
            self.client
                .post(self.url("/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// Registers `email` and verifies it with the link from the log (the
    /// app has no `mail_url`); what an admin in `admin_emails` needs.
    pub async fn register_verified(&self, email: &str, password: &str) -> Reply {
        let registered = self.register(email, password).await;
        assert_eq!(registered.status, 201, "{}", registered.text);
        let token =
            verification_token_from_log(self, email).expect("a verification link in the log");
        let verified = self
            .post_json("/auth/verify-email", json!({"token": token}), None)
            .await;
        assert_eq!(verified.status, 200, "{}", verified.text);
        verified
    }

    /// Registers `email` as a client at `ip` (through X-Forwarded-For; see
    /// [`throttled`]).
    pub async fn register_from(&self, email: &str, ip: &str) -> Reply {
        self.send(
            self.client
                .post(self.url("/auth/register"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": email, "password": PASSWORD})),
        )
        .await
    }

    /// Registers user number `n` (`user{n}@example.com`).
    pub async fn register_as(&self, n: u32) -> Reply {
        self.register(&format!("user{n}@example.com"), PASSWORD)
            .await
    }

    /// Registers and logs in a fresh user; returns (email, login reply).
    pub async fn signed_in_user(&self) -> (String, Reply) {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let registered = self.register(&email, PASSWORD).await;
        assert_eq!(registered.status, 201, "{}", registered.text);
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.text);
        (email, login)
    }

    pub async fn refresh_with_cookie(&self, token: &str) -> Reply {
        self.send(
            self.client
                .post(self.url("/auth/refresh"))
                .header("cookie", format!("__Secure-refresh_token={token}")),
        )
        .await
    }

    pub async fn refresh_with_body(&self, token: &str) -> Reply {
        self.post_json("/auth/refresh", json!({"refresh_token": token}), None)
            .await
    }

    pub async fn logout_with_cookie(&self, token: &str, scope: Option<&str>) -> Reply {
        let path = match scope {
            Some(scope) => format!("/auth/logout?scope={scope}"),
            None => "/auth/logout".to_owned(),
        };
        self.send(
            self.client
                .post(self.url(&path))
                .header("cookie", format!("__Secure-refresh_token={token}")),
        )
        .await
    }

    pub async fn topics(&self, token: &str) -> Reply {
        self.get("/questions/topics", Some(token)).await
    }

    /// Runs SQL against the app's database (PostgreSQL or the SQLite file)
    /// and returns each row's columns as text.
    pub async fn sql(&self, statement: &str) -> Vec<Vec<Option<String>>> {
        match &self.database {
            Some(database) => {
                let client = database.client().await;
                let rows = client
                    .simple_query(statement)
                    .await
                    .expect("the query runs");
                rows.iter()
                    .filter_map(|message| match message {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
            None => {
                let path = self.state.path().join(".spin/sqlite_db.db");
                let statement = statement.to_owned();
                tokio::task::spawn_blocking(move || {
                    let connection = rusqlite::Connection::open(path).unwrap();
                    connection
                        .busy_timeout(std::time::Duration::from_secs(5))
                        .unwrap();
                    let mut prepared = connection.prepare(&statement).unwrap();
                    let columns = prepared.column_count();
                    prepared
                        .query_map([], |row| {
                            Ok((0..columns)
                                .map(|i| match row.get_ref(i).unwrap() {
                                    rusqlite::types::ValueRef::Null => None,
                                    rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                    rusqlite::types::ValueRef::Real(n) => Some(n.to_string()),
                                    rusqlite::types::ValueRef::Text(t)
                                    | rusqlite::types::ValueRef::Blob(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                })
                                .collect())
                        })
                        .unwrap()
                        .map(Result::unwrap)
                        .collect()
                })
                .await
                .unwrap()
            }
        }
    }

    /// Every Redis key under this app's prefix.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut connection = redis_connection().await;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !self.backend.uses_redis() {
            return;
        }
        let prefix = self.redis_prefix.clone();
        clean_up(async move {
            let Ok(client) = redis::Client::open(redis_url().as_str()) else {
                return;
            };
            let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut connection)
                    .await;
            }
        });
    }
}

/// Signs `header.claims` with `key` (HS256), as a forger who knows the key
/// would.
pub fn sign_jwt(header: &Value, claims: &Value, key: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(header), encode(claims));
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(hmac_sha256(key, input.as_bytes()))
    )
}

/// The parts of a JWT, decoded.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A TCP proxy in front of a real server, which a test can cut and restore
/// to play an outage without touching the server itself.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (up, links) = (up.clone(), links.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        });
        Self {
            port,
            up,
            links,
            accept,
        }
    }

    /// Refuses new connections and breaks the open ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The socket address of a URL's host and port.
pub fn socket_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap();
    let port = parsed
        .port_or_known_default()
        .unwrap_or(match parsed.scheme() {
            "redis" => 6379,
            _ => 5432,
        });
    format!("{host}:{port}").parse().unwrap()
}

/// `url` with its port replaced.
pub fn with_port(url: &str, port: u16) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_port(Some(port)).unwrap();
    parsed.to_string()
}
