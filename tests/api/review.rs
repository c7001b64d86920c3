//! Findings of the outside security review, each proved fixed through the
//! real components: sessions that outlived a password change, a
//! registration limit that a login reset, registrations counted per IPv6
//! address, NUL bytes that PostgreSQL refused with a 500, a password change
//! left half done by an outage, roles that outlived `admin_emails`,
//! login's Unicode case folding, concurrent password changes that all
//! answered 204 while one of them stuck, and requests that raced the
//! deletion of their account into a 500.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    logins_in_flight_during_a_password_change_keep_no_session,
    a_successful_login_does_not_reset_the_registration_limit,
    registrations_are_limited_per_ipv6_slash_64,
    nul_bytes_get_a_422_or_a_404_never_a_500,
    a_password_change_retried_after_an_outage_finishes_the_revocation,
    an_address_removed_from_admin_emails_loses_admin_at_the_next_refresh,
    login_folds_case_as_registration_does,
    of_concurrent_password_changes_one_wins_and_the_others_are_refused,
);

async fn logins_in_flight_during_a_password_change_keep_no_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, owner) = app.signed_in_user().await;
    let owner_token = owner.access_token();
    let new_password = "a brand new passphrase";

    // Six clients log in with the old password, over and over, while the
    // owner changes it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = (0..6).map(|_| {
        let (app, email, stop) = (&app, email.clone(), stop.clone());
        async move {
            let mut won = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let login = app.login(&email, PASSWORD).await;
                if login.status == 200 {
                    won.push((login.access_token(), login.refresh_cookie().unwrap()));
                }
            }
            won
        }
    });
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let changed = app
            .post_json(
                "/auth/password",
                json!({"current_password": PASSWORD, "new_password": new_password}),
                Some(&owner_token),
            )
            .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        changed
    };
    let (won, changed) = tokio::join!(futures::future::join_all(logins), change);
    assert_eq!(changed.status, 204, "{}", changed.text);

    let won: Vec<_> = won.into_iter().flatten().collect();
    assert!(
        !won.is_empty(),
        "some logins went through before the change"
    );
    for (access, refresh) in &won {
        app.get("/auth/me", Some(access))
            .await
            .assert_problem(401, "invalid_token");
        app.refresh_with_cookie(refresh)
            .await
            .assert_problem(401, "invalid_refresh_token");
    }
    let sessions = app.get("/auth/sessions", Some(&owner_token)).await.json();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
}

async fn a_successful_login_does_not_reset_the_registration_limit(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("registrations_per_ip", "2".into())]),
    )
    .await;
    let ip = "203.0.113.30";
    assert_eq!(app.register_from("a@example.com", ip).await.status, 201);
    assert_eq!(app.register_from("b@example.com", ip).await.status, 201);
    app.register_from("c@example.com", ip)
        .await
        .assert_problem(429, "rate_limited");

    assert_eq!(app.login("a@example.com", PASSWORD).await.status, 200);

    let refused = app.register_from("d@example.com", ip).await;
    refused.assert_problem(429, "rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (3000..=3600).contains(&retry_after),
        "the window is an hour: {retry_after}"
    );
}

async fn registrations_are_limited_per_ipv6_slash_64(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("registrations_per_ip", "2".into())]),
    )
    .await;
    assert_eq!(
        app.register_from("a@example.com", "2001:db8:1:2::1")
            .await
            .status,
        201
    );
    assert_eq!(
        app.register_from("b@example.com", "2001:db8:1:2::2")
            .await
            .status,
        201
    );
    app.register_from("c@example.com", "2001:db8:1:2:ffff::3")
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(
        app.register_from("d@example.com", "2001:db8:1:3::1")
            .await
            .status,
        201,
        "another /64 is another client"
    );
}

