//! Two-factor sign-in (TOTP and recovery codes), on every backend. The
//! codes the tests type come from Debian's `oathtool`, an implementation
//! of RFC 6238 independent of the service's.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    enrolment_turns_on_two_factor_sign_in_and_the_login_completes_with_a_code,
    a_code_is_accepted_once,
    a_recovery_code_works_once,
    wrong_codes_are_throttled_like_failed_logins,
    an_mfa_token_is_single_use_and_bound_to_its_login,
    disabling_needs_the_password_and_voids_the_recovery_codes,
    the_stored_secret_is_not_readable_in_the_database,
    every_step_is_audited,
);

/// The TOTP code of `secret` (base32) at `step`, from `oathtool`.
pub(crate) fn oathtool_code(secret: &str, step: i64) -> String {
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "--base32", "--now"])
        .arg(format!("@{}", step * 30))
        .arg(secret)
        .output()
        .expect("oathtool is installed (apt-get install oathtool; .ci/run does it)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

pub(crate) fn step_now() -> i64 {
    now().div_euclid(30)
}

/// A signed-in user who started an enrolment: (email, access token,
/// secret, otpauth URI).
async fn enrolling(app: &TestApp) -> (String, String, String, String) {
    let (email, login) = app.signed_in_user().await;
    let token = login.access_token();
    let enrolled = app
        .post_json("/auth/mfa/totp", json!(null), Some(&token))
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.text);
    assert_eq!(
        enrolled.header("cache-control").as_deref(),
        Some("no-store")
    );
    let body = enrolled.json();
    (
        email,
        token,
        body["secret"].as_str().unwrap().to_owned(),
        body["otpauth_uri"].as_str().unwrap().to_owned(),
    )
}

/// A user with TOTP on: (email, access token, secret, recovery codes, the
/// step whose code the confirmation used).
pub(crate) struct Enrolled {
    pub(crate) email: String,
    pub(crate) token: String,
    secret: String,
    recovery_codes: Vec<String>,
    used_step: i64,
}

pub(crate) async fn enrolled(app: &TestApp) -> Enrolled {
    let (email, token, secret, _) = enrolling(app).await;
    let step = step_now();
    let confirmed = app
        .post_json(
            "/auth/mfa/totp/confirm",
            json!({"code": oathtool_code(&secret, step)}),
            Some(&token),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let recovery_codes = confirmed.json()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        email,
        token,
        secret,
        recovery_codes,
        used_step: step,
    }
}

/// Logs in with the right password and returns the `mfa_token` of the
/// 403 `mfa_required` answer.
async fn mfa_token(app: &TestApp, email: &str) -> String {
    let login = app.login(email, PASSWORD).await;
    login.assert_problem(403, "mfa_required");
    // It carries a credential (RFC 6749 section 5.1).
    assert_eq!(login.header("cache-control").as_deref(), Some("no-store"));
    login.json()["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, mfa_token: &str, code: &str) -> Reply {
    app.post_json(
        "/auth/mfa/verify",
        json!({"mfa_token": mfa_token, "code": code}),
        None,
    )
    .await
}

async fn disable(app: &TestApp, token: &str, password: &str) -> Reply {
    app.send(
        app.client
            .delete(app.url("/auth/mfa/totp"))
            .bearer_auth(token)
            .json(&json!({"current_password": password})),
    )
    .await
}

fn amr(token: &str) -> Value {
    jwt_parts(token).1["amr"].clone()
}

async fn enrolment_turns_on_two_factor_sign_in_and_the_login_completes_with_a_code(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (email, token, secret, uri) = enrolling(&app).await;
    assert_eq!(amr(&token), json!(["pwd"]));
    assert!(secret.len() >= 32, "{secret}");
    let label = email.replace('@', "%40");
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/spin-auth:{label}?secret={secret}&issuer=spin-auth&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Pending: sign-in is unchanged until the enrolment is confirmed.
    let me = app.get("/auth/me", Some(&token)).await;
    assert_eq!(me.json()["mfa_enabled"], false);
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);

    let step = step_now();
    let right = oathtool_code(&secret, step);
    let wrong = if right == "000000" {
        "999999"
    } else {
        "000000"
    };
    app.post_json(
        "/auth/mfa/totp/confirm",
        json!({"code": wrong}),
        Some(&token),
    )
    .await
    .assert_problem(401, "invalid_mfa_code");
    let confirmed = app
        .post_json(
            "/auth/mfa/totp/confirm",
            json!({"code": right}),
            Some(&token),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    assert_eq!(
        confirmed.json()["recovery_codes"].as_array().unwrap().len(),
        10
    );
    let me = app.get("/auth/me", Some(&token)).await;
    assert_eq!(me.json()["mfa_enabled"], true);
    app.post_json("/auth/mfa/totp", json!(null), Some(&token))
        .await
        .assert_problem(409, "mfa_already_enabled");

    // Login: the right password gets no tokens and no cookie...
    let login = app.login(&email, PASSWORD).await;
    login.assert_problem(403, "mfa_required");
    assert!(login.refresh_cookie().is_none());
    assert!(login.json().get("access_token").is_none());
    let mfa_token = login.json()["mfa_token"].as_str().unwrap().to_owned();
    // ... and the code completes it, exactly as a login would answer.
    let verified = verify(&app, &mfa_token, &oathtool_code(&secret, step + 1)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let body = verified.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["mfa_enabled"], true);
    assert_eq!(
        verified.header("cache-control").as_deref(),
        Some("no-store")
    );
    let access = verified.access_token();
    assert_eq!(amr(&access), json!(["pwd", "otp"]));
    assert_eq!(app.get("/auth/me", Some(&access)).await.status, 200);
    // The session keeps its amr through refreshes.
    let cookie = verified.refresh_cookie().expect("a refresh cookie");
    let refreshed = app.refresh_with_cookie(&cookie).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(amr(&refreshed.access_token()), json!(["pwd", "otp"]));
}

async fn a_code_is_accepted_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    // The confirming code is spent already.
    let first = mfa_token(&app, &user.email).await;
    verify(&app, &first, &oathtool_code(&user.secret, user.used_step))
        .await
        .assert_problem(401, "invalid_mfa_code");
    let next = oathtool_code(&user.secret, user.used_step + 1);
    assert_eq!(verify(&app, &first, &next).await.status, 200);
    // Replayed within its window, with a fresh token: refused.
    let second = mfa_token(&app, &user.email).await;
    verify(&app, &second, &next)
        .await
        .assert_problem(401, "invalid_mfa_code");
    // The refusal did not spend the token.
    let recovered = verify(&app, &second, &user.recovery_codes[0]).await;
    assert_eq!(recovered.status, 200, "{}", recovered.text);
}

