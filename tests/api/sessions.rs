//! Sessions under attack and under load: rotation and reuse detection,
//! logout scopes, session management, password change, throttling,
//! request hygiene and the audit trail.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    a_successor_sealed_in_the_old_format_is_refused_and_the_session_lives_on,
    fifty_concurrent_refreshes_of_one_token_leave_one_session_with_one_current_token,
    a_retired_token_replayed_after_the_grace_window_revokes_the_session,
    logout_scopes_revoke_exactly_what_they_say,
    logout_without_a_known_token_still_succeeds,
    sessions_are_listed_with_the_current_one_marked,
    a_user_cannot_see_or_revoke_another_users_session,
    changing_the_password_ends_every_other_session,
    failed_logins_are_throttled_per_account_and_address_and_decay,
    failed_logins_from_one_address_are_limited_across_accounts,
    registrations_are_limited_per_address,
    oversized_mistyped_and_malformed_requests_are_refused_cleanly,
    the_audit_trail_records_each_event_and_no_secret,
    parallel_guesses_cannot_slip_under_the_limit,
    guesses_at_the_current_password_are_throttled,
    a_stale_refresh_token_at_logout_ends_only_its_own_session,
    a_forwarded_address_counts_only_from_a_trusted_proxy,
    the_body_limit_is_sixty_four_kib_exactly,
    a_request_without_a_body_hears_which_fields_are_required,
    the_refresh_cookie_never_outlives_its_session,
);

async fn parallel_guesses_cannot_slip_under_the_limit(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("login_failures_per_account", "3".into())]),
    )
    .await;
    app.register("parallel@example.com", PASSWORD).await;
    let passwords: Vec<String> = (0..20).map(|n| format!("wrong guess {n}")).collect();
    let guesses = passwords
        .iter()
        .map(|password| app.login_from("parallel@example.com", password, "203.0.113.40"));
    let replies = futures::future::join_all(guesses).await;
    let checked = replies.iter().filter(|reply| reply.status == 401).count();
    let refused = replies.iter().filter(|reply| reply.status == 429).count();
    assert_eq!(checked + refused, 20);
    assert!(checked <= 3, "{checked} guesses reached the password check");
}

async fn guesses_at_the_current_password_are_throttled(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("login_failures_per_account", "3".into())]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let guess = |n: u32| {
        app.post_json(
            "/auth/password",
            json!({"current_password": format!("guess number {n}"), "new_password": "a brand new passphrase"}),
            Some(&token),
        )
    };
    for n in 0..3 {
        guess(n).await.assert_problem(401, "invalid_credentials");
    }
    let refused = guess(3).await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
}

async fn a_stale_refresh_token_at_logout_ends_only_its_own_session(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("refresh_reuse_grace", "1".into())]),
    )
    .await;
    let (email, first) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await;
    let stolen = first.refresh_cookie().unwrap();
    let rotated = app.refresh_with_cookie(&stolen).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // A thief replays the old token to log the owner out everywhere.
    let reply = app.logout_with_cookie(&stolen, Some("global")).await;
    assert_eq!(reply.status, 204);
    app.topics(&rotated.access_token())
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.topics(&second.access_token()).await.status,
        200,
        "other sessions stand"
    );
    let audited = app
        .sql("SELECT count(*) FROM audit_events WHERE event = 'refresh_token_reused'")
        .await;
    assert_eq!(audited[0][0].as_deref(), Some("1"));
}

