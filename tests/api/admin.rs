//! The administration component: who may use it, listing and reading
//! users, granting and taking roles, disabling accounts, and the last-admin
//! guard. Listing and reading users: `admin_listing.rs`; deleting
//! accounts and the audit listing: `admin_deletion.rs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    every_admin_route_needs_a_token_and_the_admin_role,
    an_admin_demoted_by_another_is_refused_at_once_and_admin_emails_grants_it_again_at_login,
    roles_granted_by_an_admin_reach_the_next_tokens_and_persist,
    the_last_enabled_admin_can_neither_lose_the_role_nor_be_disabled_nor_deleted,
    disabling_ends_every_session_at_once_and_refuses_the_password_until_reenabled,
    invalid_changes_are_refused_and_change_nothing,
);

/// The address in `admin_emails`.
pub(crate) const ADMIN: &str = "admin@example.com";

/// A signed-in admin: their user id and access token.
pub(crate) struct Admin {
    pub id: String,
    pub token: String,
}

/// The app with [`ADMIN`] in `admin_emails`, registered, verified and
/// signed in: the only admin.
pub(crate) async fn app_with_admin(backend: Backend) -> (TestApp, Admin) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("admin_emails", ADMIN.to_owned())]),
    )
    .await;
    app.register_verified(ADMIN, PASSWORD).await;
    let login = app.login(ADMIN, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let admin = Admin {
        id: login.json()["user"]["id"].as_str().unwrap().to_owned(),
        token: login.access_token(),
    };
    (app, admin)
}

/// Registers `email` (with [`PASSWORD`]) and returns the new user's id.
pub(crate) async fn registered(app: &TestApp, email: &str) -> String {
    let reply = app.register(email, PASSWORD).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// The user id in a login answer.
pub(crate) fn user_id(login: &Reply) -> String {
    login.json()["user"]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn get_user(app: &TestApp, token: &str, id: &str) -> Reply {
    app.get(&format!("/admin/users/{id}"), Some(token)).await
}

pub(crate) async fn patch_user(app: &TestApp, token: &str, id: &str, body: Value) -> Reply {
    app.patch_json(&format!("/admin/users/{id}"), body, Some(token))
        .await
}

pub(crate) async fn delete_user(app: &TestApp, token: &str, id: &str) -> Reply {
    app.delete(&format!("/admin/users/{id}"), Some(token)).await
}

/// Every page of a listing (`path` with its filters, without `limit`),
/// `limit` items at a time, following `next_cursor` until it is null.
pub(crate) async fn pages(app: &TestApp, token: &str, path: &str, limit: usize) -> Vec<Vec<Value>> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    while pages.len() < 100 {
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={}", encoded(cursor)));
        }
        let page = app.get(&url, Some(token)).await;
        assert_eq!(page.status, 200, "{url}: {}", page.text);
        let page = page.json();
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(items.len() <= limit, "{url}: {page}");
        pages.push(items.clone());
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return pages,
            other => panic!("next_cursor is a string or null, not {other}"),
        }
    }
    panic!("paging {path} does not end");
}

/// A cursor (opaque) as a query parameter value.
pub(crate) fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn roles(token: &str) -> Value {
    jwt_parts(token).1["roles"].clone()
}

/// An RFC 3339 UTC timestamp (`2025-01-02T03:04:05Z`, maybe with a
/// fraction).
pub(crate) fn is_rfc3339_utc(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|at| at.len() >= 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'))
}

/// `reply`, the answer to `route`, is this problem.
#[track_caller]
fn problem_at(route: &str, reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (status, code),
        "{route}: {}",
        reply.text
    );
    reply.assert_problem(status, code);
}

