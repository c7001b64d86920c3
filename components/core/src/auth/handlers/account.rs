//! The signed-in user's own account: who they are, their sessions, their
//! password; and the service's health.

use super::{
    AuthService, ClientInfo, account_gone, cleared_cookie, current_password, deliver_after_response,
};
use crate::api_types::{HealthBody, HealthChecks, SessionBody, UserBody};
use crate::auth::account::{
    ChangePassword, DeleteAccount, change_password as change, delete_account,
};
use crate::auth::sessions;
use crate::clock;
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::service::authenticate;

/// `GET /auth/me`.
pub fn me(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let user = service
        .use_case_stores()
        .users
        .user_by_id(&claims.user_id)?
        .ok_or_else(account_gone)?;
    Ok(Response::json(200, &UserBody::new(&user, claims.roles)))
}

/// `GET /auth/sessions`.
pub fn list_sessions(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let stores = service.use_case_stores();
    let sessions = sessions::list_sessions(stores, &claims.user_id, clock::now())?;
    let body: Vec<SessionBody> = sessions
        .into_iter()
        .map(|session| SessionBody::new(session, &claims.session_id))
        .collect();
    Ok(Response::json(200, &body))
}

/// `DELETE /auth/sessions/{id}`: 404 for a session that is not the
/// caller's, whether or not it exists.
pub fn revoke_session(
    service: &AuthService,
    request: &Request,
    session_id: &str,
) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let client = ClientInfo::of(service, request);
    let ended = sessions::revoke_session(
        service.use_case_stores(),
        &claims.user_id,
        session_id,
        client.client(),
        clock::now(),
    )?;
    let response = Response::new(204);
    // Ending the session this request is made in (by any spelling of its
    // id) is a logout.
    Ok(if ended == claims.session_id {
        response.header("set-cookie", &cleared_cookie())
    } else {
        response
    })
}

/// `POST /auth/password`: changes the password and ends every other
/// session of the user.
pub fn change_password(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let mut fields = request.json_object()?;
    let current = fields.string("current_password");
    let new = fields.string("new_password");
    fields.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::invalid("new_password", "is required"));
    };
    let current = Password::for_login(&current)
        .map_err(|reason| ApiError::invalid("current_password", reason))?;
    let client = ClientInfo::of(service, request);
    let command = ChangePassword {
        user_id: &claims.user_id,
        session_id: &claims.session_id,
        current,
        new: &new,
        client: client.client(),
    };
    change(
        service.use_case_stores(),
        &service.settings,
        command,
        clock::now(),
    )?;
    Ok(Response::new(204))
}

/// `DELETE /auth/me`: deletes the caller's account, given the current
/// password, and clears the refresh cookie.
pub fn delete_me(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let current = current_password(request)?;
    let client = ClientInfo::of(service, request);
    let command = DeleteAccount {
        user_id: &claims.user_id,
        session_id: &claims.session_id,
        current,
        client: client.client(),
    };
    delete_account(
        service.use_case_stores(),
        &service.settings,
        command,
        clock::now(),
    )?;
    Ok(Response::new(204).header("set-cookie", &cleared_cookie()))
}

/// `GET /health`: 200 when every store answers, 503 naming the one that
/// does not.
pub fn health(service: &AuthService) -> Response {
    // Health checks come often (a platform's probes): each also delivers
    // due mail after its response, so a message kept after a failure is
    // retried without waiting for the next one to be sent.
    deliver_after_response(service);
    let state = |ok: bool| if ok { "ok" } else { "unavailable" };
    let database = service.stores.database.ping().is_ok();
    let sessions = match &service.stores.redis {
        Some(redis) => redis.ping().is_ok(),
        None => database,
    };
    let healthy = database && sessions;
    let body = HealthBody {
        status: state(healthy),
        checks: HealthChecks {
            database: state(database),
            sessions: state(sessions),
        },
    };
    let response = Response::json(if healthy { 200 } else { 503 }, &body);
    if healthy {
        response
    } else {
        response.header(
            "retry-after",
            &crate::error::UNAVAILABLE_RETRY_AFTER.to_string(),
        )
    }
}
