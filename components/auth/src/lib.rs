//! The `auth` component: registration, login, token refresh, logout,
//! sessions, password change and health. It routes each request to a use
//! case in `spin-auth-core` and maps the result to HTTP; nothing else. It
//! also serves the OpenAPI document and Swagger UI.

use spin_auth_core::auth::{self, Service};
use spin_auth_core::component::serve;
use spin_auth_core::docs;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::routing::{AUTH_ROUTES, Route, route};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

const ROUTES: &[Route] = AUTH_ROUTES;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, handle_request).await;
}

fn handle_request(request: Request) -> Result<Response, ApiError> {
    let (index, params) = route(ROUTES, &request.method, &request.path)?;
    // The documentation needs no configuration and no store.
    match ROUTES[index].1 {
        "/openapi.json" => return Ok(docs::openapi()),
        "/docs" | "/docs/{file}" => return docs::asset(&request.path),
        _ => {}
    }
    let service = Service::from_spin()?;
    match ROUTES[index].1 {
        "/auth/register" => auth::register(&service, &request),
        "/auth/login" => auth::login(&service, &request),
        "/auth/refresh" => Ok(auth::refresh(&service, &request)
            .unwrap_or_else(|error| auth::refresh_failure_response(&error))),
        "/auth/logout" => auth::logout(&service, &request),
        "/auth/me" => auth::me(&service, &request),
        "/auth/sessions" => auth::list_sessions(&service, &request),
        "/auth/sessions/{id}" => auth::revoke_session(&service, &request, &params[0]),
        "/auth/password" => auth::change_password(&service, &request),
        "/health" => Ok(auth::health(&service)),
        _ => Err(ApiError::NotFound("not_found")),
    }
}
