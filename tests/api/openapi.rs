//! The OpenAPI document against the running service: every documented
//! operation is served, and what the service answers matches the schema
//! the document gives for that status.

use serde_json::{Value, json};

use crate::helpers::*;

/// Checks `value` against `schema`, a schema of `document` (its `$ref`s
/// point into the document), with a JSON Schema 2020-12 validator (OpenAPI
/// 3.1's dialect): every keyword, `pattern`, `format` and the bounds
/// included. Returns every mismatch.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    // The document itself is the root resource, so `#/components/...`
    // resolves; its other members are keywords a validator ignores.
    let mut root = document.clone();
    root["x-checked"] = schema.clone();
    root["$ref"] = json!("#/x-checked");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|error| format!("{at}: the schema does not compile: {error}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|error| format!("{at}{}: {error}", error.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Checks a reply against the document's response for `method path`.
#[track_caller]
pub(crate) fn conforms(document: &Value, method: &str, path: &str, reply: &Reply) {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let mut response = &operation["responses"][reply.status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {}, which is not documented: {}",
        reply.status,
        reply.text
    );
    if let Some(reference) = response["$ref"].as_str() {
        response = document.pointer(reference.trim_start_matches('#')).unwrap();
    }
    let content = &response["content"];
    if !content.is_object() {
        assert!(
            reply.text.is_empty(),
            "{method} {path} {}: unexpected body",
            reply.status
        );
        return;
    }
    let media = reply
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let schema = &content[&media]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {}: undocumented type {media}",
        reply.status
    );
    if media.ends_with("json")
        && let Err(mismatch) = check(document, schema, &reply.json(), "body")
    {
        panic!(
            "{method} {path} {}: {mismatch}\n{}",
            reply.status, reply.text
        );
    }
    for (name, _) in response["headers"].as_object().into_iter().flatten() {
        if name == "Retry-After" || name == "Allow" || name == "WWW-Authenticate" {
            assert!(
                reply.header(name).is_some(),
                "{method} {path} {}: no {name}",
                reply.status
            );
        }
    }
}

