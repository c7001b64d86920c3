//! Deleting an account, by an admin or by its owner, leaves no row or key
//! that refers to the user, except the audit trail, which admins list with
//! `GET /admin/audit`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::admin::{
    ADMIN, Admin, app_with_admin, delete_user, encoded, get_user, is_rfc3339_utc, pages,
    patch_user, registered, user_id,
};
use crate::helpers::*;
use crate::mfa::{enrolled, oathtool_code, step_now};
use crate::on_every_backend;

on_every_backend!(
    an_admin_deletes_a_user_and_no_row_or_key_refers_to_them,
    a_user_deletes_their_own_account_with_their_password,
    the_audit_lists_events_newest_first_filtered_by_user_and_event,
    audit_pages_neither_repeat_nor_skip_events_while_new_ones_arrive,
    two_admins_deleting_each_other_leave_the_kept_one_signed_in,
    logins_racing_their_accounts_deletion_get_401_or_a_session_that_ends,
    second_factor_logins_racing_their_accounts_deletion_get_401_not_500,
);

/// A user who left a trace in every store.
struct Leaver {
    id: String,
    email: String,
    /// The session of their password login.
    sid: String,
    access: String,
    refresh: String,
    verification_token: String,
    reset_token: String,
}

impl Leaver {
    /// What refers to them: their id, their email and their session id.
    fn needles(&self) -> [&str; 3] {
        [&self.id, &self.email, &self.sid]
    }
}