async fn a_recovery_code_works_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    let code = &user.recovery_codes[4];
    let token = mfa_token(&app, &user.email).await;
    // Typed loosely: upper case, without hyphens.
    let loose = code.replace('-', "").to_uppercase();
    let verified = verify(&app, &token, &loose).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(amr(&verified.access_token()), json!(["pwd", "otp"]));
    let token = mfa_token(&app, &user.email).await;
    verify(&app, &token, code)
        .await
        .assert_problem(401, "invalid_mfa_code");
    assert_eq!(
        verify(&app, &token, &user.recovery_codes[5]).await.status,
        200
    );
}

async fn wrong_codes_are_throttled_like_failed_logins(backend: Backend) {
    let app = spawn_app_with(
        backend,
        throttled(vec![("login_failures_per_account", "3".into())]),
    )
    .await;
    let user = enrolled(&app).await;
    let token = mfa_token(&app, &user.email).await;
    let right = oathtool_code(&user.secret, user.used_step + 1);
    let wrong = if right == "000000" {
        "999999"
    } else {
        "000000"
    };
    for _ in 0..3 {
        verify(&app, &token, wrong)
            .await
            .assert_problem(401, "invalid_mfa_code");
    }
    let refused = verify(&app, &token, &right).await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Counted per account from this address: another client's second
    // factor on the same account is not held up by these guesses.
    let elsewhere = app.login_from(&user.email, PASSWORD, "198.51.100.9").await;
    elsewhere.assert_problem(403, "mfa_required");
    let other_token = elsewhere.json()["mfa_token"].as_str().unwrap().to_owned();
    let verified = app
        .send(
            app.client
                .post(app.url("/auth/mfa/verify"))
                .header("x-forwarded-for", "198.51.100.9")
                .json(&json!({"mfa_token": other_token, "code": user.recovery_codes[0]})),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
}

async fn an_mfa_token_is_single_use_and_bound_to_its_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    let token = mfa_token(&app, &user.email).await;
    assert_eq!(
        verify(&app, &token, &user.recovery_codes[0]).await.status,
        200
    );
    verify(&app, &token, &user.recovery_codes[1])
        .await
        .assert_problem(401, "invalid_mfa_token");
    verify(&app, "not-a-token", &user.recovery_codes[1])
        .await
        .assert_problem(401, "invalid_mfa_token");
    // A password change after the login voids its token.
    let token = mfa_token(&app, &user.email).await;
    let changed = app
        .post_json(
            "/auth/password",
            json!({"current_password": PASSWORD, "new_password": "another long passphrase 42"}),
            Some(&user.token),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    verify(&app, &token, &user.recovery_codes[1])
        .await
        .assert_problem(401, "invalid_mfa_token");
    // The refused login did not spend its recovery code.
    let token = app
        .login(&user.email, "another long passphrase 42")
        .await
        .json()["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify(&app, &token, &user.recovery_codes[1]).await.status,
        200
    );
    // Expired after five minutes: aged in the database.
    let token = app
        .login(&user.email, "another long passphrase 42")
        .await
        .json()["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sql("UPDATE mfa_challenges SET expires_at = expires_at - 301")
        .await;
    verify(&app, &token, &user.recovery_codes[2])
        .await
        .assert_problem(401, "invalid_mfa_token");
}

async fn disabling_needs_the_password_and_voids_the_recovery_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    disable(&app, &user.token, "not the password at all")
        .await
        .assert_problem(401, "invalid_credentials");
    let me = app.get("/auth/me", Some(&user.token)).await;
    assert_eq!(me.json()["mfa_enabled"], true);
    let pending = mfa_token(&app, &user.email).await;
    let disabled = disable(&app, &user.token, PASSWORD).await;
    assert_eq!(disabled.status, 204, "{}", disabled.text);
    let me = app.get("/auth/me", Some(&user.token)).await;
    assert_eq!(me.json()["mfa_enabled"], false);
    // A login that was waiting for its second factor cannot finish now.
    verify(&app, &pending, &user.recovery_codes[0])
        .await
        .assert_problem(401, "invalid_mfa_token");
    let login = app.login(&user.email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(amr(&login.access_token()), json!(["pwd"]));
    let left = app
        .sql("SELECT COUNT(*) FROM recovery_codes UNION ALL SELECT COUNT(*) FROM user_totp")
        .await;
    assert_eq!(left, vec![vec![Some("0".into())], vec![Some("0".into())]]);
    // Turned on again, the old recovery codes stay void.
    let again = enrolled(&app).await;
    let token = mfa_token(&app, &again.email).await;
    verify(&app, &token, &user.recovery_codes[0])
        .await
        .assert_problem(401, "invalid_mfa_code");
}

async fn the_stored_secret_is_not_readable_in_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    let rows = app.sql("SELECT sealed_secret FROM user_totp").await;
    assert_eq!(rows.len(), 1);
    let stored = rows[0][0].clone().unwrap();
    let raw = data_encoding_base32_decode(&user.secret);
    assert!(stored.starts_with("v1."), "{stored}");
    for form in [
        user.secret.clone(),
        user.secret.to_lowercase(),
        hex::encode(&raw),
        base64_of(&raw),
    ] {
        assert!(!stored.contains(&form), "the stored text holds the secret");
    }
    // Nothing else in the database holds it either, nor a recovery code.
    let dump = app
        .sql(
            "SELECT digest FROM recovery_codes UNION ALL SELECT sealed_secret FROM user_totp \
             UNION ALL SELECT COALESCE(detail, '') FROM audit_events",
        )
        .await;
    let dump: String = dump
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!dump.contains(&user.secret));
    for code in &user.recovery_codes {
        assert!(!dump.contains(code.as_str()));
        assert!(!dump.contains(&code.replace('-', "")));
    }
    assert!(!app.log_text().contains(&user.secret));
}

