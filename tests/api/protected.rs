//! The example component `examples/protected`, served by the local host
//! beside the service: it accepts the service's tokens with the public keys
//! alone (through `spin-auth-verifier`), refuses tampered ones, and keeps
//! the key set in Spin's key-value store.

use std::path::Path;

use serde_json::json;

use crate::helpers::*;
use crate::signing_keys::{eddsa, new_key};

/// The example app, pointed at `service`'s JWKS.
async fn spawn_example(service: &TestApp) -> TestApp {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/protected/spin.toml");
    spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            bare: true,
            manifest: Some(manifest),
            variables: vec![
                ("auth_jwks_url", service.url("/.well-known/jwks.json")),
                ("auth_allowed_host", service.host.url()),
            ],
            ..AppOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_example_component_accepts_a_real_token_and_refuses_a_tampered_one() {
    let key = new_key();
    let service = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(eddsa(&key, None)),
    )
    .await;
    let example = spawn_example(&service).await;
    let (_, login) = service.signed_in_user().await;
    let token = login.access_token();
    let user_id = login.json()["user"]["id"].as_str().unwrap().to_owned();

    let missing = example.get("/hello", None).await;
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert_eq!(
        missing.header("www-authenticate").as_deref(),
        Some("Bearer")
    );

    let accepted = example.get("/hello", Some(&token)).await;
    assert_eq!(
        accepted.status,
        200,
        "{}\n{}",
        accepted.text,
        example.log_text()
    );
    assert_eq!(
        accepted.json(),
        json!({"hello": user_id, "roles": ["user"]})
    );

    // One changed claim, the signature kept.
    let (header, mut claims) = jwt_parts(&token);
    claims["sub"] = "someone-else".into();
    let encode = |v: &serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let signature = token.rsplit('.').next().unwrap();
    let tampered = format!("{}.{}.{signature}", encode(&header), encode(&claims));
    let refused = example.get("/hello", Some(&tampered)).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // An HS256 token made with the service's HMAC secret is no better.
    let mut hs256 = header.clone();
    hs256["alg"] = "HS256".into();
    let (_, claims) = jwt_parts(&token);
    let forged = sign_jwt(&hs256, &claims, service.jwt_key.as_bytes());
    assert_eq!(example.get("/hello", Some(&forged)).await.status, 401);

    // The key set was kept in the key-value store where Spin keeps it...
    assert!(
        example
            .state
            .path()
            .join(".spin/sqlite_key_value.db")
            .is_file()
    );
    // ...so with the service gone, the token still verifies, and a token
    // from an unknown key is refused without waiting on the service.
    let other = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(eddsa(&new_key(), None)),
    )
    .await;
    let (_, stranger) = other.signed_in_user().await;
    drop(service);
    let cached = example.get("/hello", Some(&token)).await;
    assert_eq!(cached.status, 200, "{}", cached.text);
    let unknown = example.get("/hello", Some(&stranger.access_token())).await;
    assert_eq!(unknown.status, 401, "{}", unknown.text);
    assert!(unknown.text.contains("unknown key"), "{}", unknown.text);
}

#[tokio::test]
async fn the_example_answers_503_when_the_keys_cannot_be_fetched() {
    let key = new_key();
    let service = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(eddsa(&key, None)),
    )
    .await;
    let (_, login) = service.signed_in_user().await;
    let example = spawn_example(&service).await;
    drop(service);
    let reply = example.get("/hello", Some(&login.access_token())).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(
        !reply.text.contains("127.0.0.1"),
        "no address leaks: {}",
        reply.text
    );
}
