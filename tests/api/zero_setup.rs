//! The zero-setup default: nothing configured, everything in Spin's
//! embedded SQLite database, kept across restarts.

use std::sync::Arc;

use crate::helpers::*;

#[tokio::test]
async fn a_bare_start_serves_and_keeps_accounts_and_tokens_across_a_restart() {
    let state = Arc::new(tempfile::tempdir().unwrap());
    let bare = || AppOptions {
        bare: true,
        state: Some(state.clone()),
        ..AppOptions::default()
    };
    let app = spawn_app_with(Backend::Sqlite, bare()).await;
    assert_eq!(app.get("/health", None).await.status, 200);
    assert_eq!(
        app.register("keeper@example.com", PASSWORD).await.status,
        201
    );
    let login = app.login("keeper@example.com", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let refresh = login.refresh_cookie().unwrap();
    let access = login.access_token();
    assert!(
        app.log_text().contains("jwt_key is not set"),
        "the generated key is announced: {}",
        app.log_text()
    );
    assert!(state.path().join(".spin/sqlite_db.db").is_file());
    drop(app);

    let again = spawn_app_with(Backend::Sqlite, bare()).await;
    assert_eq!(
        again.login("keeper@example.com", PASSWORD).await.status,
        200
    );
    // The signing key survived, so tokens issued before the restart work.
    assert_eq!(again.topics(&access).await.status, 200);
    let refreshed = again.refresh_with_cookie(&refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(
        !again.log_text().contains("jwt_key is not set"),
        "generated once"
    );
}

#[tokio::test]
async fn production_settings_still_require_a_key() {
    let app = spawn_app_with(
        Backend::Postgres,
        AppOptions::with_variables(vec![("jwt_key", String::new())]),
    )
    .await;
    let reply = app.register("x@example.com", PASSWORD).await;
    reply.assert_problem(500, "misconfigured");
    assert!(reply.json()["detail"].as_str().unwrap().contains("jwt_key"));
}

#[tokio::test]
async fn concurrent_refreshes_end_the_same_on_sqlite_and_redis() {
    let mut outcomes = Vec::new();
    for backend in [Backend::Sqlite, Backend::SqliteRedis] {
        let app = spawn_app(backend).await;
        let (_, login) = app.signed_in_user().await;
        let token = login.refresh_cookie().unwrap();
        let replies =
            futures::future::join_all((0..50).map(|_| app.refresh_with_cookie(&token))).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        let tokens: std::collections::HashSet<_> =
            replies.iter().filter_map(Reply::refresh_cookie).collect();
        let sessions = app
            .get("/auth/sessions", Some(&replies[0].access_token()))
            .await
            .json()
            .as_array()
            .map(Vec::len);
        outcomes.push((statuses, tokens.len(), sessions));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0].1, 1);
    assert_eq!(outcomes[0].2, Some(1));
    assert!(outcomes[0].0.iter().all(|status| *status == 200));
}

#[tokio::test]
async fn expired_sessions_are_removed_when_met() {
    let app = spawn_app(Backend::Sqlite).await;
    let (email, _) = app.signed_in_user().await;
    app.sql("UPDATE sessions SET expires_at = 1").await;
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    let sessions = app.sql("SELECT count(*) FROM sessions").await;
    assert_eq!(sessions[0][0].as_deref(), Some("1"));
    let orphans = app
        .sql(
            "SELECT count(*) FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)",
        )
        .await;
    assert_eq!(orphans[0][0].as_deref(), Some("0"));
}
