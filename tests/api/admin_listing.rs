//! The administration's listings: users in email order, searched by
//! prefix and paged, a user by id, and the parameters both listings
//! (users and audit) refuse.

use serde_json::{Value, json};

use crate::admin::{
    ADMIN, app_with_admin, delete_user, fields, get_user, is_rfc3339_utc, pages, patch_user,
    registered,
};
use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    users_are_listed_in_email_order_searched_by_prefix_and_paged,
    a_user_is_read_by_id_and_unknown_users_are_404,
    bad_limits_and_cursors_name_the_field_at_fault,
    a_user_cursor_goes_into_a_query_string_as_it_is,
);

fn emails(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item["email"].as_str().unwrap())
        .collect()
}

/// Items come in email order; `query` is a case-insensitive, trimmed,
/// literal email prefix (`_` and `%` are no wildcards); pages of `limit`
/// hold every match once; each item is the user plus `disabled` and
/// `last_login_at` (null until a login).
async fn users_are_listed_in_email_order_searched_by_prefix_and_paged(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    for email in [
        "pager-3@example.com",
        "Pager-1@Example.com",
        "pager-5@example.com",
        "pager-2@example.com",
        "PAGER-4@example.com",
        "pagers@example.com",
        "not-pager-1@example.com",
        "pager_6@example.com",
    ] {
        registered(&app, email).await;
    }
    assert_eq!(app.login("pager-2@example.com", PASSWORD).await.status, 200);

    let paged = pages(&app, &admin.token, "/admin/users?query=%20Pager-%20", 2).await;
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let items = paged.concat();
    assert_eq!(
        emails(&items),
        (1..=5)
            .map(|n| format!("pager-{n}@example.com"))
            .collect::<Vec<_>>()
    );
    for item in &items {
        for field in [
            "id",
            "email",
            "first_name",
            "last_name",
            "roles",
            "created_at",
            "email_verified",
            "mfa_enabled",
            "disabled",
            "last_login_at",
        ] {
            assert!(item.get(field).is_some(), "no {field} in {item}");
        }
        let text = item.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("password"),
            "{item}"
        );
        assert_eq!(item["roles"], json!(["user"]));
        assert_eq!(item["disabled"], false);
        assert_eq!(item["email_verified"], false);
        assert!(is_rfc3339_utc(&item["created_at"]), "{item}");
        if item["email"] == "pager-2@example.com" {
            assert!(is_rfc3339_utc(&item["last_login_at"]), "{item}");
        } else {
            assert_eq!(item["last_login_at"], Value::Null, "{item}");
        }
    }

    // Fifty by default: all five on one page, and no next one.
    let one = app
        .get("/admin/users?query=pager-", Some(&admin.token))
        .await
        .json();
    assert_eq!(one["items"].as_array().unwrap().len(), 5, "{one}");
    assert_eq!(one["next_cursor"], Value::Null);
    for (query, expected) in [
        ("pager_", vec!["pager_6@example.com"]),
        ("%25", vec![]),
        ("zzz", vec![]),
    ] {
        let found = pages(
            &app,
            &admin.token,
            &format!("/admin/users?query={query}"),
            50,
        )
        .await
        .concat();
        assert_eq!(emails(&found), expected, "query={query}");
    }

    // No query: everyone, the admin too.
    let everyone = pages(&app, &admin.token, "/admin/users", 3).await.concat();
    let listed = emails(&everyone);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(listed.len(), 9, "{listed:?}");
    let admin_item = everyone.iter().find(|item| item["email"] == ADMIN).unwrap();
    assert_eq!(admin_item["id"], admin.id.as_str());
    assert_eq!(admin_item["roles"], json!(["user", "admin"]));
    assert_eq!(admin_item["email_verified"], true);
    assert!(is_rfc3339_utc(&admin_item["last_login_at"]), "{admin_item}");
}

/// A user by id is the same item as in the listing; an unknown id (or one
/// that is not a UUID, or is SQL) is 404 `not_found` for every method.
async fn a_user_is_read_by_id_and_unknown_users_are_404(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let id = registered(&app, "reader@example.com").await;
    let item = get_user(&app, &admin.token, &id).await;
    assert_eq!(item.status, 200, "{}", item.text);
    let item = item.json();
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["email"], "reader@example.com");
    assert_eq!(item["disabled"], false);
    assert_eq!(item["mfa_enabled"], false);
    assert_eq!(item["last_login_at"], Value::Null);
    let listed = app
        .get("/admin/users?query=reader%40", Some(&admin.token))
        .await
        .json();
    assert_eq!(listed["items"], json!([item]));

    for unknown in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "'%20OR%20'1'='1".to_owned(),
    ] {
        get_user(&app, &admin.token, &unknown)
            .await
            .assert_problem(404, "not_found");
        patch_user(&app, &admin.token, &unknown, json!({"disabled": true}))
            .await
            .assert_problem(404, "not_found");
        delete_user(&app, &admin.token, &unknown)
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(get_user(&app, &admin.token, &id).await.json(), item);
}