async fn fifty_concurrent_refreshes_of_one_token_leave_one_session_with_one_current_token(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.refresh_cookie().unwrap();
    let replies = futures::future::join_all((0..50).map(|_| app.refresh_with_cookie(&token))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Every answer carries the same (current) token: a client that keeps
    // whichever cookie arrives last keeps a working one.
    let tokens: std::collections::HashSet<String> = replies
        .iter()
        .map(|reply| reply.refresh_cookie().unwrap())
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let current = tokens.into_iter().next().unwrap();
    assert_ne!(current, token);

    let access = replies[0].access_token();
    let sessions = app.get("/auth/sessions", Some(&access)).await.json();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    if backend.uses_redis() {
        let mut connection = redis_connection().await;
        let mut live_tokens = 0;
        for key in app
            .redis_keys()
            .await
            .iter()
            .filter(|k| k.contains(":refresh:"))
        {
            let retired: Option<String> = redis::cmd("HGET")
                .arg(key)
                .arg("retired_at")
                .query_async(&mut connection)
                .await
                .unwrap();
            live_tokens += usize::from(retired.is_none());
        }
        assert_eq!(live_tokens, 1);
    } else {
        let rows = app
            .sql("SELECT count(*) FROM refresh_tokens WHERE retired_at IS NULL")
            .await;
        assert_eq!(rows[0][0].as_deref(), Some("1"));
    }
    // The current token keeps working after the grace window's worth of
    // concurrent use.
    assert_eq!(app.refresh_with_cookie(&current).await.status, 200);
}

/// Successors sealed before the AEAD (a 64-hex-digit pad) are not
/// trusted: a replay in the grace window that meets one is refused as an
/// invalid token, and the session itself lives on.
async fn a_successor_sealed_in_the_old_format_is_refused_and_the_session_lives_on(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let retired = login.refresh_cookie().unwrap();
    let rotated = app.refresh_with_cookie(&retired).await;
    let current = rotated.refresh_cookie().unwrap();
    let old_format = "ab".repeat(32);
    if backend.uses_redis() {
        let mut connection = redis_connection().await;
        let key = app
            .redis_keys()
            .await
            .into_iter()
            .find(|key| key.contains(":refresh:") && !key.ends_with(&digest_of(&current)))
            .expect("the retired token's key");
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("sealed")
            .arg(&old_format)
            .query_async(&mut connection)
            .await
            .unwrap();
    } else {
        app.sql(&format!(
            "UPDATE refresh_tokens SET next_sealed = '{old_format}' WHERE retired_at IS NOT NULL"
        ))
        .await;
    }

    app.refresh_with_cookie(&retired)
        .await
        .assert_problem(401, "invalid_refresh_token");
    let still = app.refresh_with_cookie(&current).await;
    assert_eq!(still.status, 200, "{}", still.text);
}

/// The hex SHA-256 of a refresh token, as the stores key it.
fn digest_of(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn a_retired_token_replayed_after_the_grace_window_revokes_the_session(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("refresh_reuse_grace", "1".into())]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let stolen = login.refresh_cookie().unwrap();
    let rotated = app.refresh_with_cookie(&stolen).await;
    let current = rotated.refresh_cookie().unwrap();
    let access = rotated.access_token();

    // Within the window the old token is a concurrent request, not theft.
    let replay = app.refresh_with_cookie(&stolen).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.refresh_cookie().unwrap(), current);

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let theft = app.refresh_with_cookie(&stolen).await;
    theft.assert_problem(401, "refresh_token_reused");
    assert!(
        theft
            .headers_all("set-cookie")
            .join(";")
            .contains("Max-Age=0")
    );

    // Everything descended from that login is dead.
    app.refresh_with_cookie(&current)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.topics(&access)
        .await
        .assert_problem(401, "invalid_token");
    let audited = app
        .sql("SELECT user_id, session_id FROM audit_events WHERE event = 'refresh_token_reused'")
        .await;
    assert_eq!(audited.len(), 1);
    assert!(audited[0][0].is_some() && audited[0][1].is_some());
}

async fn logout_scopes_revoke_exactly_what_they_say(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, first) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await;
    let third = app.login(&email, PASSWORD).await;
    let (_, stranger) = app.signed_in_user().await;

    // others: every session but the caller's.
    let reply = app
        .logout_with_cookie(&first.refresh_cookie().unwrap(), Some("others"))
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(app.topics(&first.access_token()).await.status, 200);
    app.topics(&second.access_token())
        .await
        .assert_problem(401, "invalid_token");
    app.topics(&third.access_token())
        .await
        .assert_problem(401, "invalid_token");

    // local (the default): the caller's only.
    let fourth = app.login(&email, PASSWORD).await;
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/logout"))
                .bearer_auth(fourth.access_token()),
        )
        .await;
    assert_eq!(reply.status, 204);
    app.topics(&fourth.access_token())
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.topics(&first.access_token()).await.status, 200);

    // global: all of the user's sessions, nobody else's.
    let fifth = app.login(&email, PASSWORD).await;
    let reply = app
        .logout_with_cookie(&fifth.refresh_cookie().unwrap(), Some("global"))
        .await;
    assert_eq!(reply.status, 204);
    app.topics(&first.access_token())
        .await
        .assert_problem(401, "invalid_token");
    app.topics(&fifth.access_token())
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.topics(&stranger.access_token()).await.status, 200);

    app.logout_with_cookie("x", Some("everything"))
        .await
        .assert_problem(422, "validation_failed");
}

