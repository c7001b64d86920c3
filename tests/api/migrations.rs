//! A fresh database reaches the current schema by itself, once, even when
//! the first requests arrive together; and a database migrated ahead of
//! time by scripts/migrate.sh is used as it is.

use std::sync::Arc;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(concurrent_first_requests_migrate_a_fresh_database_once);

async fn concurrent_first_requests_migrate_a_fresh_database_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let registrations = (0..20).map(|n| app.register_as(n));
    let replies = futures::future::join_all(registrations).await;
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let versions = app.sql("SELECT version FROM schema_migrations").await;
    assert_eq!(versions, vec![vec![Some("1".to_owned())]]);
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
    let versions = app.sql("SELECT version FROM schema_migrations").await;
    assert_eq!(versions, vec![vec![Some("1".to_owned())]]);
    assert!(
        !app.log_text().contains("applied schema migration"),
        "{}",
        app.log_text()
    );
}
