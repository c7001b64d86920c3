//! Signing in and out: login, refresh token rotation, logout.

use super::login::{Client, Login, SignInOutcome, SignedIn, sign_in};
use super::{
    AuthService, REFRESH_COOKIE, Who, cleared_cookie, refresh_cookie, role_names, user_agent,
};
use crate::api_types::{TokenBody, UserBody};
use crate::clock;
use crate::domain::{Password, roles_for};
use crate::error::ApiError;
use crate::http::{JsonFields, Request, Response, form_pairs};
use crate::service::authenticate;
use crate::store::{RotatedSession, Rotation, UserStore};
use crate::tokens::RefreshToken;

/// Email and password from a JSON body or an OAuth2 password-grant form
/// (RFC 6749 section 4.3.2), which Swagger UI's Authorize sends.
fn credentials(request: &Request) -> Result<(String, String), ApiError> {
    let mut fields = match request.media_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let mut fields = JsonFields::from_pairs(form_pairs(&request.body));
            let username = fields.optional_string("username");
            let email = fields.optional_string("email");
            let password = fields.string("password");
            return match (username.or(email), password) {
                (Some(email), Some(password)) => {
                    fields.finish()?;
                    Ok((email, password))
                }
                (None, _) => Err(ApiError::invalid("username", "is required")),
                _ => Err(fields
                    .finish()
                    .err()
                    .unwrap_or(ApiError::invalid("password", "is required"))),
            };
        }
        _ => request.json_object()?,
    };
    let email = fields.string("email");
    let password = fields.string("password");
    fields.finish()?;
    match (email, password) {
        (Some(email), Some(password)) => Ok((email, password)),
        _ => Err(ApiError::invalid("email", "is required")),
    }
}

/// `POST /auth/login`: checks the password and starts a session.
pub fn login(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let (email, password) = credentials(request)?;
    let password =
        Password::for_login(&password).map_err(|reason| ApiError::invalid("password", reason))?;
    let ip = request.client_ip(&service.settings.trusted_proxies);
    let user_agent = user_agent(request);
    let command = Login {
        email: &email,
        password,
        client: Client {
            ip: &ip,
            user_agent: &user_agent,
        },
    };
    let outcome = sign_in(
        service.sign_in_stores(),
        &service.settings,
        &service.policy(),
        command,
        clock::now(),
    )?;
    match outcome {
        SignInOutcome::SignedIn(signed_in) => signed_in_response(service, &signed_in),
        // No tokens and no cookie: 403 with the token for the second step.
        SignInOutcome::MfaRequired(token) => Err(ApiError::MfaRequired(token)),
    }
}

/// The answer to a completed login, from `POST /auth/login` or
/// `POST /auth/mfa/verify`: the access token, the user and the refresh
/// cookie.
pub(super) fn signed_in_response(
    service: &AuthService,
    signed_in: &SignedIn,
) -> Result<Response, ApiError> {
    let access_token = service.keys()?.mint_with_amr(
        &signed_in.user.id,
        &signed_in.session_id,
        &signed_in.roles,
        signed_in.amr,
        service.settings.access_token_ttl,
    )?;
    let body = TokenBody {
        access_token,
        token_type: "bearer",
        expires_in: service.settings.access_token_ttl,
        refresh_token: None,
        user: Some(UserBody::new(&signed_in.user, role_names(&signed_in.roles))),
    };
    Ok(Response::json(200, &body)
        .header(
            "set-cookie",
            &refresh_cookie(&signed_in.refresh_token, service.settings.refresh_token_ttl),
        )
        .header("cache-control", "no-store"))
}

/// The refresh token a request carries: in a JSON body (clients without a
/// cookie jar) or in the cookie. The flag says it came in the body.
fn presented_refresh_token(request: &Request) -> Result<Option<(String, bool)>, ApiError> {
    if let Some(mut fields) = request.optional_json_object()? {
        if let Some(token) = fields.optional_string("refresh_token") {
            fields.finish()?;
            return Ok(Some((token, true)));
        }
        fields.finish()?;
    }
    Ok(request
        .cookie(REFRESH_COOKIE)
        .filter(|token| !token.is_empty())
        .map(|token| (token.to_owned(), false)))
}