async fn document(app: &TestApp) -> Value {
    let reply = app.get("/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    reply.json()
}

#[tokio::test]
async fn every_response_of_a_full_session_matches_the_document() {
    let app = spawn_app_with(
        Backend::PostgresRedis,
        AppOptions::with_variables(vec![("admin_emails", "docs-admin@example.com".into())]),
    )
    .await;
    let doc = document(&app).await;
    let post = |path: &'static str, body: Value, token: Option<String>| {
        let app = &app;
        async move { app.post_json(path, body, token.as_deref()).await }
    };

    let registered = app.register("docs-admin@example.com", PASSWORD).await;
    conforms(&doc, "post", "/auth/register", &registered);
    let token = verification_token_from_log(&app, "docs-admin@example.com").unwrap();
    let verified = post("/auth/verify-email", json!({"token": token}), None).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    conforms(&doc, "post", "/auth/verify-email", &verified);
    conforms(
        &doc,
        "post",
        "/auth/verify-email",
        &post("/auth/verify-email", json!({"token": token}), None).await,
    );
    conforms(
        &doc,
        "post",
        "/auth/password/forgot",
        &post(
            "/auth/password/forgot",
            json!({"email": "docs-admin@example.com"}),
            None,
        )
        .await,
    );
    conforms(
        &doc,
        "post",
        "/auth/password/reset",
        &post(
            "/auth/password/reset",
            json!({"token": token, "new_password": "another passphrase"}),
            None,
        )
        .await,
    );
    conforms(
        &doc,
        "post",
        "/auth/register",
        &app.register("docs-admin@example.com", PASSWORD).await,
    );
    conforms(
        &doc,
        "post",
        "/auth/register",
        &app.register("bad", "x").await,
    );
    let login = app.login("docs-admin@example.com", PASSWORD).await;
    conforms(&doc, "post", "/auth/login", &login);
    conforms(
        &doc,
        "post",
        "/auth/login",
        &app.login("docs-admin@example.com", "wrong one!").await,
    );
    let token = login.access_token();
    let refresh = login.refresh_cookie().unwrap();

    conforms(
        &doc,
        "get",
        "/auth/me",
        &app.get("/auth/me", Some(&token)).await,
    );
    conforms(&doc, "get", "/auth/me", &app.get("/auth/me", None).await);
    conforms(
        &doc,
        "get",
        "/auth/sessions",
        &app.get("/auth/sessions", Some(&token)).await,
    );
    let refreshed = app.refresh_with_body(&refresh).await;
    conforms(&doc, "post", "/auth/refresh", &refreshed);
    conforms(
        &doc,
        "post",
        "/auth/refresh",
        &app.refresh_with_cookie("junk").await,
    );
    conforms(&doc, "get", "/health", &app.get("/health", None).await);

    let topic = post(
        "/questions/topics",
        json!({"slug": "docs", "name": "Docs"}),
        Some(token.clone()),
    )
    .await;
    conforms(&doc, "post", "/questions/topics", &topic);
    let duplicate = post(
        "/questions/topics",
        json!({"slug": "docs", "name": "Docs"}),
        Some(token.clone()),
    )
    .await;
    conforms(&doc, "post", "/questions/topics", &duplicate);
    conforms(&doc, "get", "/questions/topics", &app.topics(&token).await);
    let question = app
        .post_json(
            "/questions/topics/docs/questions",
            json!({"prompt": "Which?", "choices": ["a", "b"], "answer_index": 0}),
            Some(&token),
        )
        .await;
    conforms(
        &doc,
        "post",
        "/questions/topics/{slug}/questions",
        &question,
    );
    let page = app
        .get("/questions/topics/docs/questions?limit=1", Some(&token))
        .await;
    conforms(&doc, "get", "/questions/topics/{slug}/questions", &page);
    conforms(
        &doc,
        "get",
        "/questions/topics/{slug}/questions",
        &app.get("/questions/topics/none/questions", Some(&token))
            .await,
    );
    let id = question.json()["id"].as_str().unwrap().to_owned();
    let answered = app
        .post_json(
            &format!("/questions/{id}/answer"),
            json!({"answer_index": 1}),
            Some(&token),
        )
        .await;
    conforms(&doc, "post", "/questions/{id}/answer", &answered);

    let (_, user) = app.signed_in_user().await;
    let forbidden = post(
        "/questions/topics",
        json!({"slug": "x", "name": "X"}),
        Some(user.access_token()),
    )
    .await;
    conforms(&doc, "post", "/questions/topics", &forbidden);

    let (_, claims) = jwt_parts(&token);
    let sid = claims["sid"].as_str().unwrap();
    let missing = app
        .send(
            app.client
                .delete(app.url("/auth/sessions/nope"))
                .bearer_auth(&token),
        )
        .await;
    conforms(&doc, "delete", "/auth/sessions/{id}", &missing);
    let changed = app
        .post_json(
            "/auth/password",
            json!({"current_password": PASSWORD, "new_password": "brand new passphrase"}),
            Some(&token),
        )
        .await;
    conforms(&doc, "post", "/auth/password", &changed);
    let mut guesses = 0;
    let throttled = loop {
        let guess = app
            .post_json(
                "/auth/password",
                json!({"current_password": format!("guess {guesses}"), "new_password": "another passphrase"}),
                Some(&token),
            )
            .await;
        conforms(&doc, "post", "/auth/password", &guess);
        guesses += 1;
        if guess.status == 429 || guesses == 20 {
            break guess;
        }
    };
    assert_eq!(
        throttled.status, 429,
        "wrong current passwords were never throttled"
    );
    let wrong_method = app.get("/auth/logout", None).await;
    conforms(&doc, "post", "/auth/logout", &wrong_method);
    let revoked = app
        .send(
            app.client
                .delete(app.url(&format!("/auth/sessions/{sid}")))
                .bearer_auth(&token),
        )
        .await;
    conforms(&doc, "delete", "/auth/sessions/{id}", &revoked);
    conforms(
        &doc,
        "post",
        "/auth/logout",
        &app.logout_with_cookie("junk", None).await,
    );
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{slug}", "some-topic")
            .replace("{id}", "6f9619ff-8b86-d011-b42d-00cf4fc964ff");
        for method in operations.as_object().unwrap().keys() {
            // No token and no body: a served route refuses the request for
            // what it lacks (401, 400, 415, 422) before it looks anything
            // up, so a 404 or 405 can only mean the route is not served.
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let reply = app.send(request).await;
            assert!(
                ![404, 405].contains(&reply.status),
                "{method} {path}: {} {}",
                reply.status,
                reply.text
            );
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_by_the_app_itself() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("/docs/swagger-ui-bundle.js"));
    assert!(!page.text.contains("https://"), "no CDN");
    for (asset, kind) in [
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/init.js", "text/javascript"),
    ] {
        let reply = app.get(asset, None).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(
            reply.header("content-type").unwrap().starts_with(kind),
            "{asset}"
        );
    }
    app.get("/docs/missing.js", None)
        .await
        .assert_problem(404, "not_found");
}

#[test]
fn the_schema_checker_enforces_formats_patterns_and_bounds() {
    let document: Value = serde_json::from_str(spin_auth_core::docs::OPENAPI_JSON).unwrap();
    let user = json!({"$ref": "#/components/schemas/User"});
    let valid = json!({
        "id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "email": "ada@example.com",
        "first_name": null, "last_name": null, "roles": ["user"],
        "created_at": "2026-11-29T10:00:00Z", "email_verified": false, "mfa_enabled": false
    });
    assert_eq!(check(&document, &user, &valid, "body"), Ok(()));
    for (field, wrong) in [
        ("id", json!("not-a-uuid")),
        ("created_at", json!("yesterday")),
        ("roles", json!(["superuser"])),
        ("email_verified", json!("yes")),
    ] {
        let mut body = valid.clone();
        body[field] = wrong;
        assert!(check(&document, &user, &body, "body").is_err(), "{field}");
    }
    let topic = json!({"$ref": "#/components/schemas/TopicCreateRequest"});
    for wrong in [
        json!({"slug": "Not A Slug", "name": "x"}),
        json!({"slug": "a", "name": "x".repeat(201)}),
        json!({"slug": "a", "name": "nul\u{0}"}),
    ] {
        assert!(check(&document, &topic, &wrong, "body").is_err(), "{wrong}");
    }
}
