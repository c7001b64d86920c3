//! `jwt_algorithm = EdDSA`: tokens that anyone can verify with the keys at
//! `/.well-known/jwks.json`, rotation with `jwt_previous_private_key`, the
//! refusals that pin the algorithm and the key, and the discovery document.
//!
//! The test side signs and verifies with `ed25519-dalek`, an Ed25519
//! implementation independent of the service's (`ed25519-compact`).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    eddsa_tokens_verify_with_the_published_key_alone,
    a_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key,
    under_eddsa_hs256_tokens_and_unknown_keys_are_refused,
);

/// A fresh Ed25519 key.
pub fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    SigningKey::from_bytes(&seed)
}

/// The key as the `jwt_private_key` variable holds it.
pub fn pem(key: &SigningKey) -> String {
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// Variables for EdDSA with `current` (and `previous`).
pub fn eddsa(current: &SigningKey, previous: Option<&SigningKey>) -> Vec<(&'static str, String)> {
    let mut variables = vec![
        ("jwt_algorithm", "EdDSA".to_owned()),
        ("jwt_private_key", pem(current)),
    ];
    if let Some(previous) = previous {
        variables.push(("jwt_previous_private_key", pem(previous)));
    }
    variables
}

/// Verifies `token` with the JWKS alone, as a relying party would: pick the
/// key by `kid`, check the Ed25519 signature over `header.claims`.
fn verify_with_jwks(jwks: &Value, token: &str) -> Result<Value, String> {
    let (header, claims) = jwt_parts(token);
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {}", header["alg"]));
    }
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == header["kid"])
        .ok_or("no key with that kid")?;
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap()
        .try_into()
        .unwrap();
    key.verify(
        input.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|e| e.to_string())?;
    Ok(claims)
}

/// Signs `header.claims` with `key` (EdDSA), as a forger with a key of
/// their own would.
fn sign_eddsa(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The RFC 7638 thumbprint of `key`'s JWK, computed here from the RFC's
/// recipe (the required members, sorted, no spaces; SHA-256; base64url).
fn thumbprint(key: &SigningKey) -> String {
    use sha2::{Digest, Sha256};
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

async fn eddsa_tokens_verify_with_the_published_key_alone(backend: Backend) {
    let key = new_key();
    let app = spawn_app_with(backend, AppOptions::with_variables(eddsa(&key, None))).await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    let cache = jwks.header("cache-control").unwrap();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let set = jwks.json();
    assert_eq!(
        set,
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": thumbprint(&key),
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        }]})
    );

    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let (header, _) = jwt_parts(&token);
    assert_eq!(
        (&header["alg"], &header["typ"], &header["kid"]),
        (&json!("EdDSA"), &json!("at+jwt"), &json!(thumbprint(&key)))
    );
    let claims = verify_with_jwks(&set, &token).unwrap();
    assert_eq!(claims["aud"], "spin-auth");
    assert_eq!(app.topics(&token).await.status, 200);
    // A refreshed token is signed the same way.
    let refreshed = app
        .refresh_with_cookie(&login.refresh_cookie().unwrap())
        .await;
    assert!(verify_with_jwks(&set, &refreshed.access_token()).is_ok());
}

