//! Email verification and password recovery, through a real HTTP mail
//! service stand-in (`MailSink`) on 127.0.0.1, and the development outbox
//! of the embedded default.

use serde_json::json;

use crate::helpers::*;
use crate::mail_sink::{MailSink, link_token};
use crate::on_every_backend;

on_every_backend!(
    registration_mails_a_link_that_verifies_the_address_once,
    a_reset_link_sets_the_password_and_ends_every_session,
    an_unknown_email_gets_the_same_answer_and_no_mail,
    a_message_the_mail_service_refused_is_kept_and_delivered_later,
    unverified_accounts_can_be_refused_tokens,
    admin_emails_grant_admin_only_to_a_verified_address,
    a_new_verification_link_is_throttled_and_refused_once_verified,
    links_work_for_their_lifetime_and_no_longer,
    forgotten_password_requests_are_limited_per_address,
    of_reset_links_requested_at_once_only_one_works,
);

const API_KEY: &str = "test-mail-api-key";

async fn app_with_sink(
    backend: Backend,
    extra: Vec<(&'static str, String)>,
) -> (TestApp, MailSink) {
    let sink = MailSink::start().await;
    let mut variables = vec![
        ("mail_url", sink.url()),
        // Only the sink: the default allows https only.
        ("mail_allowed_host", format!("http://{}", sink.address)),
        ("mail_api_key", API_KEY.to_owned()),
        ("mail_from", "accounts@example.com".to_owned()),
        ("app_url", "https://app.example.com".to_owned()),
    ];
    variables.extend(extra);
    let app = spawn_app_with(backend, AppOptions::with_variables(variables)).await;
    (app, sink)
}

async fn registration_mails_a_link_that_verifies_the_address_once(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;

    let registered = app.register("ada@example.com", PASSWORD).await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    assert_eq!(registered.json()["email_verified"], false);

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(
        mail.authorization.as_deref(),
        Some("Bearer test-mail-api-key")
    );
    assert!(mail.idempotency_key.is_some());
    assert_eq!(mail.body["from"], "accounts@example.com");
    assert_eq!(mail.body["to"], "ada@example.com");
    let text = mail.body["text"].as_str().unwrap();
    assert!(
        text.contains("https://app.example.com/verify-email?token="),
        "{text}"
    );
    assert!(mail.body["html"].as_str().unwrap().contains("<a href="));
    let token = link_token(text, "/verify-email").unwrap();
    assert!(token.len() >= 43, "256 bits: {token}");

    let verified = app
        .post_json("/auth/verify-email", json!({"token": token}), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.json()["email_verified"], true);
    app.post_json("/auth/verify-email", json!({"token": token}), None)
        .await
        .assert_problem(400, "invalid_token");
    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.json()["user"]["email_verified"], true);
    // Only a digest of the token is stored.
    let stored = app.sql("SELECT digest FROM email_tokens").await;
    assert!(
        stored
            .iter()
            .all(|row| row[0].as_deref() != Some(token.as_str()))
    );
}

