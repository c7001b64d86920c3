//! Runs the store conformance suite against the stores the variables name:
//! the SQL database for users, and for sessions and counters Redis when
//! `redis_url` is set, else the same database. Answers
//! `[{store, case, failure}]`.

use spin_auth_core::component::serve;
use spin_auth_core::config::store_settings_from_spin;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::store::Stores;
use spin_auth_core::store::conformance::{Subject, run};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, run_suite).await;
}

fn run_suite(_request: Request) -> Result<Response, ApiError> {
    let settings = store_settings_from_spin()?;
    let stores = Stores::open(&settings);
    let store = match (&settings.database_url, &settings.redis_url) {
        (_, Some(_)) => "redis",
        (Some(_), None) => "postgres",
        (None, None) => "sqlite",
    };
    let outcomes = run(&Subject {
        users: &stores.database,
        sessions: stores.sessions(),
        counters: stores.counters(),
        mfa: &stores.database,
        directory: &stores.database,
        audit: &stores.database,
        outbox: &stores.database,
        database: Some(&stores.database),
    });
    let body: Vec<serde_json::Value> = outcomes
        .into_iter()
        .map(|outcome| {
            serde_json::json!({"store": store, "case": outcome.case, "failure": outcome.failure})
        })
        .collect();
    Ok(Response::json(200, &body))
}
