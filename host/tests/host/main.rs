//! The local host, tested through a real component (`tests/fixture`) over
//! HTTP, against the local PostgreSQL and Redis.

mod helpers;
mod outbound_http;
mod timeouts;

use helpers::*;
use serde_json::{Value, json};
use spin_auth_host::Limits;

// ---------------------------------------------------------------- routing

async fn routed(fixture: &Fixture, path: &str) -> (String, String, String) {
    let echo = fixture.echo(path).await;
    let header = |name: &str| {
        echo["headers"][name]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    };
    (
        header("spin-matched-route"),
        header("spin-component-route"),
        header("spin-path-info"),
    )
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let fixture = start();
    let cases = [
        ("/exact", ("/exact", "/exact", "")),
        ("/exact/", ("/exact", "/exact", "")),
        ("/exact/more", ("/...", "", "/exact/more")),
        ("/api", ("/api/...", "/api", "")),
        ("/api/login", ("/api/...", "/api", "/login")),
        ("/api/deep", ("/api/deep/...", "/api/deep", "")),
        ("/api/deep/x/y", ("/api/deep/...", "/api/deep", "/x/y")),
        ("/apix", ("/...", "", "/apix")),
        ("/users/42", ("/users/:user_id", "/users/:user_id", "")),
        ("/", ("/...", "", "/")),
    ];
    for (path, (matched, component, info)) in cases {
        assert_eq!(
            routed(&fixture, path).await,
            (matched.to_owned(), component.to_owned(), info.to_owned()),
            "routing {path}"
        );
    }
}

#[tokio::test]
async fn spin_request_headers_describe_the_request() {
    let fixture = start();
    let echo = fixture.echo("/api/login?next=%2Fx").await;
    let headers = &echo["headers"];
    let port = fixture.host.address().port();
    assert_eq!(
        headers["spin-full-url"],
        format!("http://127.0.0.1:{port}/api/login?next=%2Fx")
    );
    assert_eq!(headers["spin-raw-component-route"], "/api/...");
    assert_eq!(headers["spin-base-path"], "/");
    let client = headers["spin-client-addr"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert_eq!(
        echo["uri"],
        format!("http://127.0.0.1:{port}/api/login?next=%2Fx")
    );
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["environment"], "test");

    let params = fixture.echo("/users/42").await;
    assert_eq!(params["headers"]["spin-path-match-user-id"], "42");
}

#[tokio::test]
async fn a_client_cannot_replace_the_client_address() {
    let fixture = start();
    let echo: Value = fixture
        .client
        .get(fixture.url("/exact"))
        .header("x-fixture-echo", "1")
        .header("spin-client-addr", "6.6.6.6:1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Spin appends its own value; the SDK's header lookup sees the last one.
    let client = echo["headers"]["spin-client-addr"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{client}");
}

#[tokio::test]
async fn a_path_no_route_matches_gets_an_empty_404() {
    // The fixture app has a catch-all; this one serves a single route.
    let built = start();
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip1/release/host_fixture.wasm");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"one\"\n\
             [[trigger.http]]\nroute = \"/only\"\ncomponent = \"web\"\n\
             [component.web]\nsource = {:?}\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let mut options = spin_auth_host::HostOptions::new(&manifest);
    options.state_dir = Some(dir.path().join(".spin"));
    options.log = spin_auth_host::LogSink::Memory(Default::default());
    let host = spin_auth_host::RunningHost::start(options, "127.0.0.1:0".parse().unwrap()).unwrap();
    let response = built
        .client
        .get(format!("{}/other", host.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "");
    let routed = built
        .client
        .get(format!("{}/only", host.url()))
        .header("x-fixture-echo", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);
}

// ---------------------------------------------------------------- guests

#[tokio::test]
async fn a_guest_panic_gives_500_and_the_next_request_is_served() {
    let fixture = start();
    let response = fixture.get("/panic").await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await.unwrap(), "");
    let response = fixture.get("/variables/greeting").await;
    assert_eq!(response.status(), 200);
    let logs = fixture.log_lines().join("\n");
    assert!(
        logs.contains("Error processing request GET /panic"),
        "{logs}"
    );
    assert!(
        logs.contains("[fixture] "),
        "the panic message reaches the log: {logs}"
    );
}

#[tokio::test]
async fn guest_output_is_logged_with_the_component_id_and_each_request_once() {
    let fixture = start();
    assert_eq!(fixture.get("/log").await.status(), 200);
    let logs = fixture.log_lines();
    assert!(
        logs.contains(&"[fixture] fixture says hello on stdout".to_owned()),
        "{logs:?}"
    );
    assert!(
        logs.contains(&"[fixture] fixture says hello on stderr".to_owned()),
        "{logs:?}"
    );
    let request_lines: Vec<_> = logs
        .iter()
        .filter(|l| l.starts_with("GET /log 200 "))
        .collect();
    assert_eq!(request_lines.len(), 1, "{logs:?}");
    // As Spin does, each component's output is also kept in .spin/logs.
    let logs_dir = fixture.state.path().join(".spin/logs");
    let stdout = std::fs::read_to_string(logs_dir.join("fixture_stdout.txt")).unwrap();
    let stderr = std::fs::read_to_string(logs_dir.join("fixture_stderr.txt")).unwrap();
    assert!(stdout.contains("fixture says hello on stdout"), "{stdout}");
    assert!(stderr.contains("fixture says hello on stderr"), "{stderr}");
}

#[tokio::test]
async fn a_hundred_concurrent_requests_are_all_answered() {
    let fixture = start();
    let requests = (0..100).map(|_| fixture.get("/sleep?ms=50"));
    let responses = futures::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == 200));
}

