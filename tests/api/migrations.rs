//! A fresh database reaches the current schema by itself, once, even when
//! the first requests arrive together; and a database migrated ahead of
//! time by scripts/migrate.sh is used as it is.

use std::sync::Arc;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    concurrent_first_requests_migrate_a_fresh_database_once,
    an_index_only_migration_reaches_a_database_an_older_version_made,
    a_read_migrates_a_fresh_database_and_answers_as_after,
    messages_delivered_before_version_7_lose_their_bodies,
);

/// Every migration the code has, as `schema_migrations` lists them.
fn every_version() -> Vec<Vec<Option<String>>> {
    let count = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    (1..=count).map(|v| vec![Some(v.to_string())]).collect()
}

/// Checks that `schema_migrations` lists every migration the code has.
async fn assert_every_migration_applied(app: &TestApp) {
    let versions = app
        .sql("SELECT version FROM schema_migrations ORDER BY version")
        .await;
    assert_eq!(versions, every_version());
}

/// A database as version 1 of the service left it: the first migration
/// applied and recorded, nothing after it.
async fn database_at_version_1(
    backend: Backend,
    state: &std::path::Path,
) -> Option<Arc<TestDatabase>> {
    let dialect = if backend.uses_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let script = std::fs::read_to_string(format!(
        "{}/migrations/{dialect}/0001_init.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let bookkeeping = "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL); \
                       INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0);";
    if backend.uses_postgres() {
        let database = Arc::new(TestDatabase::create().await);
        let client = database.client().await;
        client.batch_execute(&script).await.unwrap();
        client.batch_execute(bookkeeping).await.unwrap();
        Some(database)
    } else {
        std::fs::create_dir_all(state.join(".spin")).unwrap();
        let connection = rusqlite::Connection::open(state.join(".spin/sqlite_db.db")).unwrap();
        connection.execute_batch(&script).unwrap();
        connection.execute_batch(bookkeeping).unwrap();
        None
    }
}

async fn an_index_only_migration_reaches_a_database_an_older_version_made(backend: Backend) {
    let state = Arc::new(tempfile::tempdir().unwrap());
    let database = database_at_version_1(backend, state.path()).await;
    let app = spawn_app_with(
        backend,
        AppOptions {
            state: Some(state),
            database,
            ..AppOptions::default()
        },
    )
    .await;

    // Any request that reads the database: nothing it does needs the index.
    let login = app.login("nobody@example.com", PASSWORD).await;
    login.assert_problem(401, "invalid_credentials");

    assert_every_migration_applied(&app).await;
    let index = if backend.uses_postgres() {
        "SELECT indexname FROM pg_indexes WHERE indexname = 'audit_events_event'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'audit_events_event'"
    };
    assert_eq!(app.sql(index).await.len(), 1, "the index exists");
}

/// A read checks the schema in its own round trip (and finds no table at
/// all here): it migrates, then answers as on a current schema.
async fn a_read_migrates_a_fresh_database_and_answers_as_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let login = app.login("nobody@example.com", PASSWORD).await;
    login.assert_problem(401, "invalid_credentials");
    assert_every_migration_applied(&app).await;
    let audit = app.sql("SELECT event FROM audit_events ORDER BY id").await;
    assert_eq!(audit, vec![vec![Some("login_failed".to_owned())]]);
}

async fn concurrent_first_requests_migrate_a_fresh_database_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let registrations = (0..20).map(|n| app.register_as(n));
    let replies = futures::future::join_all(registrations).await;
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    assert_every_migration_applied(&app).await;
    let users = app.sql("SELECT count(*) FROM users").await;
    assert_eq!(users[0][0].as_deref(), Some("20"));
}

#[tokio::test]
async fn a_database_migrated_by_the_script_is_used_as_it_is() {
    let database = Arc::new(TestDatabase::create().await);
    let status =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/migrate.sh"))
            .arg(&database.url)
            .status()
            .expect("the script runs (it needs psql)");
    assert!(status.success());
    let app = spawn_app_with(
        Backend::Postgres,
        AppOptions {
            database: Some(database),
            ..AppOptions::default()
        },
    )
    .await;
    app.signed_in_user().await;
    assert_every_migration_applied(&app).await;
    assert!(
        !app.log_text().contains("applied schema migration"),
        "{}",
        app.log_text()
    );
}

#[tokio::test]
async fn a_migration_cut_short_does_not_block_later_requests() {
    // A database as an older version left it, and an outside transaction
    // holding its migrations table: the app's first migration stops mid-way,
    // inside its transaction, holding the migration lock.
    let database = Arc::new(TestDatabase::create().await);
    let outside = database.client().await;
    outside
        .batch_execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL); \
             BEGIN; LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
    let app = spawn_app_with(
        Backend::Postgres,
        AppOptions {
            database: Some(database.clone()),
            ..AppOptions::default()
        },
    )
    .await;

    // Its client gives up, and the instance is dropped mid-migration.
    let cut_short = app
        .client
        .post(app.url("/auth/register"))
        .json(&serde_json::json!({"email": "first@example.com", "password": PASSWORD}))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    assert!(cut_short.is_err(), "the first request was held up");
    outside.batch_execute("COMMIT").await.unwrap();

    let next = tokio::time::timeout(std::time::Duration::from_secs(60), app.register_as(1))
        .await
        .expect("a later request is not blocked by the lock of the one cut short");
    assert_eq!(next.status, 201, "{}", next.text);
    assert_every_migration_applied(&app).await;
}

/// Version 7 empties the bodies of messages delivered before it, whose
/// links held tokens the database otherwise keeps only as digests; a
/// message still waiting keeps its body, or it could not be sent.
async fn messages_delivered_before_version_7_lose_their_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("first@example.com", PASSWORD).await;
    app.sql(
        "INSERT INTO outbox (id, created_at, recipient, subject, text_body, html_body, attempts, \
         next_attempt_at, claimed_until, delivered_at) VALUES \
         ('sent', 0, 'a@example.com', 's', 'token=sent', '<a>token=sent</a>', 1, 0, 0, 1), \
         ('waiting', 0, 'b@example.com', 's', 'token=waiting', '<a>token=waiting</a>', 0, \
         4000000000, 0, NULL)",
    )
    .await;
    app.sql("DELETE FROM schema_migrations WHERE version = 7")
        .await;
    let reply = app.register("second@example.com", PASSWORD).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_every_migration_applied(&app).await;
    let bodies = app
        .sql("SELECT id, text_body, html_body FROM outbox WHERE id IN ('sent', 'waiting') ORDER BY id")
        .await;
    let row = |id: &str, text: &str, html: &str| {
        vec![
            Some(id.to_owned()),
            Some(text.to_owned()),
            Some(html.to_owned()),
        ]
    };
    assert_eq!(
        bodies,
        [
            row("sent", "", ""),
            row("waiting", "token=waiting", "<a>token=waiting</a>")
        ]
    );
}
