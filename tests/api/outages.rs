//! A backing store that is down gets 503 with problem+json and
//! `Retry-After`, nothing is half-written, and the service recovers by
//! itself when the store comes back.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const CLOSED_DATABASE: &str = "postgres://postgres@127.0.0.1:1/spin_auth?sslmode=disable";
const CLOSED_REDIS: &str = "redis://127.0.0.1:1";

fn assert_unavailable(reply: &Reply) {
    reply.assert_problem(503, "service_unavailable");
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    for leak in [
        "postgres://",
        "redis://",
        "127.0.0.1",
        "os error",
        "SELECT",
        "panicked",
    ] {
        assert!(!reply.text.contains(leak), "{leak} in {}", reply.text);
    }
}

/// Whether protected reads succeed again within ten seconds (a slow
/// machine's reconnects; the real Spin test allows the same).
async fn recovers(app: &TestApp, token: &str) -> bool {
    for _ in 0..100 {
        if app.topics(token).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_database_that_is_down_gives_503_on_every_route_that_needs_it() {
    let app = spawn_app_with(
        Backend::PostgresRedis,
        AppOptions::with_variables(vec![("database_url", CLOSED_DATABASE.into())]),
    )
    .await;
    assert_unavailable(&app.register("down@example.com", PASSWORD).await);
    assert_unavailable(&app.login("down@example.com", PASSWORD).await);
    let health = app.get("/health", None).await;
    assert_eq!(health.status, 503);
    assert!(health.header("retry-after").is_some());
    assert_eq!(
        health.json(),
        json!({"status": "unavailable", "checks": {"database": "unavailable", "sessions": "ok"}})
    );
}

#[tokio::test]
async fn redis_that_is_down_gives_503_and_nothing_is_half_written() {
    let database = std::sync::Arc::new(TestDatabase::create().await);
    let down = spawn_app_with(
        Backend::PostgresRedis,
        AppOptions {
            variables: vec![("redis_url", CLOSED_REDIS.into())],
            database: Some(database.clone()),
            ..AppOptions::default()
        },
    )
    .await;
    assert_unavailable(&down.register("half@example.com", PASSWORD).await);
    let health = down.get("/health", None).await;
    assert_eq!(
        health.json(),
        json!({"status": "unavailable", "checks": {"database": "ok", "sessions": "unavailable"}})
    );
    drop(down);

    // The refused registration left no account behind.
    let up = spawn_app_with(
        Backend::PostgresRedis,
        AppOptions {
            database: Some(database),
            ..AppOptions::default()
        },
    )
    .await;
    assert_eq!(up.register("half@example.com", PASSWORD).await.status, 201);
}

#[tokio::test]
async fn the_service_recovers_when_redis_comes_back() {
    let proxy = Proxy::start(socket_of(&redis_url())).await;
    let app = spawn_app_with(
        Backend::SqliteRedis,
        AppOptions::with_variables(vec![("redis_url", with_port(&redis_url(), proxy.port))]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    assert_eq!(app.topics(&token).await.status, 200);

    proxy.cut();
    assert_unavailable(&app.topics(&token).await);
    assert_eq!(app.get("/health", None).await.status, 503);

    proxy.restore();
    assert!(
        recovers(&app, &token).await,
        "the service answers again without a restart"
    );
    assert_eq!(app.get("/health", None).await.status, 200);
}

#[tokio::test]
async fn the_service_recovers_when_postgres_comes_back() {
    let database = TestDatabase::create().await;
    let proxy = Proxy::start(socket_of(&database.url)).await;
    let app = spawn_app_with(
        Backend::PostgresRedis,
        AppOptions::with_variables(vec![("database_url", with_port(&database.url, proxy.port))]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    assert_eq!(app.topics(&token).await.status, 200);

    proxy.cut();
    assert_unavailable(&app.topics(&token).await);

    proxy.restore();
    assert!(
        recovers(&app, &token).await,
        "the service answers again without a restart"
    );
}

#[tokio::test]
async fn a_variable_that_does_not_parse_gives_500_misconfigured_naming_it() {
    for (variable, value) in [("jwt_key", "too-short"), ("access_token_ttl", "15 minutes")] {
        let app = spawn_app_with(
            Backend::Sqlite,
            AppOptions::with_variables(vec![(variable, value.into())]),
        )
        .await;
        let reply = app.register("x@example.com", PASSWORD).await;
        reply.assert_problem(500, "misconfigured");
        assert!(
            reply.json()["detail"].as_str().unwrap().contains(variable),
            "{}",
            reply.text
        );
        assert!(
            !reply.text.contains(value),
            "the value is not echoed: {}",
            reply.text
        );
    }
}
