//! The signed-in user's own account: who they are, their sessions, their
//! password; and the service's health.

use super::throttling::Attempt;
use super::{AuthService, Who};
use crate::api_types::{HealthBody, HealthChecks, SessionBody, UserBody};
use crate::clock;
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::password::{hash_password, verify_password};
use crate::service::authenticate;
use crate::store::UserStore;

/// `GET /auth/me`.
pub fn me(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let user = service
        .stores
        .database
        .user_by_id(&claims.user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    Ok(Response::json(200, &UserBody::new(&user, claims.roles)))
}

/// `GET /auth/sessions`.
pub fn list_sessions(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let sessions = service
        .stores
        .sessions()
        .list_sessions(&claims.user_id, clock::now())?;
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
    let Some(session_id) = crate::domain::parse_id(session_id) else {
        return Err(ApiError::NotFound("session_not_found"));
    };
    let session_id = session_id.as_str();
    if !service
        .stores
        .sessions()
        .revoke_session(&claims.user_id, session_id)?
    {
        return Err(ApiError::NotFound("session_not_found"));
    }
    service.audit(
        "session_revoked",
        request,
        Who::session(&claims.user_id, session_id),
        None,
    );
    Ok(Response::new(204))
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
    let user = service
        .stores
        .database
        .user_by_id(&claims.user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    let Some(stored) = service.stores.database.credentials(&user.id)? else {
        return Err(ApiError::InvalidToken("the account no longer exists"));
    };
    let current = Password::for_login(&current)
        .map_err(|reason| ApiError::invalid("current_password", reason))?;
    let context = [
        user.email.as_str(),
        user.first_name.as_deref().unwrap_or_default(),
    ];
    let new = Password::parse(&new, &context)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    // Whoever holds a token must not get unlimited guesses at the password
    // behind it.
    let attempt = Attempt::begin(
        service.stores.counters(),
        &service.settings,
        format!("password:{}", user.id),
        None,
    )?;
    let now = clock::now();
    if verify_password(&current, &stored.hash).matches {
        attempt.succeeded()?;
        service
            .stores
            .database
            .change_password_hash(&user.id, &hash_password(&new)?, now)?;
    } else if verify_password(&new, &stored.hash).matches {
        // The same change, retried: it was stored, but ending the other
        // sessions failed (a 503). The caller proves the password now in
        // force, and the change is finished below, so a 503 is never the
        // last word on a change that half happened.
        attempt.succeeded()?;
    } else {
        service.audit(
            "password_change_failed",
            request,
            Who::session(&user.id, &claims.session_id),
            None,
        );
        return Err(ApiError::InvalidCredentials);
    }
    let revoked = service
        .stores
        .sessions()
        .revoke_all_sessions(&user.id, Some(&claims.session_id))?;
    service.audit(
        "password_changed",
        request,
        Who::session(&user.id, &claims.session_id),
        Some(&format!("other sessions revoked: {revoked}")),
    );
    Ok(Response::new(204))
}

/// `GET /health`: 200 when every store answers, 503 naming the one that
/// does not.
pub fn health(service: &AuthService) -> Response {
    // Health checks come often (a platform's probes): each also delivers
    // due mail after its response, so a message kept after a failure is
    // retried without waiting for the next one to be sent.
    super::deliver_after_response(service);
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
    let response =
        Response::json(if healthy { 200 } else { 503 }, &body).header("cache-control", "no-store");
    if healthy {
        response
    } else {
        response.header(
            "retry-after",
            &crate::error::UNAVAILABLE_RETRY_AFTER.to_string(),
        )
    }
}
