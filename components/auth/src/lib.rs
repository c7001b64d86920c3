//! The `auth` component: registration, login, token refresh, logout,
//! sessions, password change, two-factor sign-in, health and the
//! token-verification keys (JWKS and discovery document). It routes each
//! request to a use case in `spin-auth-core` and maps the result to HTTP;
//! nothing else. It
//! also serves the OpenAPI document and Swagger UI.

use spin_auth_core::auth::{self, AuthService};
use spin_auth_core::component::serve;
use spin_auth_core::docs;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::routing::{AUTH_ROUTES, AuthOp, route};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, handle_request).await;
}

fn handle_request(request: Request) -> Result<Response, ApiError> {
    let (operation, params) = route(AUTH_ROUTES, &request.method, &request.path)?;
    // Read on use: the documentation needs no configuration and no store.
    let service = AuthService::from_spin;
    match operation {
        AuthOp::OpenApi => Ok(docs::openapi()),
        AuthOp::Docs => docs::asset(&request.path),
        AuthOp::Register => auth::register(&service()?, &request),
        AuthOp::Login => auth::login(&service()?, &request),
        AuthOp::Refresh => Ok(auth::refresh(&service()?, &request)
            .unwrap_or_else(|error| auth::refresh_failure_response(&error, &request))),
        AuthOp::Logout => auth::logout(&service()?, &request),
        AuthOp::Me => auth::me(&service()?, &request),
        AuthOp::DeleteMe => auth::delete_me(&service()?, &request),
        AuthOp::ListSessions => auth::list_sessions(&service()?, &request),
        AuthOp::RevokeSession => auth::revoke_session(&service()?, &request, &params[0]),
        AuthOp::ChangePassword => auth::change_password(&service()?, &request),
        AuthOp::RequestVerification => auth::request_verification(&service()?, &request),
        AuthOp::VerifyEmail => auth::verify_email(&service()?, &request),
        AuthOp::ForgotPassword => auth::forgot_password(&service()?, &request),
        AuthOp::ResetPassword => auth::reset_password(&service()?, &request),
        AuthOp::EnrolTotp => auth::enrol_totp(&service()?, &request),
        AuthOp::ConfirmTotp => auth::confirm_totp(&service()?, &request),
        AuthOp::DisableTotp => auth::disable_totp(&service()?, &request),
        AuthOp::VerifySecondFactor => auth::verify_second_factor(&service()?, &request),
        AuthOp::Health => Ok(auth::health(&service()?)),
        AuthOp::Jwks => auth::jwks(&service()?),
        AuthOp::OpenIdConfiguration => auth::openid_configuration(&service()?, &request),
    }
}
