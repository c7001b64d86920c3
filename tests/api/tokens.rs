//! Access token verification: what is accepted and what is refused.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    an_expired_access_token_is_refused_as_expired,
    forged_and_tampered_tokens_are_refused_as_invalid,
    a_request_without_a_token_is_refused_as_missing,
    a_refresh_token_is_not_an_access_token,
    clocks_may_disagree_by_a_minute_and_no_more,
);

async fn an_expired_access_token_is_refused_as_expired(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            variables: vec![
                ("access_token_ttl", "1".into()),
                ("token_leeway", "0".into()),
            ],
            ..AppOptions::default()
        },
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    assert_eq!(login.json()["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let reply = app.topics(&token).await;
    reply.assert_problem(401, "token_expired");
    assert_eq!(
        reply.header("www-authenticate").as_deref(),
        Some(
            "Bearer realm=\"spin-auth\", error=\"invalid_token\", error_description=\"access token expired\""
        )
    );
}

/// The default leeway (API.md: at most 60 s) holds on both ends of a
/// token's life: `exp` a little past and `nbf` a little ahead still pass.
async fn clocks_may_disagree_by_a_minute_and_no_more(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let (header, claims) = jwt_parts(&login.access_token());
    let with = |name: &str, value: i64| {
        let mut changed = claims.clone();
        changed[name] = json!(value);
        resign(&app, &header, &changed)
    };
    let now = now();
    let late = app.topics(&with("exp", now - 50)).await;
    assert_eq!(late.status, 200, "expired 50 s ago: {}", late.text);
    app.topics(&with("exp", now - 70))
        .await
        .assert_problem(401, "token_expired");
    let early = app.topics(&with("nbf", now + 50)).await;
    assert_eq!(early.status, 200, "valid in 50 s: {}", early.text);
    app.topics(&with("nbf", now + 70))
        .await
        .assert_problem(401, "invalid_token");
}

/// Re-signs `claims` under `header` with the app's real key.
fn resign(app: &TestApp, header: &Value, claims: &Value) -> String {
    sign_jwt(header, claims, app.jwt_key.as_bytes())
}

async fn forged_and_tampered_tokens_are_refused_as_invalid(backend: Backend) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    // The forger's signing is right: the same claims re-signed pass.
    assert_eq!(
        app.topics(&resign(&app, &header, &claims)).await.status,
        200
    );
    // So does the type written as a full media type (RFC 9068 section 4).
    let mut full = header.clone();
    full["typ"] = json!("application/at+jwt");
    assert_eq!(app.topics(&resign(&app, &full, &claims)).await.status, 200);

    let mut forgeries: Vec<(&str, String)> = Vec::new();
    // A changed payload under the original signature.
    let mut tampered = claims.clone();
    tampered["roles"] = json!(["user", "admin"]);
    let signature = token.rsplit('.').next().unwrap();
    forgeries.push((
        "tampered payload",
        format!(
            "{}.{}.{signature}",
            token.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap())
        ),
    ));
    // alg: none, with and without a signature.
    let none = json!({"alg": "none", "typ": "at+jwt"});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&none).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    forgeries.push(("alg none", unsigned));
    // Another key.
    forgeries.push((
        "other key",
        sign_jwt(&header, &claims, b"some-other-key-some-other-key-123"),
    ));
    // Every claim changed one at a time, correctly signed: iss, aud, typ.
    for (claim, value) in [("iss", json!("evil")), ("aud", json!("other-api"))] {
        let mut changed = claims.clone();
        changed[claim] = value;
        forgeries.push((claim, resign(&app, &header, &changed)));
    }
    let mut wrong_typ = header.clone();
    wrong_typ["typ"] = json!("JWT");
    forgeries.push(("typ", resign(&app, &wrong_typ, &claims)));
    let mut future = claims.clone();
    future["nbf"] = json!(now() + 3_600);
    forgeries.push(("future nbf", resign(&app, &header, &future)));
    // Every claim changed, one at a time, under the original signature.
    for claim in [
        "iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "roles",
    ] {
        let mut changed = claims.clone();
        changed[claim] = match &claims[claim] {
            Value::Number(n) => json!(n.as_i64().unwrap() + 1),
            Value::Array(_) => json!(["admin"]),
            _ => json!("tampered"),
        };
        let (head, _) = token.split_once('.').unwrap();
        forgeries.push((
            "a claim changed under the original signature",
            format!(
                "{head}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).unwrap())
            ),
        ));
    }
    // Another algorithm named in the header, signed with material an
    // attacker has (as in the RS256-public-key-as-HMAC-secret confusion).
    for alg in ["RS256", "ES256", "HS512", "none"] {
        let mut other = header.clone();
        other["alg"] = json!(alg);
        forgeries.push((
            "another algorithm",
            sign_jwt(&other, &claims, b"-----BEGIN PUBLIC KEY-----MFkw"),
        ));
    }
    // Key references in the header are not followed.
    let mut injected = header.clone();
    injected["kid"] = json!("../../../../dev/null");
    injected["jku"] = json!("https://attacker.example/keys.json");
    injected["jwk"] = json!({"kty": "oct", "k": "YXR0YWNrZXI"});
    forgeries.push((
        "kid, jku and jwk injection",
        sign_jwt(&injected, &claims, b"attacker"),
    ));
    let mut no_sid = claims.clone();
    no_sid["sid"] = json!("00000000-0000-0000-0000-000000000000");
    forgeries.push(("unknown session", resign(&app, &header, &no_sid)));
    // A live session, but another user's: the subject must own it.
    let (_, other) = app.signed_in_user().await;
    let (_, other_claims) = jwt_parts(&other.access_token());
    let mut borrowed = claims.clone();
    borrowed["sub"] = other_claims["sub"].clone();
    forgeries.push(("another user's subject", resign(&app, &header, &borrowed)));
    forgeries.push(("garbage", "not.a.jwt".to_owned()));

    for (what, forged) in forgeries {
        for path in ["/auth/me", "/admin/users"] {
            let reply = app.get(path, Some(&forged)).await;
            assert_eq!(reply.status, 401, "{what} at {path}: {}", reply.text);
        }
        let reply = app.topics(&forged).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_token", "{what}: {}", reply.text);
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // A correctly signed token with a borrowed session is a warning sign.
    assert!(
        app.log_text().contains("has a signing key leaked?"),
        "{}",
        app.log_text()
    );
}