async fn logout_without_a_known_token_still_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.send(app.client.post(app.url("/auth/logout")))
            .await
            .status,
        204
    );
    assert_eq!(
        app.logout_with_cookie("unknown-token", None).await.status,
        204
    );
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/logout"))
                .bearer_auth("not-a-jwt"),
        )
        .await;
    assert_eq!(reply.status, 204);
}

async fn sessions_are_listed_with_the_current_one_marked(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, _) = app.signed_in_user().await;
    let phone = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("user-agent", "TestPhone/1.0")
                .json(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
    let sessions = app
        .get("/auth/sessions", Some(&phone.access_token()))
        .await
        .json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "TestPhone/1.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    let (_, claims) = jwt_parts(&phone.access_token());
    assert_eq!(current[0]["id"], claims["sid"]);
    for field in ["created_at", "last_used_at"] {
        assert!(current[0][field].as_str().unwrap().ends_with('Z'));
    }
}

async fn a_user_cannot_see_or_revoke_another_users_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, alice) = app.signed_in_user().await;
    let (_, mallory) = app.signed_in_user().await;
    let (_, alice_claims) = jwt_parts(&alice.access_token());
    let alice_sid = alice_claims["sid"].as_str().unwrap();
    let listed = app
        .get("/auth/sessions", Some(&mallory.access_token()))
        .await
        .json();
    assert!(!listed.to_string().contains(alice_sid));
    let reply = app
        .send(
            app.client
                .delete(app.url(&format!("/auth/sessions/{alice_sid}")))
                .bearer_auth(mallory.access_token()),
        )
        .await;
    reply.assert_problem(404, "session_not_found");
    assert_eq!(app.topics(&alice.access_token()).await.status, 200);
    // Her own session she can end.
    let reply = app
        .send(
            app.client
                .delete(app.url(&format!("/auth/sessions/{alice_sid}")))
                .bearer_auth(alice.access_token()),
        )
        .await;
    assert_eq!(reply.status, 204);
    app.topics(&alice.access_token())
        .await
        .assert_problem(401, "invalid_token");
}

async fn changing_the_password_ends_every_other_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, here) = app.signed_in_user().await;
    let elsewhere = app.login(&email, PASSWORD).await;
    let here_token = here.access_token();
    let change = |current: &str, new: &str| {
        app.post_json(
            "/auth/password",
            json!({"current_password": current, "new_password": new}),
            Some(&here_token),
        )
    };
    change("wrong password here", "a brand new passphrase")
        .await
        .assert_problem(401, "invalid_credentials");
    change(PASSWORD, "short")
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(change(PASSWORD, "a brand new passphrase").await.status, 204);

    assert_eq!(app.topics(&here.access_token()).await.status, 200);
    app.topics(&elsewhere.access_token())
        .await
        .assert_problem(401, "invalid_token");
    app.login(&email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        app.login(&email, "a brand new passphrase").await.status,
        200
    );
}

