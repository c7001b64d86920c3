//! The store conformance suite (`spin-auth-core`'s `store::conformance`),
//! run by a test component on each backend through the real host
//! interfaces: every store must pass every case.

use std::path::Path;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(every_store_passes_every_conformance_case);

async fn every_store_passes_every_conformance_case(backend: Backend) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/spin.toml");
    let app = spawn_app_with(
        backend,
        AppOptions {
            manifest: Some(manifest),
            ..AppOptions::default()
        },
    )
    .await;

    let reply = app.get("/", None).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let outcomes = reply.json();
    let outcomes = outcomes.as_array().expect("a list of outcomes");
    assert!(outcomes.len() >= 15, "{outcomes:?}");
    let expected_store = match backend {
        Backend::PostgresRedis | Backend::SqliteRedis => "redis",
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|outcome| !outcome["failure"].is_null() || outcome["store"] != expected_store)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
