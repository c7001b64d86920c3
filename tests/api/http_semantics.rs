//! What generic HTTP clients, caches and proxies rely on beyond the
//! contract's tables, as an outside check under real Spin found it
//! missing: answers that caches may not keep, a `Host` that is no host
//! name, compressed bodies, a doubled `Authorization`, the refresh cookie
//! after a failed body token or the end of the current session, a logout
//! with an access token that has expired, and names given twice.

use serde_json::json;

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    only_public_answers_may_be_stored_by_a_cache,
    a_compressed_body_is_refused_with_a_415,
    two_authorization_headers_are_refused,
    a_token_failing_in_the_body_leaves_the_refresh_cookie_alone,
    ending_the_current_session_clears_the_refresh_cookie,
    a_logout_with_an_expired_access_token_ends_its_session,
    a_name_given_twice_is_refused_in_json_and_in_the_query,
);

/// Tokens, secrets and personal data, and every error, are `no-store`
/// (RFC 6749 section 5.1, RFC 9111); the keys and the documentation say
/// how long they may be kept.
async fn only_public_answers_may_be_stored_by_a_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    for (path, bearer, status) in [
        ("/auth/me", Some(token.as_str()), 200),
        ("/auth/sessions", Some(token.as_str()), 200),
        ("/questions/topics", Some(token.as_str()), 200),
        ("/auth/me", None, 401),
        ("/nope", None, 404),
    ] {
        let reply = app.get(path, bearer).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert_eq!(
            reply.header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
    }
    let wrong = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(wrong.header("cache-control").as_deref(), Some("no-store"));
    for path in ["/.well-known/jwks.json", "/openapi.json", "/docs"] {
        let reply = app.get(path, None).await;
        let policies = reply.headers_all("cache-control");
        assert_eq!(policies.len(), 1, "{path}: {policies:?}");
        assert_ne!(policies[0], "no-store", "{path}");
    }
}

/// The service reads bodies as sent; one in a content coding is refused,
/// saying which coding it reads (RFC 9110 sections 8.4.1 and 15.5.16),
/// rather than read as garbage or as if it were plain.
async fn a_compressed_body_is_refused_with_a_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = "coded@example.com";
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    for coding in ["gzip", "br", "identity, gzip"] {
        let reply = app
            .send(
                app.client
                    .post(app.url("/auth/register"))
                    .header("content-type", "application/json")
                    .header("content-encoding", coding)
                    .body(body.clone()),
            )
            .await;
        reply.assert_problem(415, "unsupported_media_type");
        assert_eq!(reply.header("accept-encoding").as_deref(), Some("identity"));
    }
    // Nothing was registered by them; `identity` is no coding at all.
    let plain = app
        .send(
            app.client
                .post(app.url("/auth/register"))
                .header("content-type", "application/json")
                .header("content-encoding", "identity")
                .body(body),
        )
        .await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    // A request without a body has nothing to decode.
    let bodiless = app
        .send(
            app.client
                .post(app.url("/auth/logout"))
                .header("content-encoding", "gzip"),
        )
        .await;
    assert_eq!(bodiless.status, 204, "{}", bodiless.text);
}

/// `Authorization` holds one credential; sent twice, a proxy in front may
/// have checked one and the service would use the other, so neither counts.
async fn two_authorization_headers_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let valid = format!("Bearer {}", login.access_token());
    for (first, second) in [
        (valid.as_str(), "Bearer garbage"),
        ("Bearer garbage", &valid),
    ] {
        let reply = app
            .send(
                app.client
                    .get(app.url("/auth/me"))
                    .header("authorization", first)
                    .header("authorization", second),
            )
            .await;
        reply.assert_problem(401, "invalid_token");
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .contains("more than one Authorization header")
        );
    }
    let once = app
        .send(
            app.client
                .get(app.url("/auth/me"))
                .header("authorization", &valid),
        )
        .await;
    assert_eq!(once.status, 200, "{}", once.text);
}

/// A client that sends a stale token in the body while its cookie holds a
/// good one hears that the body's failed, and keeps the cookie; a failure
/// of the cookie's own token still clears it, and so does a reuse, which
/// ends the session the cookie is of.
async fn a_token_failing_in_the_body_leaves_the_refresh_cookie_alone(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![("refresh_reuse_grace", "0".into())]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let retired = login.refresh_cookie().unwrap();
    let rotated = app.refresh_with_body(&retired).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let current = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    let with_cookie = |body_token: String| {
        app.send(
            app.client
                .post(app.url("/auth/refresh"))
                .header("cookie", format!("__Secure-refresh_token={current}"))
                .json(&json!({"refresh_token": body_token})),
        )
    };
    // Malformed, and well-formed but unknown.
    for stale in ["not-a-token".to_owned(), "A".repeat(43)] {
        let reply = with_cookie(stale).await;
        reply.assert_problem(401, "invalid_refresh_token");
        assert_eq!(reply.headers_all("set-cookie"), Vec::<String>::new());
    }
    let spent = app.refresh_with_cookie("A".repeat(43).as_str()).await;
    spent.assert_problem(401, "invalid_refresh_token");
    assert!(spent.headers_all("set-cookie")[0].contains("Max-Age=0"));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let reused = with_cookie(retired).await;
    reused.assert_problem(401, "refresh_token_reused");
    assert!(reused.headers_all("set-cookie")[0].contains("Max-Age=0"));
    app.refresh_with_cookie(&current)
        .await
        .assert_problem(401, "invalid_refresh_token");
}