#[tokio::test]
async fn a_guest_that_computes_does_not_hold_up_its_workers_other_requests() {
    // One worker thread: both requests are served by it.
    let fixture = start_with_one_worker();
    let started = std::time::Instant::now();
    let busy = async {
        let response = fixture.get("/busy?ms=4000").await;
        assert_eq!(response.status(), 200);
        started.elapsed()
    };
    let quick = async {
        // Once the busy guest is running, on a connection of its own.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let response = fixture.get("/variables/greeting").await;
        assert_eq!(response.status(), 200);
        started.elapsed()
    };
    let (busy, quick) = tokio::join!(busy, quick);
    // Answered between two of the busy guest's 10 ms slices, not after
    // it (4 s), nor after the many slices a worker runs before it looks at
    // its sockets again when the guest's yield wakes it at once (≈0.6 s
    // each, two of them for a new connection).
    assert!(
        quick < std::time::Duration::from_millis(1000) && quick < busy,
        "quick {quick:?}, busy {busy:?}"
    );
}

/// The fixture served by one worker thread, so that every request meets
/// the same PostgreSQL pool (each worker has its own).
fn start_with_one_worker() -> Fixture {
    try_start(FixtureOptions {
        limits: Limits {
            workers: 1,
            ..Limits::default()
        },
        ..FixtureOptions::default()
    })
    .expect("the fixture app starts")
}

// ---------------------------------------------------------------- variables

async fn variable(fixture: &Fixture, name: &str) -> Value {
    fixture
        .get(&format!("/variables/{name}"))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_variable_comes_from_the_environment_then_dotenv_then_the_default() {
    let default = start();
    assert_eq!(
        variable(&default, "greeting").await["value"],
        "hello, world"
    );

    let dotenv_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dotenv_dir.path().join(".env"),
        "SPIN_VARIABLE_GREETING=from-dotenv\nSPIN_VARIABLE_SECRET_WORD='quoted'\n",
    )
    .unwrap();
    let mut options = FixtureOptions::default();
    options
        .environment
        .retain(|(key, _)| key != "SPIN_VARIABLE_SECRET_WORD");
    options.dotenv_dir = Some(dotenv_dir.path().to_owned());
    let from_dotenv = try_start(options).unwrap();
    assert_eq!(
        variable(&from_dotenv, "greeting").await["value"],
        "from-dotenv, world"
    );
    assert_eq!(
        variable(&from_dotenv, "secret_word").await["value"],
        "quoted"
    );

    let mut options = FixtureOptions::default();
    options
        .environment
        .push(("SPIN_VARIABLE_GREETING".into(), "from-env".into()));
    options.dotenv_dir = Some(dotenv_dir.path().to_owned());
    let from_env = try_start(options).unwrap();
    assert_eq!(
        variable(&from_env, "greeting").await["value"],
        "from-env, world"
    );
}