/// Without a token every route is 401 `missing_token` (a challenge without
/// an `error`), with a bad one 401 `invalid_token`, and with a user's token
/// 403 `forbidden`; none of the refused requests changes anything.
async fn every_admin_route_needs_a_token_and_the_admin_role(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let (_, login) = app.signed_in_user().await;
    let user = login.access_token();
    let id = user_id(&login);
    let routes = [
        (Method::GET, "/admin/users".to_owned(), None),
        (Method::GET, format!("/admin/users/{}", admin.id), None),
        (
            Method::PATCH,
            format!("/admin/users/{id}"),
            Some(json!({"roles": ["user", "admin"]})),
        ),
        (
            Method::PATCH,
            format!("/admin/users/{}", admin.id),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, format!("/admin/users/{}", admin.id), None),
        (Method::GET, "/admin/audit".to_owned(), None),
    ];
    for (method, path, body) in &routes {
        let request = |token: Option<&str>| {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request
        };
        let route = format!("{method} {path}");
        let missing = app.send(request(None)).await;
        problem_at(&route, &missing, 401, "missing_token");
        let challenge = missing.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"spin-auth\"") && !challenge.contains("error="),
            "{route}: {challenge:?}"
        );
        let bad = app.send(request(Some("not-a-jwt"))).await;
        problem_at(&route, &bad, 401, "invalid_token");
        let forbidden = app.send(request(Some(&user))).await;
        problem_at(&route, &forbidden, 403, "forbidden");
    }
    // The user did not make themself an admin, nor disable or delete one.
    let user_now = get_user(&app, &admin.token, &id).await;
    assert_eq!(
        user_now.json()["roles"],
        json!(["user"]),
        "{}",
        user_now.text
    );
    let admin_now = get_user(&app, &admin.token, &admin.id).await;
    assert_eq!(admin_now.status, 200, "{}", admin_now.text);
    assert_eq!(admin_now.json()["disabled"], false);
    assert_eq!(
        app.get("/admin/audit", Some(&admin.token)).await.status,
        200
    );
}

/// The admin check reads the caller's roles afresh: a token issued while
/// its holder was an admin is refused once another admin took the role
/// away. An address in `admin_emails` gets `admin` back at its next login.
async fn an_admin_demoted_by_another_is_refused_at_once_and_admin_emails_grants_it_again_at_login(
    backend: Backend,
) {
    let (app, first) = app_with_admin(backend).await;
    let second_id = registered(&app, "second-admin@example.com").await;
    let promoted = patch_user(
        &app,
        &first.token,
        &second_id,
        json!({"roles": ["user", "admin"]}),
    )
    .await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    let second = app
        .login("second-admin@example.com", PASSWORD)
        .await
        .access_token();
    assert_eq!(app.get("/admin/users", Some(&second)).await.status, 200);

    let demoted = patch_user(&app, &second, &first.id, json!({"roles": ["user"]})).await;
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    assert_eq!(demoted.json()["roles"], json!(["user"]));
    assert_eq!(roles(&first.token), json!(["user", "admin"]));
    app.get("/admin/users", Some(&first.token))
        .await
        .assert_problem(403, "forbidden");
    patch_user(&app, &first.token, &second_id, json!({"roles": ["user"]}))
        .await
        .assert_problem(403, "forbidden");
    // Demoted, not signed out: the token still does what a user may do.
    assert_eq!(app.topics(&first.token).await.status, 200);

    let again = app.login(ADMIN, PASSWORD).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let token = again.access_token();
    assert_eq!(roles(&token), json!(["user", "admin"]));
    assert_eq!(app.get("/admin/users", Some(&token)).await.status, 200);
}