async fn every_step_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = enrolled(&app).await;
    let token = mfa_token(&app, &user.email).await;
    verify(&app, &token, "000000").await;
    verify(&app, &token, &user.recovery_codes[0]).await;
    disable(&app, &user.token, PASSWORD).await;
    let events: Vec<String> = app
        .sql("SELECT event FROM audit_events ORDER BY id")
        .await
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect();
    for expected in [
        "mfa_enrolment_started",
        "mfa_enabled",
        "login_mfa_required",
        "mfa_verified",
        "login_succeeded",
        "mfa_disabled",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:?}"
        );
    }
    // "000000" may be the right code once in a million.
    assert!(
        events.iter().any(|e| e == "mfa_failed")
            || oathtool_code(&user.secret, step_now()) == "000000",
        "{events:?}"
    );
}

#[tokio::test]
async fn on_postgresql_without_mfa_encryption_key_enrolment_names_the_variable() {
    let app = spawn_app_with(
        Backend::Postgres,
        AppOptions::with_variables(vec![("mfa_encryption_key", String::new())]),
    )
    .await;
    let (_, login) = app.signed_in_user().await;
    let refused = app
        .post_json("/auth/mfa/totp", json!(null), Some(&login.access_token()))
        .await;
    refused.assert_problem(500, "misconfigured");
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("mfa_encryption_key")
    );
}

#[tokio::test]
async fn the_embedded_default_generates_and_keeps_the_key() {
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions::with_variables(vec![("mfa_encryption_key", String::new())]),
    )
    .await;
    let user = enrolled(&app).await;
    let token = mfa_token(&app, &user.email).await;
    let next = oathtool_code(&user.secret, user.used_step + 1);
    assert_eq!(verify(&app, &token, &next).await.status, 200);
    let kept = app
        .sql("SELECT COUNT(*) FROM settings WHERE name = 'generated_mfa_key'")
        .await;
    assert_eq!(kept, vec![vec![Some("1".into())]]);
}

fn data_encoding_base32_decode(text: &str) -> Vec<u8> {
    // RFC 4648 base32, decoded by hand so the test shares no code with
    // the service.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}