async fn a_reset_link_sets_the_password_and_ends_every_session(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;
    let (email, login) = app.signed_in_user().await;
    let (access, refresh) = (login.access_token(), login.refresh_cookie().unwrap());
    sink.wait_for(1).await;

    let forgot = app
        .post_json("/auth/password/forgot", json!({"email": email}), None)
        .await;
    assert_eq!(forgot.status, 202, "{}", forgot.text);
    let mail = sink.wait_for(2).await.remove(1);
    let token = link_token(mail.body["text"].as_str().unwrap(), "/reset-password").unwrap();
    // Once delivered, no message keeps its body: the database holds link
    // tokens only as digests (API.md).
    let bodies = "SELECT text_body || html_body FROM outbox WHERE delivered_at IS NOT NULL";
    let mut delivered = app.sql(bodies).await;
    for _ in 0..50 {
        if delivered.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        delivered = app.sql(bodies).await;
    }
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for row in &delivered {
        assert_eq!(row[0].as_deref(), Some(""), "{delivered:?}");
    }

    let new_password = "a brand new passphrase";
    app.post_json(
        "/auth/password/reset",
        json!({"token": token, "new_password": "short"}),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
    let reset = app
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "new_password": new_password}),
            None,
        )
        .await;
    assert_eq!(reset.status, 204, "{}", reset.text);

    app.get("/auth/me", Some(&access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh_with_cookie(&refresh)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.login(&email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    let again = app.login(&email, new_password).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["user"]["email_verified"], true);
    app.post_json(
        "/auth/password/reset",
        json!({"token": token, "new_password": "yet another passphrase"}),
        None,
    )
    .await
    .assert_problem(400, "invalid_token");
}

async fn an_unknown_email_gets_the_same_answer_and_no_mail(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;
    let (email, _) = app.signed_in_user().await;
    sink.wait_for(1).await;

    let known = app
        .post_json("/auth/password/forgot", json!({"email": email}), None)
        .await;
    let unknown = app
        .post_json(
            "/auth/password/forgot",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(
        (known.status, known.text.as_str()),
        (unknown.status, unknown.text.as_str())
    );
    assert_eq!(known.status, 202);

    sink.wait_for(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let received = sink.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received
            .iter()
            .all(|mail| mail.body["to"] == email.as_str())
    );
    app.post_json(
        "/auth/password/forgot",
        json!({"email": "not an email"}),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn a_message_the_mail_service_refused_is_kept_and_delivered_later(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;
    sink.fail(true);
    assert_eq!(
        app.register("grace@example.com", PASSWORD).await.status,
        201
    );

    // The request succeeded; the message is kept, with what went wrong.
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = app
            .sql("SELECT attempts, last_error, delivered_at FROM outbox")
            .await;
        if kept.first().is_some_and(|row| row[1].is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0][0].as_deref(), Some("1"));
    assert!(kept[0][1].as_deref().unwrap().contains("500"), "{kept:?}");
    assert!(kept[0][2].is_none());

    // Later, with the service back: its retry time has come (the clock is
    // moved, not waited for), and the next health check delivers it.
    sink.fail(false);
    app.sql("UPDATE outbox SET next_attempt_at = 0").await;
    assert_eq!(app.get("/health", None).await.status, 200);
    let delivered = sink.wait_for(1).await;
    assert_eq!(delivered[0].body["to"], "grace@example.com");
    // Once delivered, it is never sent again.
    app.sql("UPDATE outbox SET next_attempt_at = 0").await;
    assert_eq!(app.get("/health", None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(sink.received().len(), 1);
    let row = app.sql("SELECT attempts, delivered_at FROM outbox").await;
    assert_eq!(row[0][0].as_deref(), Some("2"));
    assert!(row[0][1].is_some());
}

async fn unverified_accounts_can_be_refused_tokens(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![("require_verified_email", "true".into())]).await;
    assert_eq!(app.register("lin@example.com", PASSWORD).await.status, 201);
    let refused = app.login("lin@example.com", PASSWORD).await;
    refused.assert_problem(403, "email_not_verified");
    assert!(refused.refresh_cookie().is_none());
    // A wrong password is still just wrong.
    app.login("lin@example.com", "not the password at all")
        .await
        .assert_problem(401, "invalid_credentials");

    let mail = sink.wait_for(1).await.remove(0);
    let token = link_token(mail.body["text"].as_str().unwrap(), "/verify-email").unwrap();
    app.post_json("/auth/verify-email", json!({"token": token}), None)
        .await;
    assert_eq!(app.login("lin@example.com", PASSWORD).await.status, 200);
}

async fn admin_emails_grant_admin_only_to_a_verified_address(backend: Backend) {
    let admin = "root@example.com";
    let (app, sink) = app_with_sink(backend, vec![("admin_emails", admin.into())]).await;
    let registered = app.register(admin, PASSWORD).await;
    assert_eq!(registered.json()["roles"], json!(["user"]));
    let before = app.login(admin, PASSWORD).await;
    let (_, claims) = jwt_parts(&before.access_token());
    assert_eq!(claims["roles"], json!(["user"]));
    app.post_json(
        "/questions/topics",
        json!({"slug": "x", "name": "X"}),
        Some(&before.access_token()),
    )
    .await
    .assert_problem(403, "forbidden");

    let mail = sink.wait_for(1).await.remove(0);
    let token = link_token(mail.body["text"].as_str().unwrap(), "/verify-email").unwrap();
    let verified = app
        .post_json("/auth/verify-email", json!({"token": token}), None)
        .await;
    assert_eq!(verified.json()["roles"], json!(["user", "admin"]));
    // The session from before gets admin at its next refresh.
    let refreshed = app
        .refresh_with_cookie(&before.refresh_cookie().unwrap())
        .await;
    let (_, claims) = jwt_parts(&refreshed.access_token());
    assert_eq!(claims["roles"], json!(["user", "admin"]));
}

async fn a_new_verification_link_is_throttled_and_refused_once_verified(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;
    let (_, login) = app.signed_in_user().await;
    let access = login.access_token();
    let mut accepted = 0;
    let mut last = None;
    for _ in 0..7 {
        let reply = app
            .post_json("/auth/verify-email/request", json!({}), Some(&access))
            .await;
        if reply.status == 202 {
            accepted += 1;
        }
        last = Some(reply);
    }
    assert_eq!(accepted, 5);
    let last = last.unwrap();
    last.assert_problem(429, "rate_limited");
    assert!(last.header("retry-after").is_some());

    let mails = sink.wait_for(6).await;
    let token = link_token(mails[5].body["text"].as_str().unwrap(), "/verify-email").unwrap();
    assert_eq!(
        app.post_json("/auth/verify-email", json!({"token": token}), None)
            .await
            .status,
        200
    );
    app.post_json("/auth/verify-email/request", json!({}), Some(&access))
        .await
        .assert_problem(409, "already_verified");
}

#[tokio::test]
async fn without_mail_url_the_link_is_kept_and_shown_in_the_log() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(app.register("dev@example.com", PASSWORD).await.status, 201);
    let token = verification_token_from_log(&app, "dev@example.com").expect("the link in the log");
    let kept = app.sql("SELECT recipient, delivered_at FROM outbox").await;
    assert_eq!(kept, vec![vec![Some("dev@example.com".to_owned()), None]]);
    assert_eq!(
        app.post_json("/auth/verify-email", json!({"token": token}), None)
            .await
            .status,
        200
    );
}

/// Makes `purpose`'s unused links `seconds` older, as if that much time
/// had passed since they were sent.
async fn age_links(app: &TestApp, purpose: &str, seconds: i64) {
    app.sql(&format!(
        "UPDATE email_tokens SET created_at = created_at - {seconds}, \
         expires_at = expires_at - {seconds} WHERE purpose = '{purpose}' AND used_at IS NULL"
    ))
    .await;
}

/// A verification link works for 24 hours and a reset link for one; a
/// minute either side of that tells them apart.
async fn links_work_for_their_lifetime_and_no_longer(backend: Backend) {
    const DAY: i64 = 24 * 3_600;
    const HOUR: i64 = 3_600;
    let (app, sink) = app_with_sink(backend, vec![]).await;
    let (email, login) = app.signed_in_user().await;
    let access = login.access_token();
    let token_in = |mail: &crate::mail_sink::Received, path: &str| {
        link_token(mail.body["text"].as_str().unwrap(), path).unwrap()
    };

    let stale = token_in(&sink.wait_for(1).await[0], "/verify-email");
    age_links(&app, "verify_email", DAY + 60).await;
    app.post_json("/auth/verify-email", json!({"token": stale}), None)
        .await
        .assert_problem(400, "invalid_token");
    let requested = app
        .post_json("/auth/verify-email/request", json!({}), Some(&access))
        .await;
    assert_eq!(requested.status, 202, "{}", requested.text);
    let fresh = token_in(&sink.wait_for(2).await[1], "/verify-email");
    age_links(&app, "verify_email", DAY - 60).await;
    let verified = app
        .post_json("/auth/verify-email", json!({"token": fresh}), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);

    let forgot = || app.post_json("/auth/password/forgot", json!({"email": email}), None);
    assert_eq!(forgot().await.status, 202);
    let stale = token_in(&sink.wait_for(3).await[2], "/reset-password");
    age_links(&app, "reset_password", HOUR + 60).await;
    let new_password = "a brand new passphrase";
    app.post_json(
        "/auth/password/reset",
        json!({"token": stale, "new_password": new_password}),
        None,
    )
    .await
    .assert_problem(400, "invalid_token");
    assert_eq!(forgot().await.status, 202);
    let fresh = token_in(&sink.wait_for(4).await[3], "/reset-password");
    age_links(&app, "reset_password", HOUR - 60).await;
    let reset = app
        .post_json(
            "/auth/password/reset",
            json!({"token": fresh, "new_password": new_password}),
            None,
        )
        .await;
    assert_eq!(reset.status, 204, "{}", reset.text);
}

/// Forgot-password requests are limited per client address as well as per
/// email (30 an hour), whichever addresses they ask about.
async fn forgotten_password_requests_are_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, throttled(vec![])).await;
    let forgot = |n: u32, ip: &'static str| {
        app.send(
            app.client
                .post(app.url("/auth/password/forgot"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": format!("someone{n}@example.com")})),
        )
    };
    for n in 0..30 {
        let reply = forgot(n, "198.51.100.30").await;
        assert_eq!(reply.status, 202, "request {n}: {}", reply.text);
    }
    let refused = forgot(30, "198.51.100.30").await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(forgot(31, "198.51.100.31").await.status, 202);
}

/// A new reset link voids the older ones, also when the requests come at
/// once: of the links they mail, one works.
async fn of_reset_links_requested_at_once_only_one_works(backend: Backend) {
    let (app, sink) = app_with_sink(backend, vec![]).await;
    let (email, _) = app.signed_in_user().await;
    sink.wait_for(1).await;
    if backend.uses_postgres() {
        // Widens the moment between voiding the older links and inserting
        // the new one, in which concurrent requests used to miss each
        // other's link and leave several working.
        app.sql(
            "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$; \
             CREATE TRIGGER slow BEFORE INSERT ON email_tokens \
             FOR EACH ROW EXECUTE FUNCTION slow_insert()",
        )
        .await;
    }
    let requests =
        (0..5).map(|_| app.post_json("/auth/password/forgot", json!({"email": email}), None));
    for reply in futures::future::join_all(requests).await {
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let mail = sink.wait_for(6).await;
    let mut reset = Vec::new();
    for (n, message) in mail[1..].iter().enumerate() {
        let token = link_token(message.body["text"].as_str().unwrap(), "/reset-password").unwrap();
        let new_password = format!("new passphrase number {n}");
        let reply = app
            .post_json(
                "/auth/password/reset",
                json!({"token": token, "new_password": new_password}),
                None,
            )
            .await;
        if reply.status == 204 {
            reset.push(new_password);
        } else {
            reply.assert_problem(400, "invalid_token");
        }
    }
    assert_eq!(reset.len(), 1, "links that worked: {reset:?}");
    assert_eq!(app.login(&email, &reset[0]).await.status, 200);
}