/// Registers `email` and leaves: a session with a retired and a current
/// refresh token, an answer to an admin's question, TOTP with recovery
/// codes, a login waiting for its second factor, a failed login, pending
/// verification and reset links, their mail in the outbox and the
/// forgot-password counter of their address.
async fn leaving_traces(app: &TestApp, admin: &Admin, email: &str) -> Leaver {
    let topic = app
        .post_json(
            "/questions/topics",
            json!({"slug": "farewell", "name": "Farewell"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(topic.status, 201, "{}", topic.text);
    let question = app
        .post_json(
            "/questions/topics/farewell/questions",
            json!({"prompt": "Stay?", "choices": ["Yes", "No"], "answer_index": 1}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(question.status, 201, "{}", question.text);
    let question = question.json()["id"].as_str().unwrap().to_owned();

    let id = registered(app, email).await;
    let verification_token = verification_token_from_log(app, email).expect("a link in the log");
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let sid = jwt_parts(&login.access_token()).1["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = app
        .refresh_with_cookie(&login.refresh_cookie().unwrap())
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let (access, refresh) = (
        refreshed.access_token(),
        refreshed.refresh_cookie().unwrap(),
    );

    let answered = app
        .post_json(
            &format!("/questions/{question}/answer"),
            json!({"answer_index": 0}),
            Some(&access),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.text);

    let enrolment = app
        .post_json("/auth/mfa/totp", json!(null), Some(&access))
        .await;
    assert_eq!(enrolment.status, 200, "{}", enrolment.text);
    let secret = enrolment.json()["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post_json(
            "/auth/mfa/totp/confirm",
            json!({"code": oathtool_code(&secret, step_now())}),
            Some(&access),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    app.login(email, PASSWORD)
        .await
        .assert_problem(403, "mfa_required");
    app.login(email, "not the password at all")
        .await
        .assert_problem(401, "invalid_credentials");

    let forgot = app
        .post_json("/auth/password/forgot", json!({"email": email}), None)
        .await;
    assert_eq!(forgot.status, 202, "{}", forgot.text);
    let reset_token = link_from_log(app, email, "/reset-password")
        .await
        .expect("a reset link in the log");
    Leaver {
        id,
        email: email.to_owned(),
        sid,
        access,
        refresh,
        verification_token,
        reset_token,
    }
}

/// The token of the newest `path` link mailed to `email` (printed to the
/// log, as the app has no `mail_url`), waiting up to five seconds: a reset
/// link is sent after the response.
async fn link_from_log(app: &TestApp, email: &str, path: &str) -> Option<String> {
    for _ in 0..50 {
        let log = app.log_text();
        let found = log
            .rfind(&format!(" to {email} (kept in the outbox"))
            .and_then(|start| crate::mail_sink::link_token(&log[start..], path));
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// Every place, but the audit trail, where the app's stores hold one of
/// `needles`: `table.column = value` for each SQL value, found by listing
/// every column of every table; `redis key <key>` and `redis value of
/// <key>: <value>` for the keys under the app's prefix.
async fn mentions(app: &TestApp, needles: &[&str]) -> Vec<String> {
    let holds = |text: &str| needles.iter().any(|needle| text.contains(needle));
    let columns = if app.backend.uses_postgres() {
        app.sql(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        .await
    } else {
        app.sql(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        )
        .await
    };
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in columns {
        let [table, column] = [&row[0], &row[1]].map(|name| name.clone().unwrap());
        tables.entry(table).or_default().push(column);
    }
    assert!(tables.contains_key("users"), "{tables:?}");
    let mut found = Vec::new();
    for (table, columns) in tables.iter().filter(|(table, _)| *table != "audit_events") {
        let list = columns
            .iter()
            .map(|column| format!("\"{column}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL's simple query protocol answers every type as text.
        for row in app.sql(&format!("SELECT {list} FROM \"{table}\"")).await {
            for (column, value) in columns.iter().zip(row) {
                if let Some(value) = value.filter(|value| holds(value)) {
                    found.push(format!("{table}.{column} = {}", shortened(&value)));
                }
            }
        }
    }
    if app.backend.uses_redis() {
        let mut connection = redis_connection().await;
        for key in app.redis_keys().await {
            if holds(&key) {
                found.push(format!("redis key {key}"));
            }
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            let read = match kind.as_str() {
                "string" => "GET",
                "hash" => "HGETALL",
                "set" => "SMEMBERS",
                "zset" | "list" => "",
                "none" => continue, // expired since KEYS
                other => panic!("{key} is a {other}: the test cannot read it"),
            };
            let command = if read.is_empty() {
                let mut range = redis::cmd(if kind == "zset" { "ZRANGE" } else { "LRANGE" });
                range.arg(&key).arg(0).arg(-1);
                range
            } else {
                let mut command = redis::cmd(read);
                command.arg(&key);
                command
            };
            let values: Vec<Vec<u8>> = if kind == "string" {
                let value: Option<Vec<u8>> = command.query_async(&mut connection).await.unwrap();
                value.into_iter().collect()
            } else {
                command.query_async(&mut connection).await.unwrap()
            };
            for value in values {
                let value = String::from_utf8_lossy(&value);
                if holds(&value) {
                    found.push(format!("redis value of {key}: {}", shortened(&value)));
                }
            }
        }
    }
    found
}

fn shortened(value: &str) -> String {
    value.chars().take(120).collect()
}

/// The places a [`Leaver`] must be found before the deletion, so that
/// finding nothing afterwards means something.
fn assert_found_everywhere(mentions: &[String], backend: Backend) {
    let mut places = vec![
        "users.id",
        "users.email",
        "answers.user_id",
        "user_totp.user_id",
        "recovery_codes.user_id",
        "mfa_challenges.user_id",
        "email_tokens.user_id",
        "outbox.recipient",
    ];
    if backend.uses_redis() {
        places.extend(["redis key ", "redis value of "]);
    } else {
        places.extend([
            "sessions.user_id",
            "refresh_tokens.session_id",
            "counters.key",
        ]);
    }
    for place in places {
        assert!(
            mentions.iter().any(|found| found.starts_with(place)),
            "nothing in {place} before the deletion: {mentions:#?}"
        );
    }
}

/// After the deletion: nothing refers to the user, and nothing they held
/// (tokens, links, password) works.
async fn assert_gone(app: &TestApp, admin: &Admin, leaver: &Leaver) {
    let left = mentions(app, &leaver.needles()).await;
    assert!(left.is_empty(), "still there after the deletion: {left:#?}");
    get_user(app, &admin.token, &leaver.id)
        .await
        .assert_problem(404, "not_found");
    app.get("/auth/me", Some(&leaver.access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh_with_cookie(&leaver.refresh)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.login(&leaver.email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    app.post_json(
        "/auth/verify-email",
        json!({"token": leaver.verification_token}),
        None,
    )
    .await
    .assert_problem(400, "invalid_token");
    app.post_json(
        "/auth/password/reset",
        json!({"token": leaver.reset_token, "new_password": "a brand new passphrase"}),
        None,
    )
    .await
    .assert_problem(400, "invalid_token");
}

/// Every event of the audit listing with these filters (`a=b&c=d` or
/// empty), newest first.
async fn audit(app: &TestApp, admin: &Admin, filters: &str) -> Vec<Value> {
    let path = match filters {
        "" => "/admin/audit".to_owned(),
        filters => format!("/admin/audit?{filters}"),
    };
    pages(app, &admin.token, &path, 100).await.concat()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            event["id"]
                .as_str()
                .unwrap_or_else(|| panic!("the id is a string: {event}"))
                .to_owned()
        })
        .collect()
}

async fn an_admin_deletes_a_user_and_no_row_or_key_refers_to_them(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let (_, bystander) = app.signed_in_user().await;
    let leaver = leaving_traces(&app, &admin, "leaver@example.com").await;
    assert_found_everywhere(&mentions(&app, &leaver.needles()).await, backend);

    let deleted = delete_user(&app, &admin.token, &leaver.id).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(deleted.text, "");
    assert_gone(&app, &admin, &leaver).await;
    delete_user(&app, &admin.token, &leaver.id)
        .await
        .assert_problem(404, "not_found");

    let events = audit(
        &app,
        &admin,
        &format!("user_id={}&event=admin_user_deleted", leaver.id),
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user_id"], leaver.id.as_str());
    assert!(
        events[0]["detail"].to_string().contains(&admin.id),
        "{}",
        events[0]
    );

    // Nobody else lost anything: the bystander's session, the admin's
    // question.
    assert_eq!(app.topics(&bystander.access_token()).await.status, 200);
    let topics = app.topics(&admin.token).await.json();
    assert_eq!(topics[0]["question_count"], 1, "{topics}");
    // The address is free again, for a new account that starts afresh.
    let again = app.register(&leaver.email, PASSWORD).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_ne!(again.json()["id"], leaver.id.as_str());
    assert_eq!(again.json()["mfa_enabled"], false);
}

/// `DELETE /auth/me` needs the caller's token and password; with them the
/// account goes as it does when an admin deletes it.
async fn a_user_deletes_their_own_account_with_their_password(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let leaver = leaving_traces(&app, &admin, "leaving@example.com").await;
    let password = |password: &str| json!({"current_password": password});
    app.delete_json("/auth/me", password(PASSWORD), None)
        .await
        .assert_problem(401, "missing_token");
    app.delete_json(
        "/auth/me",
        password("not the password at all"),
        Some(&leaver.access),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    assert_eq!(app.get("/auth/me", Some(&leaver.access)).await.status, 200);
    assert_found_everywhere(&mentions(&app, &leaver.needles()).await, backend);

    let deleted = app
        .delete_json("/auth/me", password(PASSWORD), Some(&leaver.access))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_gone(&app, &admin, &leaver).await;

    let events = audit(
        &app,
        &admin,
        &format!("user_id={}&event=account_deleted", leaver.id),
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user_id"], leaver.id.as_str());
}

/// Events come newest first with the contracted members; `user_id` and
/// `event` are exact filters, alone or together; each admin change is an
/// `admin_user_updated` event of its target naming the admin.
async fn the_audit_lists_events_newest_first_filtered_by_user_and_event(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let one = registered(&app, "one@example.com").await;
    let two = registered(&app, "two@example.com").await;
    app.login("one@example.com", "not the password at all")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(app.login("one@example.com", PASSWORD).await.status, 200);
    for (id, change) in [
        (&one, json!({"disabled": true})),
        (&one, json!({"disabled": false})),
        (&two, json!({"roles": ["user", "admin"]})),
    ] {
        let reply = patch_user(&app, &admin.token, id, change).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }

    let everything = audit(&app, &admin, "").await;
    let times: Vec<&str> = everything
        .iter()
        .map(|event| &event["at"].as_str().unwrap()[..19])
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");
    let unique: std::collections::BTreeSet<String> = ids(&everything).into_iter().collect();
    assert_eq!(unique.len(), everything.len());
    // Ids are UUIDs, as every id of the contract; newest first, they sort
    // downwards.
    for id in &unique {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    let listed = ids(&everything);
    assert!(
        listed.windows(2).all(|pair| pair[0] > pair[1]),
        "{listed:?}"
    );
    for event in &everything {
        assert!(is_rfc3339_utc(&event["at"]), "{event}");
        assert!(event["event"].is_string(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        for member in ["user_id", "session_id", "user_agent", "detail"] {
            assert!(event.get(member).is_some(), "no {member} in {event}");
        }
    }

    let ones = audit(&app, &admin, &format!("user_id={one}")).await;
    assert!(
        ones.iter().all(|event| event["user_id"] == one.as_str()),
        "{ones:?}"
    );
    let names: Vec<&str> = ones.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let oldest_update = names.iter().rposition(|e| *e == "admin_user_updated");
    let login = names.iter().position(|e| *e == "login_succeeded");
    let register = names.iter().position(|e| *e == "register");
    assert!(
        oldest_update.is_some() && oldest_update < login && login < register,
        "newest first: {names:?}"
    );

    let updates = audit(&app, &admin, "event=admin_user_updated").await;
    let targets: Vec<&str> = updates
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [&two, &one, &one]);
    for update in &updates {
        assert_eq!(update["event"], "admin_user_updated");
        assert!(update["detail"].to_string().contains(&admin.id), "{update}");
    }
    let both = audit(
        &app,
        &admin,
        &format!("user_id={one}&event=admin_user_updated"),
    )
    .await;
    assert_eq!(ids(&both), ids(&updates[1..]));
    // An account's failed logins are found under it.
    let failed = audit(&app, &admin, &format!("user_id={one}&event=login_failed")).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["detail"], "wrong password");

    for filters in [
        "event=admin_user".to_owned(),
        "event=ADMIN_USER_UPDATED".to_owned(),
        format!("user_id={}", uuid::Uuid::new_v4()),
    ] {
        assert_eq!(
            audit(&app, &admin, &filters).await,
            Vec::<Value>::new(),
            "{filters}"
        );
    }
    // A prefix of an id is no id: refused, not matched.
    app.get(
        &format!("/admin/audit?user_id={}", &one[..8]),
        Some(&admin.token),
    )
    .await
    .assert_problem(422, "validation_failed");
}

/// A client paging through the audit trail while events are recorded sees
/// exactly the events there were when it started, each once, in order;
/// the new ones head a fresh listing. With and without a filter.
async fn audit_pages_neither_repeat_nor_skip_events_while_new_ones_arrive(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let (email, login) = app.signed_in_user().await;
    let id = login.json()["user"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    }
    for filters in [String::new(), format!("user_id={id}&")] {
        let before = ids(&audit(&app, &admin, filters.trim_end_matches('&')).await);
        assert!(before.len() >= 5, "{before:?}");
        let first = app
            .get(
                &format!("/admin/audit?{filters}limit=2"),
                Some(&admin.token),
            )
            .await;
        assert_eq!(first.status, 200, "{}", first.text);
        let first = first.json();
        let mut seen = ids(first["items"].as_array().unwrap());
        assert_eq!(seen, before[..2]);

        for _ in 0..2 {
            assert_eq!(app.login(&email, PASSWORD).await.status, 200);
        }
        let mut cursor = first["next_cursor"]
            .as_str()
            .expect("more pages")
            .to_owned();
        // The cursor is the page's last event's id.
        assert_eq!(cursor, seen[1]);
        for page_number in 1.. {
            assert!(page_number < 50, "paging does not end");
            let path = format!("/admin/audit?{filters}limit=2&cursor={}", encoded(&cursor));
            let page = app.get(&path, Some(&admin.token)).await;
            assert_eq!(page.status, 200, "{path}: {}", page.text);
            let page = page.json();
            seen.extend(ids(page["items"].as_array().unwrap()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, before, "{filters}");

        let fresh = audit(&app, &admin, filters.trim_end_matches('&')).await;
        assert!(fresh.len() >= before.len() + 2, "{filters}: {fresh:?}");
        let new = fresh.len() - before.len();
        assert_eq!(ids(&fresh[new..]), before, "{filters}");
        let logins = fresh[..new]
            .iter()
            .filter(|event| event["event"] == "login_succeeded")
            .count();
        assert_eq!(logins, 2, "{filters}: {:?}", &fresh[..new]);
    }
}

/// The only two admins delete each other at once: one deletion is refused
/// with 409, and that refusal ends nothing, so the admin that is kept stays
/// signed in.
async fn two_admins_deleting_each_other_leave_the_kept_one_signed_in(backend: Backend) {
    let (app, mut first) = app_with_admin(backend).await;
    for round in 0..4 {
        let email = format!("second-{round}@example.com");
        let id = registered(&app, &email).await;
        let promoted =
            patch_user(&app, &first.token, &id, json!({"roles": ["user", "admin"]})).await;
        assert_eq!(promoted.status, 200, "{}", promoted.text);
        let login = app.login(&email, PASSWORD).await;
        let second = Admin {
            id: user_id(&login),
            token: login.access_token(),
        };
        let (by_first, by_second) = tokio::join!(
            delete_user(&app, &first.token, &second.id),
            delete_user(&app, &second.token, &first.id),
        );
        let statuses = [by_first.status, by_second.status];
        assert_eq!(
            statuses.iter().filter(|status| **status == 204).count(),
            1,
            "round {round}: {statuses:?} {} {}",
            by_first.text,
            by_second.text
        );
        assert!(statuses.iter().all(|status| *status < 500), "{statuses:?}");
        let (kept, first_was_deleted) = if by_first.status == 204 {
            (&first, false)
        } else {
            (&second, true)
        };
        let me = app.get("/auth/me", Some(&kept.token)).await;
        assert_eq!(
            me.status, 200,
            "round {round}: the admin that was kept lost its session: {}",
            me.text
        );
        if first_was_deleted {
            // Back to one admin from admin_emails, for the next round.
            app.register_verified(ADMIN, PASSWORD).await;
            let login = app.login(ADMIN, PASSWORD).await;
            first = Admin {
                id: user_id(&login),
                token: login.access_token(),
            };
            let removed = delete_user(&app, &first.token, &second.id).await;
            assert_eq!(removed.status, 204, "{}", removed.text);
        }
    }
}

/// Logins that race their account's deletion get either 401 (or 429) or a
/// session that ends with the account: never a 500 (on SQLite too, whose foreign
/// key error does not say which key failed).
async fn logins_racing_their_accounts_deletion_get_401_or_a_session_that_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..3 {
        let email = format!("racer-{round}@example.com");
        app.register(&email, PASSWORD).await;
        let token = app.login(&email, PASSWORD).await.access_token();
        let body = json!({"current_password": PASSWORD});
        let (deleted, logins) = tokio::join!(
            app.delete_json("/auth/me", body, Some(&token)),
            futures::future::join_all((0..12).map(|_| app.login(&email, PASSWORD))),
        );
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        for login in &logins {
            match login.status {
                200 => {
                    let me = app.get("/auth/me", Some(&login.access_token())).await;
                    me.assert_problem(401, "invalid_token");
                }
                // A login for an account that is gone is a failed one,
                // and counts towards throttling.
                429 => login.assert_problem(429, "rate_limited"),
                _ => login.assert_problem(401, "invalid_credentials"),
            }
        }
    }
}

/// The same race for an account with a second factor, whose password login
/// stores a challenge that refers to the account.
async fn second_factor_logins_racing_their_accounts_deletion_get_401_not_500(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        let account = enrolled(&app).await;
        let body = json!({"current_password": PASSWORD});
        let (deleted, logins) = tokio::join!(
            app.delete_json("/auth/me", body, Some(&account.token)),
            futures::future::join_all((0..12).map(|_| app.login(&account.email, PASSWORD))),
        );
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        for login in &logins {
            match login.status {
                403 => {
                    // Its challenge went with the account.
                    let mfa_token = login.json()["mfa_token"].as_str().unwrap().to_owned();
                    app.post_json(
                        "/auth/mfa/verify",
                        json!({"mfa_token": mfa_token, "code": "000000"}),
                        None,
                    )
                    .await
                    .assert_problem(401, "invalid_mfa_token");
                }
                429 => login.assert_problem(429, "rate_limited"),
                _ => login.assert_problem(401, "invalid_credentials"),
            }
        }
    }
}
