//! The service, tested from outside: the built `.wasm` components on the
//! local host, over HTTP, against real PostgreSQL, Redis and SQLite.
//!
//! Every test takes a [`Backend`] and runs once per combination of data
//! store (PostgreSQL, embedded SQLite) and session store (Redis, the SQL
//! database): see [`on_every_backend!`].

mod admin;
mod admin_deletion;
mod admin_listing;
mod conformance;
mod helpers;
mod http_semantics;
mod mail_sink;
mod mfa;
mod migrations;
mod openapi;
mod outages;
mod protected;
mod questions;
mod recovery;
mod review;
mod sessions;
mod signing_keys;
mod tokens;
mod zero_setup;

use helpers::*;
use serde_json::json;

/// Generates one `#[tokio::test]` per backend for each named test.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod postgres_redis {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::PostgresRedis).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::Postgres).await } )*
        }
        mod sqlite_redis {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::SqliteRedis).await } )*
        }
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test($crate::helpers::Backend::Sqlite).await } )*
        }
    };
}

on_every_backend!(
    the_whole_session_lifecycle_works,
    registration_returns_the_user_and_where_to_find_it,
    a_duplicate_email_conflicts_whatever_its_case,
    invalid_registrations_name_every_field_at_fault,
    a_body_that_is_not_json_is_a_400,
    login_accepts_the_oauth2_password_form,
    unknown_email_and_wrong_password_fail_identically,
    a_passlib_hash_logs_in_and_is_upgraded,
    the_refresh_cookie_has_the_contracted_attributes,
    refresh_tokens_are_stored_only_as_digests,
    health_reports_every_store,
    unknown_routes_and_methods_get_problems,
    head_is_answered_wherever_get_is,
);

async fn the_whole_session_lifecycle_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "Lifecycle@Example.com";
    assert_eq!(app.register(email, PASSWORD).await.status, 201);

    let login = app.login("lifecycle@example.com", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let body = login.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "lifecycle@example.com");
    let access = login.access_token();
    let first_refresh = login
        .refresh_cookie()
        .expect("login sets the refresh cookie");

    assert_eq!(app.topics(&access).await.status, 200);
    assert_eq!(
        app.get("/auth/me", Some(&access)).await.json()["email"],
        "lifecycle@example.com"
    );

    let refreshed = app.refresh_with_cookie(&first_refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let second_refresh = refreshed.refresh_cookie().expect("a new refresh cookie");
    assert_ne!(second_refresh, first_refresh);
    assert!(
        refreshed.json().get("refresh_token").is_none(),
        "cookie clients get no body token"
    );
    let second_access = refreshed.access_token();
    assert_eq!(app.topics(&second_access).await.status, 200);

    let logout = app.logout_with_cookie(&second_refresh, None).await;
    assert_eq!(logout.status, 204);
    // RFC 9110 section 8.6: a 204 carries no Content-Length.
    assert_eq!(logout.header("content-length"), None);
    let cleared = logout.headers_all("set-cookie").join(";");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/auth"),
        "{cleared}"
    );

    app.refresh_with_cookie(&second_refresh)
        .await
        .assert_problem(401, "invalid_refresh_token");
    // The access tokens of the session stop working at once, not when they
    // expire.
    let refused = app.topics(&second_access).await;
    refused.assert_problem(401, "invalid_token");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"spin-auth\", error=\"invalid_token\""),
        "{:?}",
        refused.header("www-authenticate")
    );
    app.topics(&access)
        .await
        .assert_problem(401, "invalid_token");
}

async fn registration_returns_the_user_and_where_to_find_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .post_json(
            "/auth/register",
            json!({"email": " New.User@Example.COM ", "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"}),
            None,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("location").as_deref(), Some("/auth/me"));
    let user = reply.json();
    assert_eq!(user["email"], "new.user@example.com");
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["roles"], json!(["user"]));
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!reply.text.contains("argon2"), "no hash in the body");
}

async fn a_duplicate_email_conflicts_whatever_its_case(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("twice@example.com", PASSWORD).await.status,
        201
    );
    app.register("TWICE@Example.com", "another good passphrase")
        .await
        .assert_problem(409, "email_taken");
    // Whitespace a copy and paste brings along is trimmed.
    app.register("\tTwice@example.com\r\n", "another good passphrase")
        .await
        .assert_problem(409, "email_taken");
    let login = app.login(" twice@example.com\n", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
}

