//! Signing in and out over HTTP: login, refresh token rotation, logout.

use super::{AuthService, ClientInfo, REFRESH_COOKIE, cleared_cookie, refresh_cookie, role_names};
use crate::api_types::{TokenBody, UserBody};
use crate::auth::login::{Login, SignInOutcome, SignedIn, sign_in};
use crate::auth::sessions::{self, LoggedOut, Proof, Scope};
use crate::clock;
use crate::domain::Password;
use crate::error::{ApiError, FieldError};
use crate::http::{JsonFields, Request, Response, form_pairs};
use crate::service::{authenticate, authenticate_expired};
use crate::tokens::RefreshToken;

/// Email and password from a JSON body or an OAuth2 password-grant form
/// (RFC 6749 section 4.3.2), which Swagger UI's Authorize sends.
fn credentials(request: &Request) -> Result<(String, String), ApiError> {
    let mut fields = match request.media_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let mut fields = JsonFields::from_pairs(form_pairs(&request.body));
            // The one grant this endpoint serves; absent means it.
            if fields
                .optional_string("grant_type")
                .is_some_and(|grant| grant != "password")
            {
                fields.reject(FieldError::new("grant_type", "must be password"));
            }
            if !fields.has("username") && !fields.has("email") {
                fields.reject(FieldError::new("username", "is required"));
            }
            let username = fields.optional_string("username");
            let email = fields.optional_string("email");
            let password = fields.string("password");
            fields.finish()?;
            // finish() has refused every form that lacks one of the two.
            return username
                .or(email)
                .zip(password)
                .ok_or(ApiError::invalid("username", "and password are required"));
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
    let client = ClientInfo::of(service, request);
    let command = Login {
        email: &email,
        password,
        client: client.client(),
    };
    let stores = service.use_case_stores().sign_in();
    let outcome = sign_in(
        stores,
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
    Ok(Response::json(200, &body).header(
        "set-cookie",
        // A new session: all of its lifetime is left.
        &refresh_cookie(
            &signed_in.refresh_token,
            &service.settings,
            service.settings.session_max_lifetime,
        ),
    ))
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
    let presented = presented_refresh_token(request)?;
    let Some((presented, in_body)) = presented
        .and_then(|(token, in_body)| RefreshToken::parse(&token).map(|token| (token, in_body)))
    else {
        return Err(ApiError::InvalidRefreshToken);
    };
    let client = ClientInfo::of(service, request);
    let now = clock::now();
    let refreshed = sessions::refresh(
        service.use_case_stores(),
        &service.settings,
        &service.policy(),
        presented,
        client.client(),
        now,
    )?;
    // The session keeps how its login was authenticated.
    let amr: Vec<&str> = refreshed.amr.iter().map(String::as_str).collect();
    let access_token = service.keys()?.mint_with_amr(
        &refreshed.user.id,
        &refreshed.session_id,
        &refreshed.roles,
        &amr,
        service.settings.access_token_ttl,
    )?;
    let current = refreshed.refresh_token;
    let session_left = u64::try_from(refreshed.session_expires_at - now).unwrap_or(0);
    let body = TokenBody {
        access_token,
        token_type: "bearer",
        expires_in: service.settings.access_token_ttl,
        refresh_token: in_body.then(|| current.expose().to_owned()),
        user: None,
    };
    Ok(Response::json(200, &body).header(
        "set-cookie",
        &refresh_cookie(&current, &service.settings, session_left),
    ))
}

/// Renders a refresh failure; a 401 for the cookie's token also clears the
/// cookie, so a browser stops sending a token that will never work again.
/// A token that failed in the body says nothing about the cookie's, unless
/// it was a reuse: that revoked its session, which a client sending both
/// holds in its cookie too.
pub fn refresh_failure_response(error: &ApiError, request: &Request) -> Response {
    let response = crate::problem::response(error);
    let in_body = matches!(presented_refresh_token(request), Ok(Some((_, true))));
    let ended = matches!(error, ApiError::RefreshTokenReused);
    if error.status() == 401 && (!in_body || ended) {
        response.header("set-cookie", &cleared_cookie())
    } else {
        response
    }
}

/// `POST /auth/logout?scope=local|others|global`: 204, clearing the cookie;
/// ends what the scope says for the session the request proves: the
/// refresh token's if it names one, else the Bearer token's (an expired
/// one proves its own session only: 401 for the other scopes).
pub fn logout(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let scope = match request.query_param("scope")? {
        None => Scope::Local,
        Some(value) => Scope::parse(&value)
            .ok_or_else(|| ApiError::invalid("scope", "must be local, others or global"))?,
    };
    let client = ClientInfo::of(service, request);
    let now = clock::now();
    let log_out = |proof| {
        sessions::log_out(
            service.use_case_stores(),
            &service.settings,
            proof,
            scope,
            client.client(),
            now,
        )
    };
    let refresh_token =
        presented_refresh_token(request)?.and_then(|(token, _)| RefreshToken::parse(&token));
    let mut outcome = match &refresh_token {
        Some(token) => log_out(Proof::RefreshToken(token))?,
        None => LoggedOut::NoSession,
    };
    if outcome == LoggedOut::NoSession {
        match authenticate(service, request) {
            Ok(claims) => {
                outcome = log_out(Proof::Session {
                    user_id: &claims.user_id,
                    session_id: &claims.session_id,
                })?;
            }
            Err(ApiError::Unavailable(store, cause)) => {
                return Err(ApiError::Unavailable(store, cause));
            }
            // An expired token still proves the session it was issued in:
            // a client that idled past its lifetime can end that session.
            // Ending the others takes a credential that still opens them.
            Err(ApiError::TokenExpired) if scope == Scope::Local => {
                let max_age = service.settings.session_max_lifetime;
                if let Some(claims) = authenticate_expired(service, request, max_age)? {
                    outcome = log_out(Proof::Session {
                        user_id: &claims.user_id,
                        session_id: &claims.session_id,
                    })?;
                }
            }
            Err(ApiError::TokenExpired) => return Err(ApiError::TokenExpired),
            // No session to end: a logout is still a success.
            Err(_) => {}
        }
    }
    let response = Response::new(204);
    // Logging out other sessions leaves this one signed in.
    Ok(
        if scope == Scope::Others && outcome != LoggedOut::StolenTokenRevoked {
            response
        } else {
            response.header("set-cookie", &cleared_cookie())
        },
    )
}