async fn nul_bytes_get_a_422_or_a_404_never_a_500(backend: Backend) {
    let admin = "admin@example.com";
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("admin_emails", admin.into())]),
    )
    .await;
    app.register_verified(admin, PASSWORD).await;
    let token = app.login(admin, PASSWORD).await.access_token();

    let path = app
        .post_json(
            "/questions/%00/answer",
            json!({"answer_index": 0}),
            Some(&token),
        )
        .await;
    path.assert_problem(404, "not_found");
    let session = app
        .send(
            app.client
                .delete(app.url("/auth/sessions/%00"))
                .bearer_auth(&token),
        )
        .await;
    session.assert_problem(404, "session_not_found");
    let slug = app
        .get("/questions/topics/a%00b/questions", Some(&token))
        .await;
    slug.assert_problem(404, "not_found");

    for (body, field) in [
        (json!({"slug": "nul", "name": "a\u{0}b"}), "name"),
        (
            json!({"slug": "nul", "name": "Nul", "description": "\u{0}"}),
            "description",
        ),
    ] {
        let reply = app.post_json("/questions/topics", body, Some(&token)).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["errors"][0]["field"], field, "{}", reply.text);
    }
    assert_eq!(
        app.post_json(
            "/questions/topics",
            json!({"slug": "nul", "name": "Nul"}),
            Some(&token)
        )
        .await
        .status,
        201
    );
    for (body, field) in [
        (
            json!({"prompt": "a\u{0}", "choices": ["x", "y"], "answer_index": 0}),
            "prompt",
        ),
        (
            json!({"prompt": "p", "choices": ["x\u{0}", "y"], "answer_index": 0}),
            "choices",
        ),
    ] {
        let reply = app
            .post_json("/questions/topics/nul/questions", body, Some(&token))
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["errors"][0]["field"], field, "{}", reply.text);
    }
    let register = app
        .post_json(
            "/auth/register",
            json!({"email": "x@example.com", "password": PASSWORD, "last_name": "\u{0}"}),
            None,
        )
        .await;
    register.assert_problem(422, "validation_failed");
}

async fn a_password_change_retried_after_an_outage_finishes_the_revocation(backend: Backend) {
    let app = spawn_app(backend).await;
    let new_password = "a brand new passphrase";
    // The state an outage left: the new password stored, the other
    // sessions not yet revoked. The new hash is a real one, made by the
    // service for another account with that password.
    let (email, here) = app.signed_in_user().await;
    let elsewhere = app.login(&email, PASSWORD).await;
    assert_eq!(
        app.register("donor@example.com", new_password).await.status,
        201
    );
    app.sql(&format!(
        "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE email = 'donor@example.com') \
         WHERE email = '{email}'"
    ))
    .await;
    assert_eq!(app.topics(&elsewhere.access_token()).await.status, 200);

    // The client retries the very request that got the 503.
    let retried = app
        .post_json(
            "/auth/password",
            json!({"current_password": PASSWORD, "new_password": new_password}),
            Some(&here.access_token()),
        )
        .await;
    assert_eq!(retried.status, 204, "{}", retried.text);
    app.topics(&elsewhere.access_token())
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.topics(&here.access_token()).await.status, 200);
    assert_eq!(app.login(&email, new_password).await.status, 200);
}