async fn a_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(backend: Backend) {
    let (old, new) = (new_key(), new_key());
    let state = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(
        backend,
        AppOptions {
            variables: eddsa(&old, None),
            state: Some(state.clone()),
            ..AppOptions::default()
        },
    )
    .await;
    let (email, login) = app.signed_in_user().await;
    let before = login.access_token();
    let (database, redis_prefix) = (app.database.clone(), app.redis_prefix.clone());
    // Each restart serves the same data beside the earlier hosts, which stay
    // up: dropping one would clear the test's Redis keys.

    let restart = |variables| {
        let (database, redis_prefix, state) =
            (database.clone(), redis_prefix.clone(), state.clone());
        async move {
            spawn_app_with(
                backend,
                AppOptions {
                    variables,
                    state: Some(state),
                    database,
                    redis_prefix: Some(redis_prefix),
                    ..AppOptions::default()
                },
            )
            .await
        }
    };
    let rotated = restart(eddsa(&new, Some(&old))).await;
    assert_eq!(
        rotated.topics(&before).await.status,
        200,
        "a token signed before the rotation is still good"
    );
    let set = rotated.get("/.well-known/jwks.json", None).await.json();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|jwk| jwk["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [thumbprint(&new), thumbprint(&old)]);
    let after = rotated.login(&email, PASSWORD).await.access_token();
    assert_eq!(jwt_parts(&after).0["kid"], thumbprint(&new));
    assert!(verify_with_jwks(&set, &after).is_ok());
    assert!(verify_with_jwks(&set, &before).is_ok());

    // Once the previous key is gone, so are its tokens.
    let finished = restart(eddsa(&new, None)).await;
    finished
        .topics(&before)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(finished.topics(&after).await.status, 200);
    drop((finished, rotated, app));
}

async fn under_eddsa_hs256_tokens_and_unknown_keys_are_refused(backend: Backend) {
    let key = new_key();
    let app = spawn_app_with(backend, AppOptions::with_variables(eddsa(&key, None))).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let (header, claims) = jwt_parts(&token);
    // The forger's own signing is right: the same claims re-signed with the
    // real key pass.
    assert_eq!(
        app.topics(&sign_eddsa(&header, &claims, &key)).await.status,
        200
    );

    let mut hs256 = header.clone();
    hs256["alg"] = "HS256".into();
    let public = key.verifying_key().to_bytes();
    let impostor = new_key();
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = thumbprint(&impostor).into();
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let forgeries = [
        // The HMAC secret the app also holds, and the public key as an
        // HMAC secret (algorithm confusion).
        (
            "HS256 with jwt_key",
            sign_jwt(&hs256, &claims, app.jwt_key.as_bytes()),
        ),
        (
            "HS256 with the public key",
            sign_jwt(&hs256, &claims, &public),
        ),
        (
            "an unknown kid",
            sign_eddsa(&unknown_kid, &claims, &impostor),
        ),
        (
            "another key under our kid",
            sign_eddsa(&header, &claims, &impostor),
        ),
        ("no kid", sign_eddsa(&no_kid, &claims, &key)),
    ];
    for (what, forged) in forgeries {
        let reply = app.topics(&forged).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_token", "{what}");
    }
}

#[tokio::test]
async fn under_hs256_the_jwks_is_empty_and_tokens_name_no_key() {
    let app = spawn_app(Backend::Sqlite).await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json(), json!({"keys": []}));
    assert!(jwks.header("cache-control").unwrap().starts_with("public"));
    let (_, login) = app.signed_in_user().await;
    let (header, _) = jwt_parts(&login.access_token());
    assert_eq!(header["alg"], "HS256");
    assert!(header.get("kid").is_none());
    let discovery = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(
        discovery.json()["id_token_signing_alg_values_supported"],
        json!(["HS256"])
    );
}