/// `user` is always kept; a granted role is in the next refresh's and the
/// next logins' tokens (not in tokens already issued), and a role taken
/// away is gone from the next login's.
async fn roles_granted_by_an_admin_reach_the_next_tokens_and_persist(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let (email, login) = app.signed_in_user().await;
    let id = user_id(&login);
    let granted = patch_user(&app, &admin.token, &id, json!({"roles": ["admin"]})).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(granted.json()["id"], id.as_str());
    assert_eq!(granted.json()["roles"], json!(["user", "admin"]));
    assert_eq!(roles(&login.access_token()), json!(["user"]));

    let refreshed = app
        .refresh_with_cookie(&login.refresh_cookie().unwrap())
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let token = refreshed.access_token();
    assert_eq!(roles(&token), json!(["user", "admin"]));
    let me = app.get("/auth/me", Some(&token)).await;
    assert_eq!(me.json()["roles"], json!(["user", "admin"]), "{}", me.text);
    for _ in 0..2 {
        let login = app.login(&email, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.text);
        assert_eq!(roles(&login.access_token()), json!(["user", "admin"]));
        assert_eq!(login.json()["user"]["roles"], json!(["user", "admin"]));
    }
    // The role works in both components.
    let token = app.login(&email, PASSWORD).await.access_token();
    assert_eq!(app.get("/admin/users", Some(&token)).await.status, 200);
    let topic = app
        .post_json(
            "/questions/topics",
            json!({"slug": "by-new-admin", "name": "By the new admin"}),
            Some(&token),
        )
        .await;
    assert_eq!(topic.status, 201, "{}", topic.text);

    let taken = patch_user(&app, &admin.token, &id, json!({"roles": ["user"]})).await;
    assert_eq!(taken.status, 200, "{}", taken.text);
    assert_eq!(taken.json()["roles"], json!(["user"]));
    let login = app.login(&email, PASSWORD).await;
    assert_eq!(roles(&login.access_token()), json!(["user"]));
    app.get("/admin/users", Some(&login.access_token()))
        .await
        .assert_problem(403, "forbidden");
}

/// `admin`, as the only enabled admin, can neither drop the role nor be
/// disabled or deleted (asked by themself), and is left as they were.
async fn refused_as_last_admin(app: &TestApp, admin: &Admin) {
    let (token, id) = (&admin.token, &admin.id);
    patch_user(app, token, id, json!({"roles": ["user"]}))
        .await
        .assert_problem(409, "last_admin");
    patch_user(app, token, id, json!({"disabled": true}))
        .await
        .assert_problem(409, "last_admin");
    delete_user(app, token, id)
        .await
        .assert_problem(409, "last_admin");
    let unchanged = get_user(app, token, id).await.json();
    assert_eq!(unchanged["roles"], json!(["user", "admin"]), "{unchanged}");
    assert_eq!(unchanged["disabled"], false, "{unchanged}");
}

/// 409 `last_admin` whenever a change would leave no enabled admin: the
/// only admin dropping the role, being disabled or deleted, also when the
/// only other admin is disabled. With two enabled admins, either may go.
async fn the_last_enabled_admin_can_neither_lose_the_role_nor_be_disabled_nor_deleted(
    backend: Backend,
) {
    let (app, first) = app_with_admin(backend).await;
    refused_as_last_admin(&app, &first).await;

    // A disabled admin does not count.
    let second_id = registered(&app, "second-admin@example.com").await;
    let disabled_admin = patch_user(
        &app,
        &first.token,
        &second_id,
        json!({"roles": ["user", "admin"], "disabled": true}),
    )
    .await;
    assert_eq!(disabled_admin.status, 200, "{}", disabled_admin.text);
    assert_eq!(disabled_admin.json()["roles"], json!(["user", "admin"]));
    assert_eq!(disabled_admin.json()["disabled"], true);
    refused_as_last_admin(&app, &first).await;

    // Two enabled admins: one may drop the other's role.
    let enabled = patch_user(&app, &first.token, &second_id, json!({"disabled": false})).await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    let second = app
        .login("second-admin@example.com", PASSWORD)
        .await
        .access_token();
    let dropped = patch_user(&app, &first.token, &second_id, json!({"roles": ["user"]})).await;
    assert_eq!(dropped.status, 200, "{}", dropped.text);
    assert_eq!(dropped.json()["roles"], json!(["user"]));
    app.get("/admin/users", Some(&second))
        .await
        .assert_problem(403, "forbidden");
    refused_as_last_admin(&app, &first).await;

    // Or delete the other, who is then the last one.
    let promoted = patch_user(
        &app,
        &first.token,
        &second_id,
        json!({"roles": ["user", "admin"]}),
    )
    .await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    let deleted = delete_user(&app, &second, &first.id).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let second = Admin {
        id: second_id,
        token: second,
    };
    refused_as_last_admin(&app, &second).await;
}