async fn a_request_without_a_token_is_refused_as_missing(backend: Backend) {
    let app = spawn_app(backend).await;
    for reply in [
        app.get("/questions/topics", None).await,
        app.send(
            app.client
                .get(app.url("/auth/me"))
                .header("authorization", "Basic dTpw"),
        )
        .await,
    ] {
        reply.assert_problem(401, "missing_token");
        assert_eq!(
            reply.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"spin-auth\"")
        );
    }
}

async fn a_refresh_token_is_not_an_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, login) = app.signed_in_user().await;
    let refresh = login.refresh_cookie().unwrap();
    app.topics(&refresh)
        .await
        .assert_problem(401, "invalid_token");
    // Nor the other way round.
    app.refresh_with_body(&login.access_token())
        .await
        .assert_problem(401, "invalid_refresh_token");
}

#[tokio::test]
async fn after_a_key_rotation_tokens_signed_with_the_previous_key_still_work() {
    let state = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let old_key = "the-old-signing-key-the-old-signing-key".to_owned();
    let new_key = "the-new-signing-key-the-new-signing-key".to_owned();
    let with_keys = |keys: Vec<(&'static str, String)>| AppOptions {
        variables: keys,
        state: Some(state.clone()),
        ..AppOptions::default()
    };
    let before = spawn_app_with(
        Backend::Sqlite,
        with_keys(vec![("jwt_key", old_key.clone())]),
    )
    .await;
    let (_, login) = before.signed_in_user().await;
    let token = login.access_token();
    drop(before);

    let rotated = spawn_app_with(
        Backend::Sqlite,
        with_keys(vec![
            ("jwt_key", new_key.clone()),
            ("jwt_previous_key", old_key),
        ]),
    )
    .await;
    assert_eq!(
        rotated.topics(&token).await.status,
        200,
        "the old key still verifies"
    );
    drop(rotated);

    let later = spawn_app_with(Backend::Sqlite, with_keys(vec![("jwt_key", new_key)])).await;
    later
        .topics(&token)
        .await
        .assert_problem(401, "invalid_token");
}