async fn failed_logins_are_throttled_per_account_and_address_and_decay(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("login_failures_per_account", "3".into())]),
    )
    .await;
    let email = "target@example.com";
    app.register(email, PASSWORD).await;
    let attacker = "203.0.113.5";
    for _ in 0..3 {
        app.login_from(email, "guess guess guess", attacker)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let refused = app.login_from(email, PASSWORD, attacker).await;
    refused.assert_problem(429, "rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");

    // The owner, elsewhere, is not locked out.
    assert_eq!(
        app.login_from(email, PASSWORD, "198.51.100.7").await.status,
        200
    );

    // The block decays.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    app.login_from(email, "guess again guess", attacker)
        .await
        .assert_problem(401, "invalid_credentials");
    // Each further failure doubles the wait.
    let longer = app.login_from(email, PASSWORD, attacker).await;
    longer.assert_problem(429, "rate_limited");
    let longer: u64 = longer.header("retry-after").unwrap().parse().unwrap();
    assert!(longer > retry_after, "{longer} after {retry_after}");
    tokio::time::sleep(Duration::from_secs(longer) + Duration::from_millis(200)).await;
    assert_eq!(app.login_from(email, PASSWORD, attacker).await.status, 200);
}

async fn failed_logins_from_one_address_are_limited_across_accounts(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("login_failures_per_ip", "3".into())]),
    )
    .await;
    for n in 0..3 {
        app.login_from(
            &format!("spray{n}@example.com"),
            "password guess 1",
            "203.0.113.9",
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    let refused = app
        .login_from("spray9@example.com", "password guess 1", "203.0.113.9")
        .await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Another address is unaffected.
    app.login_from("spray9@example.com", "password guess 1", "203.0.113.10")
        .await
        .assert_problem(401, "invalid_credentials");
}

async fn registrations_are_limited_per_address(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("registrations_per_ip", "2".into())]),
    )
    .await;
    let app = &app;
    let register = |n: u32, ip: &'static str| async move {
        app.register_from(&format!("r{n}@example.com"), ip).await
    };
    assert_eq!(register(1, "203.0.113.20").await.status, 201);
    assert_eq!(register(2, "203.0.113.20").await.status, 201);
    let refused = register(3, "203.0.113.20").await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(register(4, "203.0.113.21").await.status, 201);
}

async fn oversized_mistyped_and_malformed_requests_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(70 * 1024));
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/register"))
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    reply.assert_problem(413, "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let chunks = futures::stream::iter(
        (0..80).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
    );
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await;
    reply.assert_problem(413, "payload_too_large");
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/register"))
                .header("content-type", "text/plain")
                .body("email=x"),
        )
        .await;
    reply.assert_problem(415, "unsupported_media_type");
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json")
                .body(format!("{{\"email\": {deep}}}")),
        )
        .await;
    reply.assert_problem(400, "malformed_body");
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json")
                .body(vec![0xff, 0xfe, 0x00]),
        )
        .await;
    reply.assert_problem(400, "malformed_body");
    // The service is unharmed.
    assert_eq!(app.get("/health", None).await.status, 200);
}

/// No body at all (no content type, or JSON's) is an empty object: 422
/// naming the required fields, not 415 or 400. A body of another type is
/// still 415.
async fn a_request_without_a_body_hears_which_fields_are_required(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let fields = |reply: &Reply| -> Vec<String> {
        reply.assert_problem(422, "validation_failed");
        let body = reply.json();
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = app
        .send(app.client.delete(app.url("/auth/me")).bearer_auth(&token))
        .await;
    assert_eq!(fields(&reply), ["current_password"]);
    let reply = app.send(app.client.post(app.url("/auth/register"))).await;
    assert_eq!(fields(&reply), ["email", "password"]);
    let reply = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(fields(&reply), ["email", "password"]);
    app.send(
        app.client
            .post(app.url("/auth/login"))
            .header("content-type", "text/plain"),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
}

/// A session shorter than a refresh token's lifetime bounds the cookie:
/// at login and at each refresh, `Max-Age` is what is left of it.
async fn the_refresh_cookie_never_outlives_its_session(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![
            ("session_max_lifetime", "120".into()),
            ("refresh_token_ttl", "600".into()),
        ]),
    )
    .await;
    let max_age = |reply: &Reply| -> u64 {
        let cookie = reply
            .headers_all("set-cookie")
            .into_iter()
            .find(|value| value.starts_with("__Secure-refresh_token="))
            .unwrap_or_else(|| panic!("no refresh cookie: {:?}", reply.headers));
        cookie
            .rsplit("Max-Age=")
            .next()
            .and_then(|age| age.split(';').next())
            .and_then(|age| age.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Max-Age in {cookie}"))
    };
    let (_, login) = app.signed_in_user().await;
    assert_eq!(max_age(&login), 120);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let refreshed = app
        .refresh_with_cookie(&login.refresh_cookie().unwrap())
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let left = max_age(&refreshed);
    assert!((110..=118).contains(&left), "Max-Age={left}");
}

/// Without `trusted_proxies`, `X-Forwarded-For` is only the client's own
/// claim: a new address in it per request is still the same client.
async fn a_forwarded_address_counts_only_from_a_trusted_proxy(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("registrations_per_ip", "2".into())]),
    )
    .await;
    for (email, ip) in [
        ("a@example.com", "203.0.113.40"),
        ("b@example.com", "203.0.113.41"),
    ] {
        assert_eq!(app.register_from(email, ip).await.status, 201);
    }
    app.register_from("c@example.com", "203.0.113.42")
        .await
        .assert_problem(429, "rate_limited");
    let addresses = app
        .sql("SELECT DISTINCT ip FROM audit_events WHERE event = 'register'")
        .await;
    assert_eq!(addresses, vec![vec![Some("127.0.0.1".to_owned())]]);
}