/// Disabling revokes every session of the user at once (access and
/// refresh tokens), and their right password gets 403 `account_disabled`
/// (a wrong one the usual 401); enabling again lets them sign in, but does
/// not bring the old sessions back.
async fn disabling_ends_every_session_at_once_and_refuses_the_password_until_reenabled(
    backend: Backend,
) {
    let (app, admin) = app_with_admin(backend).await;
    let (email, here) = app.signed_in_user().await;
    let elsewhere = app.login(&email, PASSWORD).await;
    let id = user_id(&here);
    let (_, bystander) = app.signed_in_user().await;

    let disabled = patch_user(&app, &admin.token, &id, json!({"disabled": true})).await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.json()["disabled"], true);
    for session in [&here, &elsewhere] {
        app.get("/auth/me", Some(&session.access_token()))
            .await
            .assert_problem(401, "invalid_token");
        app.topics(&session.access_token())
            .await
            .assert_problem(401, "invalid_token");
        app.refresh_with_cookie(&session.refresh_cookie().unwrap())
            .await
            .assert_problem(401, "invalid_refresh_token");
    }
    let refused = app.login(&email, PASSWORD).await;
    refused.assert_problem(403, "account_disabled");
    assert!(refused.refresh_cookie().is_none());
    assert!(refused.json().get("access_token").is_none());
    app.login(&email, "not the password at all")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        get_user(&app, &admin.token, &id).await.json()["disabled"],
        true
    );
    // Nobody else was signed out.
    assert_eq!(app.topics(&bystander.access_token()).await.status, 200);
    assert_eq!(app.topics(&admin.token).await.status, 200);

    let enabled = patch_user(&app, &admin.token, &id, json!({"disabled": false})).await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.json()["disabled"], false);
    let login = app.login(&email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(app.topics(&login.access_token()).await.status, 200);
    app.topics(&here.access_token())
        .await
        .assert_problem(401, "invalid_token");
    app.refresh_with_cookie(&elsewhere.refresh_cookie().unwrap())
        .await
        .assert_problem(401, "invalid_refresh_token");
}

/// An unknown role is 422 naming `roles`, a mistyped member 422, a body
/// that is not JSON 400, no body 422; a refused change changes nothing,
/// not even its valid part.
async fn invalid_changes_are_refused_and_change_nothing(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let id = registered(&app, "unchanged@example.com").await;
    let unknown_role = patch_user(
        &app,
        &admin.token,
        &id,
        json!({"roles": ["user", "superuser"]}),
    )
    .await;
    unknown_role.assert_problem(422, "validation_failed");
    assert_eq!(fields(&unknown_role), ["roles"]);
    for body in [
        json!({"roles": "admin"}),
        json!({"roles": [1]}),
        json!({"disabled": "yes"}),
        json!({"disabled": 1}),
        json!({"roles": ["admin"], "disabled": "yes"}),
        json!({"roles": ["admin", "root"], "disabled": true}),
    ] {
        patch_user(&app, &admin.token, &id, body)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.send(
        app.client
            .patch(app.url(&format!("/admin/users/{id}")))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body("{\"roles\": "),
    )
    .await
    .assert_problem(400, "malformed_body");
    // No body at all is a mistake, not an empty change.
    let events = || app.sql("SELECT count(*) FROM audit_events WHERE event = 'admin_user_updated'");
    let before = events().await;
    let empty = app
        .send(
            app.client
                .patch(app.url(&format!("/admin/users/{id}")))
                .bearer_auth(&admin.token),
        )
        .await;
    empty.assert_problem(422, "validation_failed");
    assert_eq!(fields(&empty), ["body"]);
    assert_eq!(events().await, before);
    let after = get_user(&app, &admin.token, &id).await.json();
    assert_eq!(after["roles"], json!(["user"]), "{after}");
    assert_eq!(after["disabled"], false, "{after}");
}

/// The `field` of each `errors` entry of a 422.
pub(crate) fn fields(reply: &Reply) -> Vec<String> {
    reply.json()["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", reply.text))
        .iter()
        .map(|error| error["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}