#[tokio::test]
async fn a_guest_sees_only_its_own_variables() {
    let fixture = start();
    let undeclared = variable(&fixture, "pg_allowed").await;
    assert_eq!(
        undeclared["error"],
        "Error::Undefined(\"no variable for \\\"fixture\\\".\\\"pg_allowed\\\"\")"
    );
    let invalid = variable(&fixture, "Bad").await;
    assert!(
        invalid["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::InvalidName("),
        "{invalid}"
    );
    let other = fixture
        .get("/nodb/variables/greeting")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        other["error"].as_str().unwrap().contains("Undefined"),
        "{other}"
    );
}

#[tokio::test]
async fn a_missing_required_variable_stops_loading_and_names_it() {
    let mut options = FixtureOptions::default();
    options
        .environment
        .retain(|(key, _)| key != "SPIN_VARIABLE_SECRET_WORD");
    let error = try_start(options).err().expect("loading fails");
    let message = format!("{error:#}");
    assert!(message.contains("secret_word"), "{message}");
    assert!(message.contains("SPIN_VARIABLE_SECRET_WORD"), "{message}");
}

// ---------------------------------------------------------------- postgres

/// `SELECT $1::<type>` with one parameter: the column type and value the
/// guest reads back.
async fn pg_round_trip(fixture: &Fixture, sql_type: &str, param: Value) -> (String, String) {
    let answer = fixture
        .pg(&format!("SELECT $1::{sql_type} AS v"), json!([param]))
        .await;
    assert!(answer.get("error").is_none(), "{sql_type}: {answer}");
    (
        answer["columns"][0][1].as_str().unwrap().to_owned(),
        answer["rows"][0][0].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn every_postgres_parameter_type_round_trips() {
    require_postgres().await;
    let fixture = start();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("bool", json!({"boolean": true}), "Boolean", "Boolean(true)"),
        ("int2", json!({"int16": -7}), "Int16", "Int16(-7)"),
        (
            "int4",
            json!({"int32": 2147483647}),
            "Int32",
            "Int32(2147483647)",
        ),
        (
            "int8",
            json!({"int64": -9007199254740993i64}),
            "Int64",
            "Int64(-9007199254740993)",
        ),
        (
            "float4",
            json!({"floating32": 1.5}),
            "Floating32",
            "Floating32(1.5)",
        ),
        (
            "float8",
            json!({"floating64": -0.25}),
            "Floating64",
            "Floating64(-0.25)",
        ),
        (
            "text",
            json!({"str": "héllo ' \"; --"}),
            "Str",
            "Str(\"héllo ' \\\"; --\")",
        ),
        ("varchar", json!({"str": "v"}), "Str", "Str(\"v\")"),
        (
            "bytea",
            json!({"binary": [0, 1, 255]}),
            "Binary",
            "Binary([0, 1, 255])",
        ),
        (
            "date",
            json!({"date": [2024, 2, 29]}),
            "Date",
            "Date((2024, 2, 29))",
        ),
        (
            "time",
            json!({"time": [13, 14, 15, 123456000]}),
            "Time",
            "Time((13, 14, 15, 123456000))",
        ),
        (
            "timestamp",
            json!({"datetime": [2024, 2, 29, 23, 59, 58, 1000]}),
            "Datetime",
            "Datetime((2024, 2, 29, 23, 59, 58, 1000))",
        ),
        (
            "uuid",
            json!({"uuid": "67E55044-10B1-426F-9247-BB680E5FE0C8"}),
            "Uuid",
            "Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
        ),
        (
            "numeric",
            json!({"decimal": "12345.678900"}),
            "Decimal",
            "Decimal(\"12345.678900\")",
        ),
        (
            "int4range",
            json!({"range-int32": [[1, "inclusive"], [10, "inclusive"]]}),
            "RangeInt32",
            "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((11, RangeBoundKind::Exclusive))))",
        ),
        (
            "int8range",
            json!({"range-int64": [null, [5, "exclusive"]]}),
            "RangeInt64",
            "RangeInt64((None, Some((5, RangeBoundKind::Exclusive))))",
        ),
        (
            "numrange",
            json!({"range-decimal": [["1.5", "exclusive"], null]}),
            "RangeDecimal",
            "RangeDecimal((Some((\"1.5\", RangeBoundKind::Exclusive)), None))",
        ),
        (
            "int4[]",
            json!({"array-int32": [1, null, 3]}),
            "ArrayInt32",
            "ArrayInt32([Some(1), None, Some(3)])",
        ),
        (
            "int8[]",
            json!({"array-int64": [9]}),
            "ArrayInt64",
            "ArrayInt64([Some(9)])",
        ),
        (
            "numeric[]",
            json!({"array-decimal": ["0.1", null]}),
            "ArrayDecimal",
            "ArrayDecimal([Some(\"0.1\"), None])",
        ),
        (
            "text[]",
            json!({"array-str": ["a", null]}),
            "ArrayStr",
            "ArrayStr([Some(\"a\"), None])",
        ),
        (
            "interval",
            json!({"interval": [1500000, 2, 3]}),
            "Interval",
            "Interval(Interval { micros: 1500000, days: 2, months: 3 })",
        ),
        ("text", json!({"db-null": null}), "Str", "DbNull"),
    ];
    for (sql_type, param, data_type, value) in cases {
        assert_eq!(
            pg_round_trip(&fixture, sql_type, param).await,
            (
                format!("DbDataType::{data_type}"),
                format!("DbValue::{value}")
            ),
            "{sql_type}"
        );
    }
}

#[tokio::test]
async fn postgres_special_cases_match_spin() {
    require_postgres().await;
    let fixture = start();
    // jsonb comes back compact; json and other types have no variant.
    let (ty, value) = pg_round_trip(&fixture, "jsonb", json!({"jsonb": {"a": [1, 2]}})).await;
    assert_eq!(ty, "DbDataType::Jsonb");
    assert!(value.starts_with("DbValue::Jsonb([123,"), "{value}");
    let inet = fixture.pg("SELECT '10.0.0.1'::inet AS v", json!([])).await;
    assert_eq!(inet["columns"][0][1], "DbDataType::Other(\"inet\")");
    assert!(
        inet["rows"][0][0]
            .as_str()
            .unwrap()
            .starts_with("DbValue::Unsupported("),
        "{inet}"
    );
    // `timestamp` parameters are epoch seconds bound to timestamptz.
    let epoch = fixture
        .pg(
            "SELECT extract(epoch FROM $1::timestamptz)::int8 AS v",
            json!([{"timestamp": 1700000000}]),
        )
        .await;
    assert_eq!(epoch["rows"][0][0], "DbValue::Int64(1700000000)");
    // Spin cannot read timestamptz columns, so neither can this host.
    let tz = fixture.pg("SELECT now() AS v", json!([])).await;
    assert!(
        tz["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::QueryFailed(QueryError::Text("),
        "{tz}"
    );
    // No rows, no columns: Spin reads the columns from the first row.
    let empty = fixture.pg("SELECT 1 AS v WHERE false", json!([])).await;
    assert_eq!(empty, json!({"columns": [], "rows": []}));
}

#[tokio::test]
async fn postgres_errors_use_spins_variants() {
    require_postgres().await;
    let fixture = start();
    let syntax = fixture.pg("SELEC 1", json!([])).await;
    let error = syntax["error"].as_str().unwrap();
    assert!(
        error.starts_with("Error::QueryFailed(QueryError::DbError("),
        "{error}"
    );
    assert!(error.contains("code: \"42601\""), "{error}");

    let bad_uuid = fixture
        .pg("SELECT $1::uuid", json!([{"uuid": "nope"}]))
        .await;
    assert!(
        bad_uuid["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::BadParameter("),
        "{bad_uuid}"
    );

    let mut call = json!({"address": database_url(), "statement": "SELECT $1::uuid", "params": [{"uuid": "nope"}], "execute": true});
    let executed = fixture.post_json("/pg", call.take()).await;
    assert!(
        executed["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::ValueConversionFailed("),
        "{executed}"
    );

    let two = fixture
        .post_json(
            "/pg",
            json!({"address": database_url(), "statement": "SELECT 1; SELECT 2", "execute": true}),
        )
        .await;
    assert!(
        two["error"].as_str().unwrap().contains("QueryFailed"),
        "one statement per call: {two}"
    );
}

#[tokio::test]
async fn postgres_execute_reports_affected_rows() {
    require_postgres().await;
    let fixture = start();
    let table = format!("host_rows_{}", std::process::id());
    let execute = |statement: String, params: Value| {
        fixture.post_json(
            "/pg",
            json!({"address": database_url(), "statement": statement, "params": params, "execute": true}),
        )
    };
    execute(format!("DROP TABLE IF EXISTS {table}"), json!([])).await;
    execute(format!("CREATE TABLE {table} (n int4)"), json!([])).await;
    let inserted = execute(
        format!("INSERT INTO {table} SELECT generate_series(1, $1::int4)"),
        json!([{"int32": 3}]),
    )
    .await;
    assert_eq!(inserted, json!({"affected": 3}));
    execute(format!("DROP TABLE {table}"), json!([])).await;
}

#[tokio::test]
async fn a_postgres_address_not_in_allowed_outbound_hosts_is_refused() {
    let fixture = start();
    let answer = fixture
        .pg_at(
            "postgres://postgres@127.0.0.1:5999/test?sslmode=disable",
            "SELECT 1",
            json!([]),
        )
        .await;
    assert_eq!(
        answer["error"],
        "Error::ConnectionFailed(\"address postgres://127.0.0.1:5999 is not permitted\")"
    );
}

#[tokio::test]
async fn every_host_of_a_postgres_address_must_be_allowed() {
    let fixture = start();
    let allowed = allowed_entry(&database_url());
    let host = allowed.trim_start_matches("postgres://");
    for address in [
        format!("postgres://postgres@{host}/test?sslmode=disable&host=10.9.9.9"),
        format!("postgres://postgres@{host},10.9.9.9:5432/test?sslmode=disable"),
        "postgres://postgres@/test?host=/var/run/postgresql&sslmode=disable".to_owned(),
    ] {
        let answer = fixture.pg_at(&address, "SELECT 1", json!([])).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("Error::ConnectionFailed("),
            "{address}: {answer}"
        );
        assert!(
            error.contains("is not permitted") || error.contains("Unix sockets"),
            "{address}: {answer}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_postgres_gives_connection_failed() {
    // Allowed, but nothing listens there.
    let mut options = FixtureOptions::default();
    options
        .environment
        .retain(|(key, _)| key != "SPIN_VARIABLE_PG_ALLOWED");
    options.environment.push((
        "SPIN_VARIABLE_PG_ALLOWED".into(),
        "postgres://127.0.0.1:1".into(),
    ));
    let fixture = try_start(options).unwrap();
    let answer = fixture
        .pg_at(
            "postgres://postgres@127.0.0.1:1/test?sslmode=disable",
            "SELECT 1",
            json!([]),
        )
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::ConnectionFailed("),
        "{answer}"
    );
}

// ---------------------------------------------------------------- redis

#[tokio::test]
async fn redis_typed_commands_work() {
    require_redis().await;
    let fixture = start();
    let key = unique("host-test");
    let set_key = format!("{key}:set");
    let counter = format!("{key}:counter");
    assert_eq!(
        fixture.redis(json!({"op": "get", "key": key})).await,
        json!({"ok": null})
    );
    fixture
        .redis(json!({"op": "set", "key": key, "value": "v1"}))
        .await;
    assert_eq!(
        fixture.redis(json!({"op": "get", "key": key})).await,
        json!({"ok": "v1"})
    );
    assert_eq!(
        fixture.redis(json!({"op": "incr", "key": counter})).await,
        json!({"ok": 1})
    );
    assert_eq!(
        fixture.redis(json!({"op": "incr", "key": counter})).await,
        json!({"ok": 2})
    );
    assert_eq!(
        fixture
            .redis(json!({"op": "sadd", "key": set_key, "values": ["a", "b", "a"]}))
            .await,
        json!({"ok": 2})
    );
    assert_eq!(
        fixture
            .redis(json!({"op": "srem", "key": set_key, "values": ["a"]}))
            .await,
        json!({"ok": 1})
    );
    assert_eq!(
        fixture
            .redis(json!({"op": "smembers", "key": set_key}))
            .await,
        json!({"ok": ["b"]})
    );
    assert_eq!(
        fixture
            .redis(json!({"op": "publish", "key": format!("{key}:channel"), "value": "x"}))
            .await,
        json!({"ok": null})
    );
    assert_eq!(
        fixture
            .redis(json!({"op": "del", "values": [key, counter, set_key]}))
            .await,
        json!({"ok": 3})
    );
}

#[tokio::test]
async fn redis_execute_runs_atomic_commands() {
    require_redis().await;
    let fixture = start();
    let key = unique("host-test-exec");
    let execute = |args: Value, command: &str| {
        fixture.redis(json!({"op": "execute", "command": command, "args": args}))
    };
    assert_eq!(
        execute(json!([key, "first", "NX", "EX", 30]), "SET").await,
        json!({"ok": ["RedisResult::Status(\"OK\")"]})
    );
    assert_eq!(
        execute(json!([key, "second", "NX", "EX", 30]), "SET").await,
        json!({"ok": ["RedisResult::Nil"]})
    );
    let ttl = execute(json!([key]), "TTL").await;
    let ttl = ttl["ok"][0].as_str().unwrap();
    assert!(ttl.starts_with("RedisResult::Int64("), "{ttl}");
    assert_eq!(
        execute(json!([key]), "GETDEL").await,
        json!({"ok": ["Binary(first)"]})
    );
    assert_eq!(
        execute(json!([key]), "GETDEL").await,
        json!({"ok": ["RedisResult::Nil"]})
    );
    // EVAL replies are flattened, as Spin does.
    let script =
        "redis.call('SET', KEYS[1], ARGV[1]); return {1, redis.call('GET', KEYS[1]), {2, 'x'}}";
    assert_eq!(
        execute(json!([script, 1, key, "from-lua"]), "EVAL").await,
        json!({"ok": ["RedisResult::Int64(1)", "Binary(from-lua)", "RedisResult::Int64(2)", "Binary(x)"]})
    );
    let error = execute(json!([key]), "NOSUCHCOMMAND").await;
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::Other("),
        "{error}"
    );
    execute(json!([key]), "DEL").await;
}

#[tokio::test]
async fn a_redis_address_not_in_allowed_outbound_hosts_is_refused() {
    let fixture = start();
    let answer = fixture
        .post_json(
            "/redis",
            json!({"address": "redis://127.0.0.1:6390", "op": "get", "key": "k"}),
        )
        .await;
    assert_eq!(answer, json!({"error": "Error::InvalidAddress"}));
}

// ---------------------------------------------------------------- sqlite

#[tokio::test]
async fn sqlite_default_database_keeps_data_across_restarts() {
    let state = tempfile::tempdir().unwrap();
    let state_path = state.path().to_owned();
    let fixture = try_start(FixtureOptions {
        state: Some(state),
        ..FixtureOptions::default()
    })
    .unwrap();
    fixture
        .sqlite(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL, raw BLOB)",
            json!([]),
        )
        .await;
    fixture
        .sqlite(
            "INSERT INTO notes (body, score, raw) VALUES (?, ?, ?)",
            json!(["it's; DROP TABLE notes", 2.5, null]),
        )
        .await;
    let rows = fixture
        .sqlite("SELECT id, body, score, raw FROM notes", json!([]))
        .await;
    assert_eq!(
        rows,
        json!({
            "columns": ["id", "body", "score", "raw"],
            "rows": [["Value::Integer(1)", "Value::Text(\"it's; DROP TABLE notes\")", "Value::Real(2.5)", "Value::Null"]]
        })
    );
    // Columns are known even when there are no rows.
    let empty = fixture
        .sqlite("SELECT body FROM notes WHERE id = ?", json!([99]))
        .await;
    assert_eq!(empty, json!({"columns": ["body"], "rows": []}));
    let error = fixture.sqlite("SELECT * FROM missing", json!([])).await;
    assert_eq!(
        error,
        json!({"error": "Error::Io(\"no such table: missing\")"})
    );

    let state = fixture.state;
    drop(fixture.host);
    assert!(state_path.join(".spin/sqlite_db.db").is_file());
    let again = try_start(FixtureOptions {
        state: Some(state),
        ..FixtureOptions::default()
    })
    .unwrap();
    let rows = again
        .sqlite("SELECT count(*) AS n FROM notes", json!([]))
        .await;
    assert_eq!(rows["rows"][0][0], "Value::Integer(1)");
}

#[tokio::test]
async fn sqlite_needs_the_database_in_the_manifest() {
    let fixture = start();
    let denied = fixture
        .post_json(
            "/nodb/sqlite",
            json!({"database": "default", "statement": "SELECT 1"}),
        )
        .await;
    assert_eq!(denied, json!({"error": "Error::AccessDenied"}));
    let unknown = fixture
        .post_json(
            "/sqlite",
            json!({"database": "other", "statement": "SELECT 1"}),
        )
        .await;
    assert_eq!(unknown, json!({"error": "Error::AccessDenied"}));
}

#[tokio::test]
async fn an_open_sqlite_transaction_does_not_leak_into_the_next_request() {
    let fixture = start();
    fixture
        .sqlite("CREATE TABLE t (n INTEGER)", json!([]))
        .await;
    // The guest's connection is dropped at the end of the request with the
    // transaction still open; were it lent out like that, the next insert
    // would join it and be lost when the host stops.
    fixture.sqlite("BEGIN", json!([])).await;
    fixture.sqlite("INSERT INTO t VALUES (1)", json!([])).await;
    let state = fixture.state;
    drop(fixture.host);
    let again = try_start(FixtureOptions {
        state: Some(state),
        ..FixtureOptions::default()
    })
    .unwrap();
    let rows = again.sqlite("SELECT count(*) FROM t", json!([])).await;
    assert_eq!(rows["rows"][0][0], "Value::Integer(1)");
}

#[tokio::test]
async fn postgres_session_state_does_not_leak_between_requests() {
    require_postgres().await;
    let fixture = start_with_one_worker();
    let execute = |statement: &str| {
        fixture.post_json(
            "/pg",
            json!({"address": database_url(), "statement": statement, "execute": true}),
        )
    };
    // Each request is a new guest connection from the pool; a connection
    // whose session was changed is not lent again.
    for _ in 0..3 {
        execute("SET application_name = 'leaked'").await;
        execute("BEGIN").await;
        let name = fixture
            .pg("SELECT current_setting('application_name') AS v", json!([]))
            .await;
        assert_ne!(name["rows"][0][0], "DbValue::Str(\"leaked\")", "{name}");
    }
    // A connection left in a transaction was closed, not pooled: none of
    // this app's connections waits idle in one.
    let idle = fixture
        .pg(
            "SELECT count(*) AS v FROM pg_stat_activity \
             WHERE state = 'idle in transaction' AND datname = current_database() \
             AND pid <> pg_backend_pid()",
            json!([]),
        )
        .await;
    assert_eq!(idle["rows"][0][0], "DbValue::Int64(0)", "{idle}");
}

#[tokio::test]
async fn a_connection_whose_settings_end_with_the_transaction_is_lent_again() {
    require_postgres().await;
    let fixture = start_with_one_worker();
    // The backend process that served each of a few sequential requests.
    let backends = |statement: &'static str| {
        let fixture = &fixture;
        async move {
            let mut pids = std::collections::BTreeSet::new();
            for _ in 0..4 {
                let rows = fixture.pg(statement, json!([])).await;
                pids.insert(rows["rows"][0][0].to_string());
            }
            pids
        }
    };
    // Transaction-local settings: one pooled connection serves them all.
    let local = backends(
        "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
         SELECT pg_backend_pid() AS v FROM relaxed",
    )
    .await;
    assert_eq!(local.len(), 1, "{local:?}");
    // A session setting: each connection is closed after its request.
    let session = backends(
        "SELECT pg_backend_pid() AS v, set_config('application_name', 'leaked', false) AS w",
    )
    .await;
    assert_eq!(session.len(), 4, "{session:?}");
}

