//! The `questions` component: topics, questions and answers. Every route
//! needs a Bearer access token; writes need the `admin` role. It routes
//! each request to a use case in `spin-auth-core`; nothing else.

use spin_auth_core::auth::Service;
use spin_auth_core::component::serve;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::questions;
use spin_auth_core::routing::{QUESTION_ROUTES, Route, route};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const ROUTES: &[Route] = QUESTION_ROUTES;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, handle_request).await;
}

fn handle_request(request: Request) -> Result<Response, ApiError> {
    let (index, params) = route(ROUTES, &request.method, &request.path)?;
    let service = Service::from_spin()?;
    match ROUTES[index] {
        ("GET", "/questions/topics") => questions::list_topics(&service, &request),
        ("POST", "/questions/topics") => questions::create_topic(&service, &request),
        ("GET", "/questions/topics/{slug}/questions") => {
            questions::list_questions(&service, &request, &params[0])
        }
        ("POST", "/questions/topics/{slug}/questions") => {
            questions::create_question(&service, &request, &params[0])
        }
        ("POST", "/questions/{id}/answer") => questions::answer(&service, &request, &params[0]),
        _ => Err(ApiError::NotFound("not_found")),
    }
}