async fn invalid_registrations_name_every_field_at_fault(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.register("not-an-email", "short").await;
    reply.assert_problem(422, "validation_failed");
    let fields: Vec<String> = reply.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, vec!["email", "password"]);
    app.register("long@example.com", &"x".repeat(257))
        .await
        .assert_problem(422, "validation_failed");
    app.register("common@example.com", "password123")
        .await
        .assert_problem(422, "validation_failed");
    let missing = app
        .post_json("/auth/register", json!({"email": 5}), None)
        .await;
    missing.assert_problem(422, "validation_failed");
}

async fn a_body_that_is_not_json_is_a_400(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in ["{", "[1, 2]", "\"text\"", "{\"email\": }"] {
        let reply = app
            .send(
                app.client
                    .post(app.url("/auth/register"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        reply.assert_problem(400, "malformed_body");
    }
}

async fn login_accepts_the_oauth2_password_form(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("form@example.com", PASSWORD).await;
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=password&username=form%40example.com&password=correct+horse+battery+staple"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "bearer");

    let form = |body: &'static str| {
        app.send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
    };
    // Without grant_type it is the password grant too; no other grant is.
    let reply = form("username=form%40example.com&password=correct+horse+battery+staple").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = form(
        "grant_type=client_credentials&username=form%40example.com&password=correct+horse+battery+staple",
    )
    .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["errors"][0]["field"], "grant_type");
    // A parameter sent twice is refused whichever value comes first.
    for body in [
        "grant_type=client_credentials&grant_type=password&username=form%40example.com&password=correct+horse+battery+staple",
        "grant_type=password&username=form%40example.com&password=correct+horse+battery+staple&password=x",
    ] {
        let reply = form(body).await;
        reply.assert_problem(422, "validation_failed");
        assert!(reply.text.contains("more than once"), "{}", reply.text);
    }
    // A NUL in a field is one error, not also a missing field.
    let reply = form("username=a%00b&password=correct+horse+battery+staple").await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(
        reply.json()["errors"].as_array().unwrap().len(),
        1,
        "{}",
        reply.text
    );
    // Every missing field is named at once.
    let reply = form("grant_type=password").await;
    reply.assert_problem(422, "validation_failed");
    let body = reply.json();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "password"]);
}

async fn unknown_email_and_wrong_password_fail_identically(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("known@example.com", PASSWORD).await;
    let wrong = app
        .login("known@example.com", "not the password at all")
        .await;
    let unknown = app
        .login("nobody@example.com", "not the password at all")
        .await;
    wrong.assert_problem(401, "invalid_credentials");
    assert_eq!((wrong.status, &wrong.text), (unknown.status, &unknown.text));
    let names = |reply: &Reply| {
        let mut names: Vec<(String, String)> = reply
            .headers
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&wrong), names(&unknown));
}

/// Made by Python's passlib (argon2, m=512, t=2, p=2): weaker than the
/// policy, so a login must replace it.
const PASSLIB_HASH: &str = "$argon2id$v=19$m=512,t=2,p=2$BoDQWqv1Pkeode5di/H+nw$zSNehf6d1aJ2EUKPPbDtcq6Ea7IBW/a12nBNP9CQwuQ";

async fn a_passlib_hash_logs_in_and_is_upgraded(backend: Backend) {
    let app = spawn_app(backend).await;
    // The schema exists once the app has served a request that needs it.
    app.register("someone@example.com", PASSWORD).await;
    app.sql(&format!(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
         VALUES ('0b7d5a5e-5c7b-4a55-9c55-0c4f5e1c3a01', 'legacy@example.com', '{PASSLIB_HASH}', 1700000000, 1700000000)"
    ))
    .await;
    let login = app.login("legacy@example.com", "Tr0ub4dor&3-legacy").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let stored = app
        .sql("SELECT password_hash FROM users WHERE email = 'legacy@example.com'")
        .await;
    let stored = stored[0][0].clone().unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_eq!(
        app.login("legacy@example.com", "Tr0ub4dor&3-legacy")
            .await
            .status,
        200
    );

    // passlib hashed the password as typed, this service hashes its NFKC
    // form: a password that normalisation changes (a ligature, a no-break
    // space, a micro sign) still logs in, and once rehashed, either
    // spelling does.
    app.sql(&format!(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
         VALUES ('0b7d5a5e-5c7b-4a55-9c55-0c4f5e1c3a02', 'typed@example.com', '{PASSLIB_UNNORMALISED_HASH}', 1700000000, 1700000000)"
    ))
    .await;
    let typed = "\u{fb01}ve \u{fb01}ngers\u{a0}\u{b5}-legacy";
    let login = app.login("typed@example.com", typed).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let stored = app
        .sql("SELECT password_hash FROM users WHERE email = 'typed@example.com'")
        .await;
    assert!(
        stored[0][0]
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    for spelling in [typed, "five fingers \u{3bc}-legacy"] {
        let login = app.login("typed@example.com", spelling).await;
        assert_eq!(login.status, 200, "{spelling:?}: {}", login.text);
    }
}

/// argon2-cffi (passlib's backend) with passlib's defaults of the time,
/// from "\u{fb01}ve \u{fb01}ngers\u{a0}\u{b5}-legacy" as typed.
const PASSLIB_UNNORMALISED_HASH: &str = "$argon2id$v=19$m=512,t=2,p=2$GtlJWaoUYV7f+w3wZd4VCw$/1O69fMEzng2U0KjGWR7D/MppXJiH0LWugiGpNTJvvI";

async fn the_refresh_cookie_has_the_contracted_attributes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let cookie = login.header("set-cookie").unwrap();
    let token = login.refresh_cookie().unwrap();
    assert_eq!(
        cookie,
        format!(
            "__Secure-refresh_token={token}; HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age=1209600"
        )
    );
    assert_eq!(token.len(), 43, "256 bits in URL-safe base64");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    // A client without a cookie jar sends it in the body and gets the next
    // one back in the body too.
    let by_body = app.refresh_with_body(&token).await;
    assert_eq!(by_body.status, 200, "{}", by_body.text);
    let next = by_body.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(Some(next.clone()), by_body.refresh_cookie());
    assert_eq!(app.refresh_with_body(&next).await.status, 200);
}