/// Runs `steps` on one connection in one request: what each query gave.
async fn pg_script(fixture: &Fixture, steps: Value) -> Vec<Value> {
    let answer = fixture
        .post_json(
            "/pg-script",
            json!({"address": database_url(), "steps": steps}),
        )
        .await;
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .clone()
}

/// The fixture with a pool of one PostgreSQL connection, so that a
/// connection lent at the wrong time shows.
fn start_with_one_pg_connection() -> Fixture {
    try_start(FixtureOptions {
        limits: Limits {
            pg_connections: 1,
            // A worker keeps a pool of its own: one worker, one pool.
            workers: 1,
            ..Limits::default()
        },
        ..FixtureOptions::default()
    })
    .expect("the fixture app starts")
}

#[tokio::test]
async fn a_transaction_or_a_session_setting_keeps_its_connection_between_statements() {
    require_postgres().await;
    // One pooled connection: a request that gave it back in the middle of
    // a transaction would lend its transaction to the next request.
    let fixture = start_with_one_pg_connection();
    let mark = "SELECT coalesce(current_setting('spin_auth.mark', true), '')";
    let name = "SELECT current_setting('application_name')";
    // Another request, once the first has run its first statements.
    let meanwhile = |statement: &'static str| {
        let fixture = &fixture;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            pg_script(fixture, json!([{ "query": statement }])).await
        }
    };
    let (transaction, other) = tokio::join!(
        pg_script(
            &fixture,
            json!([
                {"query": "BEGIN"},
                {"query": "SELECT set_config('spin_auth.mark', 'in-transaction', true)"},
                {"sleep_ms": 1200},
                {"query": mark},
                {"query": "COMMIT"},
            ]),
        ),
        meanwhile(mark),
    );
    assert_eq!(
        transaction[2],
        json!("DbValue::Str(\"in-transaction\")"),
        "{transaction:?}"
    );
    assert_eq!(other, vec![json!("DbValue::Str(\"\")")]);
    let (session, other) = tokio::join!(
        pg_script(
            &fixture,
            json!([
                {"query": "SELECT set_config('application_name', 'kept', false)"},
                {"sleep_ms": 1200},
                {"query": name},
            ]),
        ),
        meanwhile(name),
    );
    assert_eq!(session[1], json!("DbValue::Str(\"kept\")"), "{session:?}");
    assert_ne!(other, vec![json!("DbValue::Str(\"kept\")")]);
    // That connection was closed after its request, not lent again.
    let next = pg_script(&fixture, json!([{ "query": name }])).await;
    assert_ne!(next, vec![json!("DbValue::Str(\"kept\")")]);
}

