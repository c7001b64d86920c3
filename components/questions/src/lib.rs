//! The `questions` component: topics, questions and answers. Every route
//! needs a Bearer access token; writes need the `admin` role. It routes
//! each request to a use case in `spin-auth-core`; nothing else.

use spin_auth_core::component::serve;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::questions;
use spin_auth_core::routing::{QUESTION_ROUTES, QuestionOp, route};
use spin_auth_core::service::Service;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, handle_request).await;
}

fn handle_request(request: Request) -> Result<Response, ApiError> {
    let (operation, params) = route(QUESTION_ROUTES, &request.method, &request.path)?;
    let service = Service::from_spin()?;
    match operation {
        QuestionOp::ListTopics => questions::list_topics(&service, &request),
        QuestionOp::CreateTopic => questions::create_topic(&service, &request),
        QuestionOp::ListQuestions => questions::list_questions(&service, &request, &params[0]),
        QuestionOp::CreateQuestion => questions::create_question(&service, &request, &params[0]),
        QuestionOp::Answer => questions::answer(&service, &request, &params[0]),
    }
}