/// A body of exactly 64 KiB is read and answered on its merits; one byte
/// more is 413, whether the client sent a length or chunks.
async fn the_body_limit_is_sixty_four_kib_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let send = |size: usize, chunked: bool| {
        let mut body = br#"{"email": "not an email", "password": "x"}"#.to_vec();
        body.resize(size, b' ');
        let body = if chunked {
            let chunks = body
                .chunks(4_096)
                .map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(chunk)))
                .collect::<Vec<_>>();
            reqwest::Body::wrap_stream(futures::stream::iter(chunks))
        } else {
            reqwest::Body::from(body)
        };
        app.send(
            app.client
                .post(app.url("/auth/register"))
                .header("content-type", "application/json")
                .body(body),
        )
    };
    for chunked in [false, true] {
        send(64 * 1024, chunked)
            .await
            .assert_problem(422, "validation_failed");
        send(64 * 1024 + 1, chunked)
            .await
            .assert_problem(413, "payload_too_large");
    }
}

async fn the_audit_trail_records_each_event_and_no_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, login) = app.signed_in_user().await;
    let refresh = login.refresh_cookie().unwrap();
    app.login(&email, "a wrong password here").await;
    let refreshed = app.refresh_with_cookie(&refresh).await;
    let access = refreshed.access_token();
    let other = app.login(&email, PASSWORD).await;
    let (_, other_claims) = jwt_parts(&other.access_token());
    app.send(
        app.client
            .delete(app.url(&format!(
                "/auth/sessions/{}",
                other_claims["sid"].as_str().unwrap()
            )))
            .bearer_auth(&access),
    )
    .await;
    app.post_json(
        "/auth/password",
        json!({"current_password": PASSWORD, "new_password": "another fine passphrase"}),
        Some(&access),
    )
    .await;
    app.logout_with_cookie(&refreshed.refresh_cookie().unwrap(), None)
        .await;

    let rows = app
        .sql("SELECT event, user_id, session_id, ip, user_agent, detail, at FROM audit_events ORDER BY id")
        .await;
    let events: Vec<&str> = rows.iter().map(|row| row[0].as_deref().unwrap()).collect();
    for expected in [
        "register",
        "login_succeeded",
        "login_failed",
        "refresh",
        "session_revoked",
        "password_changed",
        "logout",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    let everything = format!("{rows:?}");
    for secret in [
        PASSWORD,
        "another fine passphrase",
        "a wrong password here",
        &refresh,
        &access,
    ] {
        assert!(
            !everything.contains(secret),
            "a secret is in the audit trail"
        );
    }
    assert!(
        rows.iter()
            .all(|row| row[3].as_deref() == Some("127.0.0.1"))
    );
    assert!(rows.iter().all(|row| {
        row[6]
            .as_deref()
            .is_some_and(|at| at.parse::<i64>().is_ok())
    }));
}