/// `POST /auth/refresh`: rotates the refresh token, mints an access token.
pub fn refresh(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let refused = Err;
    let Some((presented, in_body)) = presented_refresh_token(request)? else {
        return refused(ApiError::InvalidRefreshToken);
    };
    let Some(presented) = RefreshToken::parse(&presented) else {
        return refused(ApiError::InvalidRefreshToken);
    };
    let replacement = RefreshToken::generate();
    let now = clock::now();
    let rotation = service.stores.sessions().rotate(
        &presented.digest(),
        &replacement.digest(),
        &presented.seal(&replacement),
        now,
        &service.policy(),
    )?;
    let (session, current) = match rotation {
        Rotation::Rotated(session) => (session, replacement),
        Rotation::Replayed(session, chain) => {
            // Follow the sealed successors to the session's current token.
            let mut token = presented;
            for sealed in &chain {
                token = match token.unseal(sealed) {
                    Some(next) => next,
                    None => return refused(ApiError::InvalidRefreshToken),
                };
            }
            (session, token)
        }
        Rotation::Reused(session) => {
            service.audit(
                "refresh_token_reused",
                request,
                Who::session(&session.user_id, &session.session_id),
                Some(
                    "a retired refresh token was presented after the grace window; session revoked",
                ),
            );
            return refused(ApiError::RefreshTokenReused);
        }
        Rotation::Invalid => return refused(ApiError::InvalidRefreshToken),
    };
    let RotatedSession {
        session_id,
        user_id,
        roles: _,
        amr,
    } = session;
    // Roles are read afresh, so one taken away (an address removed from
    // admin_emails) is gone from this token on; an account that no longer
    // exists gets no token.
    let Some(user) = service.stores.database.user_by_id(&user_id)? else {
        service
            .stores
            .sessions()
            .revoke_session(&user_id, &session_id)?;
        return refused(ApiError::InvalidRefreshToken);
    };
    let roles = roles_for(&user, &service.settings.admin_emails);
    // The session keeps how its login was authenticated.
    let amr: Vec<&str> = amr.split(',').filter(|method| !method.is_empty()).collect();
    let access_token = service.keys()?.mint_with_amr(
        &user_id,
        &session_id,
        &roles,
        &amr,
        service.settings.access_token_ttl,
    )?;
    service.audit(
        "refresh",
        request,
        Who::session(&user_id, &session_id),
        None,
    );
    let body = TokenBody {
        access_token,
        token_type: "bearer",
        expires_in: service.settings.access_token_ttl,
        refresh_token: in_body.then(|| current.expose().to_owned()),
        user: None,
    };
    Ok(Response::json(200, &body)
        .header(
            "set-cookie",
            &refresh_cookie(&current, service.settings.refresh_token_ttl),
        )
        .header("cache-control", "no-store"))
}

/// Renders a refresh failure; a 401 also clears the cookie, so a browser
/// stops sending a token that will never work again.
pub fn refresh_failure_response(error: &ApiError) -> Response {
    let response = crate::problem::response(error);
    if error.status() == 401 {
        response.header("set-cookie", &cleared_cookie())
    } else {
        response
    }
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Local,
    Others,
    Global,
}

/// `POST /auth/logout?scope=local|others|global`: always 204, clearing the
/// cookie; ends what the scope says for the session the request proves.
pub fn logout(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let scope = match request.query_param("scope").as_deref() {
        None | Some("local") => Scope::Local,
        Some("others") => Scope::Others,
        Some("global") => Scope::Global,
        Some(_) => {
            return Err(ApiError::invalid(
                "scope",
                "must be local, others or global",
            ));
        }
    };
    let now = clock::now();
    let sessions = service.stores.sessions();
    // The refresh token if there is one, else the Bearer token.
    let from_refresh = match presented_refresh_token(request)? {
        Some((token, _)) => match RefreshToken::parse(&token) {
            Some(token) => sessions.session_of_token(&token.digest(), now)?,
            None => None,
        },
        None => None,
    };
    let session = match from_refresh {
        // A token retired before the grace window is a stolen one replayed,
        // not a logout: its session ends (as at /auth/refresh), and the
        // scope it asked for is ignored, so a thief cannot end the owner's
        // other sessions with it.
        Some(owner)
            if owner
                .retired_at
                .is_some_and(|at| now - at > service.settings.refresh_reuse_grace as i64) =>
        {
            sessions.revoke_session(&owner.user_id, &owner.session_id)?;
            service.audit(
                "refresh_token_reused",
                request,
                Who::session(&owner.user_id, &owner.session_id),
                Some("a retired refresh token was presented to logout; session revoked"),
            );
            return Ok(Response::new(204).header("set-cookie", &cleared_cookie()));
        }
        Some(owner) => Some((owner.session_id, owner.user_id)),
        None => match authenticate(service, request) {
            Ok(claims) => Some((claims.session_id, claims.user_id)),
            Err(ApiError::Unavailable(store, cause)) => {
                return Err(ApiError::Unavailable(store, cause));
            }
            Err(_) => None,
        },
    };
    if let Some((session_id, user_id)) = session {
        match scope {
            Scope::Local => {
                sessions.revoke_session(&user_id, &session_id)?;
            }
            Scope::Others => {
                sessions.revoke_all_sessions(&user_id, Some(&session_id))?;
            }
            Scope::Global => {
                sessions.revoke_all_sessions(&user_id, None)?;
            }
        }
        let detail = match scope {
            Scope::Local => "scope=local",
            Scope::Others => "scope=others",
            Scope::Global => "scope=global",
        };
        service.audit(
            "logout",
            request,
            Who::session(&user_id, &session_id),
            Some(detail),
        );
    }
    let response = Response::new(204);
    // Logging out other sessions leaves this one signed in.
    Ok(if scope == Scope::Others {
        response
    } else {
        response.header("set-cookie", &cleared_cookie())
    })
}