/// The discovery document as requested through a proxy that forwards
/// `https://auth.example.com`.
async fn forwarded(app: &TestApp) -> Reply {
    app.send(
        app.client
            .get(app.url("/.well-known/openid-configuration"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "auth.example.com"),
    )
    .await
}

#[tokio::test]
async fn the_discovery_document_points_at_the_keys_and_the_token_endpoint() {
    let key = new_key();
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(eddsa(&key, None)),
    )
    .await;
    let reply = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .header("cache-control")
            .unwrap()
            .starts_with("public, max-age=")
    );
    let document = reply.json();
    assert_eq!(document["issuer"], "spin-auth");
    assert_eq!(document["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(document["token_endpoint"], app.url("/auth/login"));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    assert_eq!(document["grant_types_supported"], json!(["password"]));
    // Its links work.
    let jwks = app
        .send(app.client.get(document["jwks_uri"].as_str().unwrap()))
        .await;
    assert_eq!(jwks.json()["keys"][0]["kid"], thumbprint(&key));
    let openapi = app.get("/openapi.json", None).await.json();
    crate::openapi::conforms(&openapi, "get", "/.well-known/openid-configuration", &reply);
    crate::openapi::conforms(&openapi, "get", "/.well-known/jwks.json", &jwks);

    // X-Forwarded-* count only from a trusted proxy (here the test itself).
    assert_eq!(
        forwarded(&app).await.json()["jwks_uri"],
        app.url("/.well-known/jwks.json")
    );
    let mut variables = eddsa(&key, None);
    variables.push(("trusted_proxies", "127.0.0.1".into()));
    let proxied = spawn_app_with(Backend::Sqlite, AppOptions::with_variables(variables)).await;
    assert_eq!(
        forwarded(&proxied).await.json()["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );

    // An issuer that is a URL is the base of every link.
    let mut variables = eddsa(&key, None);
    variables.push(("issuer", "https://id.example.org/".into()));
    let named = spawn_app_with(Backend::Sqlite, AppOptions::with_variables(variables)).await;
    let document = named
        .get("/.well-known/openid-configuration", None)
        .await
        .json();
    assert_eq!(document["issuer"], "https://id.example.org/");
    assert_eq!(
        document["jwks_uri"],
        "https://id.example.org/.well-known/jwks.json"
    );
    assert_eq!(
        document["token_endpoint"],
        "https://id.example.org/auth/login"
    );
}

#[tokio::test]
async fn the_embedded_default_generates_an_ed25519_key_once_and_keeps_it() {
    let state = Arc::new(tempfile::tempdir().unwrap());
    let bare = || AppOptions {
        bare: true,
        state: Some(state.clone()),
        variables: vec![("jwt_algorithm", "EdDSA".into())],
        ..AppOptions::default()
    };
    let app = spawn_app_with(Backend::Sqlite, bare()).await;
    let (_, login) = app.signed_in_user().await;
    let token = login.access_token();
    let set = app.get("/.well-known/jwks.json", None).await.json();
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    assert!(verify_with_jwks(&set, &token).is_ok());
    assert!(app.log_text().contains("jwt_private_key is not set"));
    drop(app);

    let again = spawn_app_with(Backend::Sqlite, bare()).await;
    assert_eq!(again.get("/.well-known/jwks.json", None).await.json(), set);
    assert_eq!(again.topics(&token).await.status, 200);
    assert!(!again.log_text().contains("jwt_private_key is not set"));
}

#[tokio::test]
async fn a_bad_or_missing_private_key_is_a_misconfiguration_naming_it() {
    // An HMAC secret where a PEM key belongs.
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(vec![
            ("jwt_algorithm", "EdDSA".into()),
            ("jwt_private_key", "0123456789abcdef0123456789abcdef".into()),
        ]),
    )
    .await;
    for path in ["/.well-known/jwks.json", "/auth/me"] {
        let reply = app.get(path, None).await;
        reply.assert_problem(500, "misconfigured");
        let detail = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("jwt_private_key"), "{detail}");
        assert!(!detail.contains("0123456789abcdef"), "{detail}");
    }
    // Beside PostgreSQL a key must be set.
    let app = spawn_app_with(
        Backend::Postgres,
        AppOptions::with_variables(vec![("jwt_algorithm", "EdDSA".into())]),
    )
    .await;
    let reply = app.register("x@example.com", PASSWORD).await;
    reply.assert_problem(500, "misconfigured");
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("jwt_private_key")
    );
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(vec![("jwt_algorithm", "RS256".into())]),
    )
    .await;
    let reply = app.get("/.well-known/jwks.json", None).await;
    reply.assert_problem(500, "misconfigured");
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("jwt_algorithm")
    );
}