/// Revoking the session the request is made in is a logout: the cookie is
/// cleared. Revoking another one leaves it.
async fn ending_the_current_session_clears_the_refresh_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, first) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await;
    let token = first.access_token();
    let sid = |login: &Reply| {
        jwt_parts(&login.access_token()).1["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let other = app
        .delete(&format!("/auth/sessions/{}", sid(&second)), Some(&token))
        .await;
    assert_eq!(other.status, 204, "{}", other.text);
    assert_eq!(other.headers_all("set-cookie"), Vec::<String>::new());
    // The current session's id in another spelling is still the current
    // session.
    let own = app
        .delete(
            &format!("/auth/sessions/{}", sid(&first).to_uppercase()),
            Some(&token),
        )
        .await;
    assert_eq!(own.status, 204, "{}", own.text);
    let cleared = own.headers_all("set-cookie");
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(
        cleared[0].starts_with("__Secure-refresh_token=;"),
        "{cleared:?}"
    );
    assert!(cleared[0].contains("Max-Age=0"), "{cleared:?}");
    assert!(cleared[0].contains("Path=/auth"), "{cleared:?}");
}

/// A `Host` that is no host name cannot be the base of the discovery
/// document's links: 400, not a 500, whether it came from the client or
/// from a trusted proxy's `X-Forwarded-Host`.
#[tokio::test]
async fn discovery_refuses_a_host_that_is_no_host_name() {
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(vec![("trusted_proxies", "127.0.0.1".into())]),
    )
    .await;
    let wire = crate::raw_exchange(
        &app,
        "GET /.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1:1@evil\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(wire.starts_with("HTTP/1.1 400"), "{wire}");
    assert!(wire.contains("\"code\":\"bad_request\""), "{wire}");
    let reply = app
        .send(
            app.client
                .get(app.url("/.well-known/openid-configuration"))
                .header("x-forwarded-host", "a@b"),
        )
        .await;
    reply.assert_problem(400, "bad_request");
    let openapi = app.get("/openapi.json", None).await.json();
    crate::openapi::conforms(&openapi, "get", "/.well-known/openid-configuration", &reply);
    let fine = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(fine.status, 200, "{}", fine.text);
}

/// A client that idled past its access token's lifetime and holds no
/// refresh token (or sends only the Bearer) still ends its session by
/// logging out; ending the others takes a token that still opens them.
async fn a_logout_with_an_expired_access_token_ends_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, login) = app.signed_in_user().await;
    let elsewhere = app.login(&email, PASSWORD).await;
    let (header, mut claims) = jwt_parts(&login.access_token());
    let now = now();
    claims["iat"] = json!(now - 3_600);
    claims["nbf"] = json!(now - 3_600);
    claims["exp"] = json!(now - 2_700);
    let expired = sign_jwt(&header, &claims, app.jwt_key.as_bytes());
    let logout = |scope: &'static str| {
        app.send(
            app.client
                .post(app.url(&format!("/auth/logout?scope={scope}")))
                .bearer_auth(&expired),
        )
    };
    for scope in ["others", "global"] {
        logout(scope).await.assert_problem(401, "token_expired");
    }
    let cookie = login.refresh_cookie().unwrap();
    let alive = app.refresh_with_cookie(&cookie).await;
    assert_eq!(alive.status, 200, "{}", alive.text);

    let ended = logout("local").await;
    assert_eq!(ended.status, 204, "{}", ended.text);
    app.refresh_with_cookie(&alive.refresh_cookie().unwrap())
        .await
        .assert_problem(401, "invalid_refresh_token");
    // The other session goes on; a token signed with another key ends
    // nothing, and still gets its 204.
    let other = elsewhere.access_token();
    assert_eq!(app.get("/auth/me", Some(&other)).await.status, 200);
    let (header, claims) = jwt_parts(&other);
    let forged = sign_jwt(&header, &claims, b"some-other-key-some-other-key-123");
    let refused = app
        .send(
            app.client
                .post(app.url("/auth/logout"))
                .bearer_auth(&forged),
        )
        .await;
    assert_eq!(refused.status, 204, "{}", refused.text);
    assert_eq!(app.get("/auth/me", Some(&other)).await.status, 200);
}

/// Parsers differ on which of two values of one name counts (I-JSON, RFC
/// 7493 section 2.3), so a name given twice in a JSON body or a query is
/// 422 naming it, as in a form, whichever of the values is right.
async fn a_name_given_twice_is_refused_in_json_and_in_the_query(backend: Backend) {
    let (app, admin) = crate::admin::app_with_admin(backend).await;
    let (email, login) = app.signed_in_user().await;
    for (first, second) in [
        ("not the password", PASSWORD),
        (PASSWORD, "not the password"),
    ] {
        let body =
            format!(r#"{{"email": "{email}", "password": "{first}", "password": "{second}"}}"#);
        let reply = app
            .send(
                app.client
                    .post(app.url("/auth/login"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(
            reply.json()["errors"][0]["field"],
            "password",
            "{}",
            reply.text
        );
    }
    let page = app
        .get("/admin/users?limit=1&limit=2", Some(&admin.token))
        .await;
    page.assert_problem(422, "validation_failed");
    assert_eq!(page.json()["errors"][0]["field"], "limit");
    let logout = app
        .send(
            app.client
                .post(app.url("/auth/logout?scope=local&scope=global"))
                .bearer_auth(login.access_token()),
        )
        .await;
    logout.assert_problem(422, "validation_failed");
    // Nothing was ended by it.
    assert_eq!(
        app.get("/auth/me", Some(&login.access_token()))
            .await
            .status,
        200
    );
    let once = app.get("/admin/users?limit=1", Some(&admin.token)).await;
    assert_eq!(once.status, 200, "{}", once.text);
}