async fn an_address_removed_from_admin_emails_loses_admin_at_the_next_refresh(backend: Backend) {
    let admin = "admin@example.com";
    let state = Arc::new(tempfile::tempdir().unwrap());
    let database = if backend.uses_postgres() {
        Some(Arc::new(TestDatabase::create().await))
    } else {
        None
    };
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let options = |admins: &str| AppOptions {
        variables: vec![
            ("admin_emails", admins.to_owned()),
            (
                "jwt_key",
                "a-signing-key-kept-across-restarts-0123".to_owned(),
            ),
        ],
        state: Some(state.clone()),
        database: database.clone(),
        redis_prefix: Some(prefix.clone()),
        ..AppOptions::default()
    };
    let before = spawn_app_with(backend, options(admin)).await;
    before.register_verified(admin, PASSWORD).await;
    let login = before.login(admin, PASSWORD).await;
    let (_, claims) = jwt_parts(&login.access_token());
    assert_eq!(claims["roles"], json!(["user", "admin"]));
    let refresh = login.refresh_cookie().unwrap();

    // The same data, served with the address no longer listed. (The first
    // host stays up: dropping it would clear the test's Redis keys.)
    let after = spawn_app_with(backend, options("")).await;
    let refreshed = after.refresh_with_cookie(&refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let (_, claims) = jwt_parts(&refreshed.access_token());
    assert_eq!(claims["roles"], json!(["user"]));
    after
        .post_json(
            "/questions/topics",
            json!({"slug": "x", "name": "X"}),
            Some(&refreshed.access_token()),
        )
        .await
        .assert_problem(403, "forbidden");
    drop(before);
}

async fn login_folds_case_as_registration_does(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.register("k@example.com", PASSWORD).await.status, 201);
    assert_eq!(app.login("K@Example.COM", PASSWORD).await.status, 200);
    // U+212A KELVIN SIGN lower-cases to an ASCII k under Unicode rules;
    // registration refuses it, and login does not map it onto k.
    app.login("\u{212A}@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}

async fn of_concurrent_password_changes_one_wins_and_the_others_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, first) = app.signed_in_user().await;
    let mut tokens = vec![first.access_token()];
    for _ in 0..3 {
        tokens.push(app.login(&email, PASSWORD).await.access_token());
    }
    // Each session changes the password to its own new one, all at once,
    // each with the right current password.
    let changes = tokens.iter().enumerate().map(|(n, token)| {
        let app = &app;
        async move {
            let new = format!("new passphrase number {n}");
            let reply = app
                .post_json(
                    "/auth/password",
                    json!({"current_password": PASSWORD, "new_password": new}),
                    Some(token),
                )
                .await;
            (new, token, reply)
        }
    });
    let replies = futures::future::join_all(changes).await;
    let won: Vec<_> = replies.iter().filter(|(_, _, r)| r.status == 204).collect();
    assert_eq!(won.len(), 1, "exactly one change is told it succeeded");
    for (_, _, reply) in replies.iter().filter(|(_, _, r)| r.status != 204) {
        // Checked against a password that is no longer the account's, or
        // come after the winner ended its session.
        assert_eq!(reply.status, 401, "{}", reply.text);
        let code = reply.json()["code"].clone();
        assert!(
            code == "invalid_credentials" || code == "invalid_token",
            "{}",
            reply.text
        );
    }
    let (winner_password, winner_token, _) = won[0];
    // The password that works is the one the 204 was for, and the
    // winner's session is the one left.
    assert_eq!(app.login(&email, winner_password).await.status, 200);
    for (new, _, _) in replies.iter().filter(|(new, _, _)| new != winner_password) {
        app.login(&email, new)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    assert_eq!(app.get("/auth/me", Some(winner_token)).await.status, 200);
    for token in tokens.iter().filter(|token| *token != *winner_token) {
        app.get("/auth/me", Some(token))
            .await
            .assert_problem(401, "invalid_token");
    }
}

/// A request that races the deletion of its account gets the answer it
/// would get after the deletion, never a 500. A trigger makes the deletion
/// land at the worst moment: as the request inserts a row that refers to
/// the account (on PostgreSQL, whose sessions are rows with a foreign key).
/// The row is refused, and the trigger's deletion is undone with it, so
/// only the answers are checked.
#[tokio::test]
async fn requests_racing_the_deletion_of_their_account_get_no_500() {
    let app = spawn_app(Backend::Postgres).await;
    let mut users = Vec::new();
    for _ in 0..3 {
        let (email, login) = app.signed_in_user().await;
        users.push((email, login.access_token()));
    }
    let two_factor = crate::mfa::enrolled(&app).await;
    app.sql(
        "CREATE FUNCTION delete_owner() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN DELETE FROM users WHERE id = NEW.user_id; RETURN NEW; END $$",
    )
    .await;
    let deleting_on = |table: &str| {
        let mut statements: Vec<String> =
            ["sessions", "mfa_challenges", "user_totp", "email_tokens"]
                .iter()
                .map(|table| format!("DROP TRIGGER IF EXISTS race ON {table}"))
                .collect();
        statements.push(format!(
            "CREATE TRIGGER race BEFORE INSERT ON {table} \
             FOR EACH ROW EXECUTE FUNCTION delete_owner()"
        ));
        statements.join("; ")
    };

    app.sql(&deleting_on("sessions")).await;
    let (email, _) = &users[0];
    app.login(email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");

    // With two factors, the password's success is a pending login.
    app.sql(&deleting_on("mfa_challenges")).await;
    app.login(&two_factor.email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");

    app.sql(&deleting_on("user_totp")).await;
    let (_, token) = &users[1];
    app.post_json("/auth/mfa/totp", json!(null), Some(token))
        .await
        .assert_problem(401, "invalid_token");

    app.sql(&deleting_on("email_tokens")).await;
    let (_, token) = &users[2];
    app.post_json("/auth/verify-email/request", json!({}), Some(token))
        .await
        .assert_problem(401, "invalid_token");
}
