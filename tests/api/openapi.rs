//! The OpenAPI document against the running service: every documented
//! operation is served, and what the service answers matches the schema
//! the document gives for that status.

use serde_json::{Value, json};

use crate::helpers::*;

/// Checks `value` against a JSON Schema (the subset the document uses:
/// `$ref`, `type` (one or several), `properties`, `required`, `items`,
/// `enum`, `const`, `allOf`, `minimum`, `minItems`, `maxItems`); returns
/// the first mismatch.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.trim_start_matches('#');
        let target = document
            .pointer(pointer)
            .ok_or(format!("{at}: dangling {reference}"))?;
        return check(document, target, value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(document, part, value, at)?;
        }
    }
    let type_matches = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    match &schema["type"] {
        Value::String(name) if !type_matches(name) => {
            return Err(format!("{at}: {value} is not {name}"));
        }
        Value::Array(names) if !names.iter().any(|n| type_matches(n.as_str().unwrap_or(""))) => {
            return Err(format!("{at}: {value} is none of {names:?}"));
        }
        _ => {}
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} not in {options:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    if let (Some(minimum), Some(n)) = (schema["minimum"].as_i64(), value.as_i64())
        && n < minimum
    {
        return Err(format!("{at}: {n} < {minimum}"));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap()) {
                return Err(format!("{at}: missing {name}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(field) = object.get(name) {
                    check(document, property, field, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(document, items, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

/// Checks a reply against the document's response for `method path`.
#[track_caller]
fn conforms(document: &Value, method: &str, path: &str, reply: &Reply) {
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
            .replace("{id}", "some-id");
        for method in operations.as_object().unwrap().keys() {
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let reply = app.send(request).await;
            // Served means the route exists: it may refuse the request, but
            // not as an unknown path or method.
            assert_ne!(reply.status, 405, "{method} {path}: {}", reply.text);
            assert!(
                !(reply.status == 404
                    && reply.text.contains("\"not_found\"")
                    && !path.contains('{')),
                "{method} {path}: {}",
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