#[tokio::test]
async fn a_request_holds_no_connection_while_it_works_between_statements() {
    require_postgres().await;
    let fixture = start_with_one_pg_connection();
    // A request that pauses 1.5 s between two statements, as a login
    // hashes a password between its reads and writes...
    let slow = pg_script(
        &fixture,
        json!([{"query": "SELECT 1"}, {"sleep_ms": 1500}, {"query": "SELECT 2"}]),
    );
    // ...and, once it has run its first statement, another request.
    let quick = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        pg_script(&fixture, json!([{"query": "SELECT 3"}])).await
    };
    let slow = async { (slow.await, std::time::Instant::now()) };
    let quick = async { (quick.await, std::time::Instant::now()) };
    let ((slow, slow_done), (quick, quick_done)) = tokio::join!(slow, quick);
    assert_eq!(
        slow,
        vec![json!("DbValue::Int32(1)"), json!("DbValue::Int32(2)")]
    );
    assert_eq!(quick, vec![json!("DbValue::Int32(3)")]);
    // Had the first request held the only connection through its pause, the
    // second could not have finished before it.
    assert!(
        quick_done < slow_done,
        "the second request waited for the first to give back the only connection"
    );
}

#[tokio::test]
async fn a_statement_prepared_before_a_schema_change_is_prepared_again() {
    require_postgres().await;
    let fixture = start_with_one_worker();
    let table = format!("host_prepared_{}", std::process::id());
    let execute = |statement: String| {
        fixture.post_json(
            "/pg",
            json!({"address": database_url(), "statement": statement, "execute": true}),
        )
    };
    execute(format!("DROP TABLE IF EXISTS {table}")).await;
    execute(format!("CREATE TABLE {table} (a int4)")).await;
    execute(format!("INSERT INTO {table} VALUES (1)")).await;
    let select = format!("SELECT * FROM {table}");
    // Prepared on the pooled connection and kept there.
    let before = fixture.pg(&select, json!([])).await;
    assert_eq!(
        before["rows"][0].as_array().map(Vec::len),
        Some(1),
        "{before}"
    );
    execute(format!("ALTER TABLE {table} ADD COLUMN b int4")).await;
    // The cached statement may fail once ("cached plan must not change
    // result type"); it is then forgotten, and the next call prepares anew.
    let mut after = fixture.pg(&select, json!([])).await;
    if after.get("error").is_some() {
        after = fixture.pg(&select, json!([])).await;
    }
    assert_eq!(
        after["rows"][0].as_array().map(Vec::len),
        Some(2),
        "{after}"
    );
    execute(format!("DROP TABLE {table}")).await;
}