async fn refresh_tokens_are_stored_only_as_digests(backend: Backend) {
    use sha2::{Digest, Sha256};
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.refresh_cookie().unwrap();
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    if backend.uses_redis() {
        let keys = app.redis_keys().await;
        assert!(
            keys.contains(&format!("{}refresh:{digest}", app.redis_prefix)),
            "{keys:?}"
        );
        let mut connection = redis_connection().await;
        for key in &keys {
            assert!(!key.contains(&token));
            let kind: String = redis::cmd("TYPE")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            if kind == "hash" {
                let fields: Vec<String> = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                assert!(
                    fields.iter().all(|f| !f.contains(&token)),
                    "{key}: {fields:?}"
                );
            }
        }
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{}refresh:{digest}", app.redis_prefix))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 1_209_600, "{ttl}");
    } else {
        let rows = app.sql("SELECT digest FROM refresh_tokens").await;
        assert_eq!(rows, vec![vec![Some(digest)]]);
    }
    assert!(
        !app.log_text().contains(&token),
        "the token is never logged"
    );
}

async fn health_reports_every_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/health", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"status": "ok", "checks": {"database": "ok", "sessions": "ok"}})
    );
}

async fn unknown_routes_and_methods_get_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/nope",
        "/auth/nope",
        "/questions/nope/x/y",
        "/health/x",
        "/",
    ] {
        app.get(path, None).await.assert_problem(404, "not_found");
    }
    let reply = app.get("/auth/login", None).await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
    let reply = app
        .send(app.client.delete(app.url("/questions/topics")))
        .await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow").as_deref(), Some("GET, HEAD, POST"));
}

/// `HEAD` gets `GET`'s status and headers without the body (RFC 9110
/// section 9.3.2), on public and protected routes alike.
async fn head_is_answered_wherever_get_is(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    for (path, bearer) in [
        ("/health", None),
        ("/openapi.json", None),
        ("/.well-known/jwks.json", None),
        ("/auth/me", Some(token.as_str())),
        ("/questions/topics", Some(token.as_str())),
    ] {
        let get = app.get(path, bearer).await;
        assert_eq!(get.status, 200, "{path}: {}", get.text);
        let mut head = app.client.head(app.url(path));
        if let Some(token) = bearer {
            head = head.bearer_auth(token);
        }
        let head = app.send(head).await;
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(head.text, "", "{path}");
        for name in ["content-type", "content-length", "cache-control"] {
            assert_eq!(head.header(name), get.header(name), "{path}: {name}");
        }
    }
    // HTTP clients stop reading at a HEAD response's headers whatever
    // follows; on the wire, nothing does.
    let wire = raw_exchange(
        &app,
        "HEAD /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, rest) = wire.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(rest, "", "{head}");

    let anonymous = app.send(app.client.head(app.url("/auth/me"))).await;
    assert_eq!(anonymous.status, 401);
    let reply = app.send(app.client.head(app.url("/auth/login"))).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
}

/// Sends `request` as it is on a new connection and reads until the app
/// closes it.
pub(crate) async fn raw_exchange(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the app closes the connection")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}
