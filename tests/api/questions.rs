//! The questions component: users read and answer, admins write.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_every_backend;

on_every_backend!(
    a_user_answers_questions_and_sees_the_counts_change,
    a_non_admin_gets_403_on_every_write,
    admins_get_the_admin_role_from_configuration,
    pages_return_every_question_once_while_questions_are_added,
    sql_metacharacters_in_slugs_ids_and_text_are_only_data,
    unknown_topics_and_questions_are_404,
    invalid_topics_and_questions_are_422,
);

const ADMIN: &str = "admin@example.com";

async fn app_with_admin(backend: Backend) -> (TestApp, String) {
    let app = spawn_app_with(
        backend,
        AppOptions::with_variables(vec![(
            "admin_emails",
            format!("{ADMIN}, other-admin@example.com"),
        )]),
    )
    .await;
    app.register_verified(ADMIN, PASSWORD).await;
    let token = app.login(ADMIN, PASSWORD).await.access_token();
    (app, token)
}

async fn create_topic(app: &TestApp, admin: &str, slug: &str) -> Reply {
    app.post_json(
        "/questions/topics",
        json!({"slug": slug, "name": format!("Topic {slug}"), "description": "About it"}),
        Some(admin),
    )
    .await
}

async fn create_question(app: &TestApp, admin: &str, slug: &str, prompt: &str) -> Value {
    let reply = app
        .post_json(
            &format!("/questions/topics/{slug}/questions"),
            json!({"prompt": prompt, "choices": ["A", "B", "C"], "answer_index": 1}),
            Some(admin),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

async fn answer(app: &TestApp, token: &str, question: &str, index: i64) -> Reply {
    app.post_json(
        &format!("/questions/{question}/answer"),
        json!({"answer_index": index}),
        Some(token),
    )
    .await
}

fn topic<'a>(topics: &'a Value, slug: &str) -> &'a Value {
    topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slug"] == slug)
        .unwrap_or_else(|| panic!("no topic {slug} in {topics}"))
}

async fn a_user_answers_questions_and_sees_the_counts_change(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let created = create_topic(&app, &admin, "aws-saa").await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["question_count"], 0);
    let first = create_question(&app, &admin, "aws-saa", "Which is durable?").await;
    assert_eq!(first["answer_index"], 1);
    let second = create_question(&app, &admin, "aws-saa", "Which is cheaper?").await;
    create_topic(&app, &admin, "empty-topic").await;

    let (_, login) = app.signed_in_user().await;
    let user = login.access_token();
    let topics = app.topics(&user).await.json();
    assert_eq!(topic(&topics, "aws-saa")["question_count"], 2);
    assert_eq!(topic(&topics, "aws-saa")["answered"], 0);
    assert_eq!(topic(&topics, "empty-topic")["question_count"], 0);
    assert_eq!(topic(&topics, "aws-saa")["description"], "About it");

    let right = answer(&app, &user, first["id"].as_str().unwrap(), 1).await;
    assert_eq!(right.status, 200, "{}", right.text);
    assert_eq!(right.json(), json!({"correct": true, "answer_index": 1}));
    let topics = app.topics(&user).await.json();
    assert_eq!(
        (
            topic(&topics, "aws-saa")["answered"].clone(),
            topic(&topics, "aws-saa")["correct"].clone()
        ),
        (json!(1), json!(1))
    );

    // The latest answer counts.
    let wrong = answer(&app, &user, first["id"].as_str().unwrap(), 2).await;
    assert_eq!(wrong.json(), json!({"correct": false, "answer_index": 1}));
    answer(&app, &user, second["id"].as_str().unwrap(), 1).await;
    let topics = app.topics(&user).await.json();
    assert_eq!(topic(&topics, "aws-saa")["answered"], 2);
    assert_eq!(topic(&topics, "aws-saa")["correct"], 1);

    // Another user's progress is their own.
    let (_, other) = app.signed_in_user().await;
    let topics = app.topics(&other.access_token()).await.json();
    assert_eq!(topic(&topics, "aws-saa")["answered"], 0);

    // Listing questions does not reveal the answers.
    let page = app
        .get("/questions/topics/aws-saa/questions", Some(&user))
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["items"][0].get("answer_index").is_none());
    assert_eq!(page["next_cursor"], Value::Null);
}