/// `limit` outside 1..=100 or not a number, and a cursor not of the
/// listing's form, are 422 naming the parameter, on both listings.
async fn bad_limits_and_cursors_name_the_field_at_fault(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    for route in ["/admin/users", "/admin/audit"] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=-1", "limit"),
            ("limit=x", "limit"),
            ("cursor=%01", "cursor"),
            ("query=a%00b", "query"),
            ("cursor=not+a+cursor", "cursor"),
            ("cursor=abcde", "cursor"),
        ] {
            // `query` is the users' alone.
            if route == "/admin/audit" && field == "query" {
                continue;
            }
            let reply = app
                .get(&format!("{route}?{query}"), Some(&admin.token))
                .await;
            reply.assert_problem(422, "validation_failed");
            assert!(
                fields(&reply).iter().any(|f| f == field),
                "{route}?{query}: {}",
                reply.text
            );
        }
        // The audit's user filter takes a user's id: other text is no id.
        if route == "/admin/audit" {
            for user_id in [
                "not-a-uuid",
                "0b7d5a5e5c7b4a559c550c4f5e1c3a01",
                "{0b7d5a5e-5c7b-4a55-9c55-0c4f5e1c3a01}",
            ] {
                let reply = app
                    .get(&format!("{route}?user_id={user_id}"), Some(&admin.token))
                    .await;
                reply.assert_problem(422, "validation_failed");
                assert_eq!(fields(&reply), ["user_id"], "{user_id}");
            }
            // Any case: the admin's own events, under their id in capitals.
            let reply = app
                .get(
                    &format!("{route}?user_id={}", admin.id.to_uppercase()),
                    Some(&admin.token),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let items = reply.json()["items"].as_array().unwrap().clone();
            assert!(!items.is_empty());
            assert!(
                items
                    .iter()
                    .all(|event| event["user_id"] == admin.id.as_str())
            );
        }
        for limit in [1, 100] {
            let reply = app
                .get(&format!("{route}?limit={limit}"), Some(&admin.token))
                .await;
            assert_eq!(reply.status, 200, "{route}?limit={limit}: {}", reply.text);
            assert!(reply.json()["items"].as_array().unwrap().len() <= limit);
        }
    }
}

/// Addresses often hold `+` (and may hold `&`), which a client that
/// appends the cursor to its URL without escaping would garble: the
/// cursor needs no escaping, and such a client still sees every user once.
async fn a_user_cursor_goes_into_a_query_string_as_it_is(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let expected = [
        "tag+1@example.com",
        "tag+2@example.com",
        "tag&3@example.com",
    ];
    for email in expected {
        registered(&app, email).await;
    }
    let mut seen = Vec::new();
    let mut path = "/admin/users?query=tag&limit=1".to_owned();
    for _ in 0..10 {
        let page = app.get(&path, Some(&admin.token)).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        let page = page.json();
        seen.extend(
            emails(page["items"].as_array().unwrap())
                .into_iter()
                .map(str::to_owned),
        );
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{cursor}"
        );
        path = format!("/admin/users?query=tag&limit=1&cursor={cursor}");
    }
    let mut sorted = expected.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(seen, sorted);
    // Whatever a well-formed cursor decodes to is a place to go on from:
    // "tag+1@example.com" here (after "tag&3@..." in byte order), then a
    // NUL and bytes that are no UTF-8 (which sort after every address).
    let after_first = "dGFnKzFAZXhhbXBsZS5jb20";
    for (cursor, expected) in [(after_first, &sorted[2..]), ("AA", &[]), ("_-8", &[])] {
        let page = app
            .get(
                &format!("/admin/users?query=tag&cursor={cursor}"),
                Some(&admin.token),
            )
            .await;
        assert_eq!(page.status, 200, "{cursor}: {}", page.text);
        assert_eq!(
            emails(page.json()["items"].as_array().unwrap()),
            expected,
            "{cursor}"
        );
    }
}