async fn a_non_admin_gets_403_on_every_write(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    create_topic(&app, &admin, "guarded").await;
    let (_, login) = app.signed_in_user().await;
    let user = login.access_token();
    create_topic(&app, &user, "mine")
        .await
        .assert_problem(403, "forbidden");
    app.post_json(
        "/questions/topics/guarded/questions",
        json!({"prompt": "p", "choices": ["a", "b"], "answer_index": 0}),
        Some(&user),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(app.topics(&user).await.status, 200);
}

async fn admins_get_the_admin_role_from_configuration(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let (_, claims) = jwt_parts(&admin);
    assert_eq!(claims["roles"], json!(["user", "admin"]));
    assert_eq!(
        app.get("/auth/me", Some(&admin)).await.json()["roles"],
        json!(["user", "admin"])
    );
    // Registering a listed address grants nothing until it is verified;
    // case does not matter, as for every email.
    assert_eq!(
        app.register("Other-Admin@Example.com", PASSWORD)
            .await
            .json()["roles"],
        json!(["user"])
    );
    let token = verification_token_from_log(&app, "other-admin@example.com").unwrap();
    let verified = app
        .post_json("/auth/verify-email", json!({"token": token}), None)
        .await;
    assert_eq!(verified.json()["roles"], json!(["user", "admin"]));
}

async fn pages_return_every_question_once_while_questions_are_added(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    create_topic(&app, &admin, "paged").await;
    let mut original = Vec::new();
    for n in 0..7 {
        original.push(
            create_question(&app, &admin, "paged", &format!("Question {n}")).await["id"].clone(),
        );
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = Vec::new();
    for page_number in 0.. {
        let path = match &cursor {
            Some(cursor) => format!("/questions/topics/paged/questions?limit=3&cursor={cursor}"),
            None => "/questions/topics/paged/questions?limit=3".to_owned(),
        };
        let page = app.get(&path, Some(&admin)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["id"].clone()),
        );
        if page_number == 0 {
            // Questions arrive while a client pages.
            for n in 0..2 {
                added.push(
                    create_question(&app, &admin, "paged", &format!("Late {n}")).await["id"]
                        .clone(),
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(page_number < 10, "paging does not end");
    }
    for id in original.iter().chain(&added) {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} in {seen:?}"
        );
    }
    assert_eq!(seen.len(), 9);

    for bad in ["limit=0", "limit=101", "limit=x", "cursor=not-a-cursor"] {
        app.get(
            &format!("/questions/topics/paged/questions?{bad}"),
            Some(&admin),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
}

async fn sql_metacharacters_in_slugs_ids_and_text_are_only_data(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    let hostile = "Robert'); DROP TABLE users; -- \" \\ % _";
    let reply = app
        .post_json(
            "/questions/topics",
            json!({"slug": "safe-slug", "name": hostile, "description": hostile}),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["name"], hostile);
    let question = app
        .post_json(
            "/questions/topics/safe-slug/questions",
            json!({"prompt": hostile, "choices": [hostile, "' OR '1'='1"], "answer_index": 0}),
            Some(&admin),
        )
        .await;
    assert_eq!(question.status, 201, "{}", question.text);
    create_topic(&app, &admin, "x'; DROP TABLE topics; --")
        .await
        .assert_problem(422, "validation_failed");
    for path in [
        "/questions/topics/x'%20OR%20'1'='1/questions",
        "/questions/topics/%27%3B%20DROP%20TABLE%20topics%3B--/questions",
    ] {
        app.get(path, Some(&admin))
            .await
            .assert_problem(404, "not_found");
    }
    answer(&app, &admin, "'%20OR%20'1'='1", 0)
        .await
        .assert_problem(404, "not_found");
    answer(&app, &admin, "1%3B%20DELETE%20FROM%20answers", 0)
        .await
        .assert_problem(404, "not_found");
    let page = app
        .get("/questions/topics/safe-slug/questions", Some(&admin))
        .await
        .json();
    assert_eq!(page["items"][0]["prompt"], hostile);
    assert_eq!(page["items"][0]["choices"], json!([hostile, "' OR '1'='1"]));
    // Everything still stands.
    assert_eq!(app.login(ADMIN, PASSWORD).await.status, 200);
    assert_eq!(app.topics(&admin).await.json().as_array().unwrap().len(), 1);
}

async fn unknown_topics_and_questions_are_404(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    app.get("/questions/topics/no-such-topic/questions", Some(&admin))
        .await
        .assert_problem(404, "not_found");
    app.post_json(
        "/questions/topics/no-such-topic/questions",
        json!({"prompt": "p", "choices": ["a", "b"], "answer_index": 0}),
        Some(&admin),
    )
    .await
    .assert_problem(404, "not_found");
    answer(&app, &admin, "00000000-0000-0000-0000-000000000000", 0)
        .await
        .assert_problem(404, "not_found");
}

async fn invalid_topics_and_questions_are_422(backend: Backend) {
    let (app, admin) = app_with_admin(backend).await;
    assert_eq!(create_topic(&app, &admin, "dup").await.status, 201);
    create_topic(&app, &admin, "dup")
        .await
        .assert_problem(409, "slug_taken");
    for slug in ["", "UPPER", "a--b", "-a", &"x".repeat(65)] {
        create_topic(&app, &admin, slug)
            .await
            .assert_problem(422, "validation_failed");
    }
    let bad_questions = [
        json!({"prompt": "", "choices": ["a", "b"], "answer_index": 0}),
        json!({"prompt": "p", "choices": ["only"], "answer_index": 0}),
        json!({"prompt": "p", "choices": vec!["c"; 11], "answer_index": 0}),
        json!({"prompt": "p", "choices": ["a", " "], "answer_index": 0}),
        json!({"prompt": "p", "choices": ["a", "b"], "answer_index": 2}),
        json!({"prompt": "p", "choices": ["a", "b"], "answer_index": -1}),
        json!({"prompt": "p", "choices": "a,b", "answer_index": 0}),
        json!({"prompt": "p", "choices": ["a", 2], "answer_index": 0}),
        json!({"choices": ["a", "b"]}),
    ];
    for body in bad_questions {
        app.post_json(
            "/questions/topics/dup/questions",
            body.clone(),
            Some(&admin),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    let question = create_question(&app, &admin, "dup", "Valid?").await;
    for index in [json!(3), json!(-1), json!("1"), json!(null)] {
        app.post_json(
            &format!("/questions/{}/answer", question["id"].as_str().unwrap()),
            json!({"answer_index": index}),
            Some(&admin),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
}
