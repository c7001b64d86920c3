//! The auth use cases, one function per route. Each reads as the steps of
//! its use case; the component only routes to it.

use std::cell::OnceCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::api_types::{HealthBody, HealthChecks, SessionBody, TokenBody, UserBody};
use crate::clock;
use crate::config::Config;
use crate::domain::{Email, Password, Role, roles_for};
use crate::error::{ApiError, FieldError};
use crate::http::{JsonFields, Request, Response, form_pairs};
use crate::password::{hash_password, verify_against_dummy, verify_password};
use crate::store::{
    AuditEvent, AuditLog, NewSession, NewUser, RotatedSession, Rotation, SessionPolicy, Stores,
    UserStore,
};
use crate::throttle;
use crate::tokens::{AccessClaims, AccessKeys, RefreshToken, TokenRejection};

/// Name of the refresh cookie; `__Secure-` makes browsers insist on
/// `Secure` (RFC 6265bis section 4.1.3.1).
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The cookie is sent only to the routes that read it.
const REFRESH_COOKIE_PATH: &str = "/auth";
/// Longest `User-Agent` kept with a session or audit event.
const MAX_USER_AGENT: usize = 256;
/// Longest first or last name.
const MAX_NAME: usize = 100;
/// Settings key of the signing key generated for the embedded setup.
const GENERATED_KEY_SETTING: &str = "generated_jwt_key";

/// One request's configuration and stores.
pub struct Service {
    /// Settings.
    pub config: Config,
    /// Backends.
    pub stores: Stores,
    keys: OnceCell<AccessKeys>,
}

impl Service {
    /// Reads the variables and prepares (but does not connect) the stores.
    pub fn from_spin() -> Result<Self, ApiError> {
        Ok(Self::new(Config::from_spin()?))
    }

    /// A service on `config`.
    pub fn new(config: Config) -> Self {
        let stores = Stores::open(&config);
        Self {
            config,
            stores,
            keys: OnceCell::new(),
        }
    }

    fn policy(&self) -> SessionPolicy {
        SessionPolicy {
            refresh_ttl: self.config.refresh_token_ttl,
            reuse_grace: self.config.refresh_reuse_grace,
            max_lifetime: self.config.session_max_lifetime,
        }
    }

    /// The access token keys: `jwt_key`, or on the embedded database
    /// without one, a key generated once and kept in that database.
    pub fn keys(&self) -> Result<&AccessKeys, ApiError> {
        if let Some(keys) = self.keys.get() {
            return Ok(keys);
        }
        let secret = match &self.config.jwt_key {
            Some(key) => key.to_vec(),
            None => self.generated_key()?,
        };
        let keys = AccessKeys::new(
            &secret,
            &self.config.issuer,
            &self.config.audience,
            self.config.token_leeway,
        )
        .with_previous(self.config.jwt_previous_key.as_deref().map(Vec::as_slice));
        Ok(self.keys.get_or_init(|| keys))
    }

    /// The embedded setup's signing key. Config only allows this without a
    /// `database_url`, so it lives beside the data it protects.
    fn generated_key(&self) -> Result<Vec<u8>, ApiError> {
        let database = &self.stores.database;
        let stored = match database.setting(GENERATED_KEY_SETTING)? {
            Some(stored) => stored,
            None => {
                let fresh = URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>());
                let stored = database.setting_or_insert(GENERATED_KEY_SETTING, &fresh)?;
                if stored == fresh {
                    eprintln!(
                        "warning: jwt_key is not set; generated a signing key and stored it in the \
                         embedded database. Set jwt_key (32+ bytes) in production."
                    );
                }
                stored
            }
        };
        URL_SAFE_NO_PAD
            .decode(stored)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored signing key: {e}")))
    }

    fn audit(&self, event: &str, request: &Request, who: Who<'_>, detail: Option<&str>) {
        let user_agent = user_agent(request);
        let ip = request.client_ip(&self.config.trusted_proxies);
        let recorded = self.stores.database.record(&AuditEvent {
            event,
            user_id: who.user_id,
            session_id: who.session_id,
            ip: &ip,
            user_agent: &user_agent,
            detail,
            at: clock::now(),
        });
        // The audit trail must not turn a working request into a failure;
        // losing an event is logged instead.
        if let Err(error) = recorded {
            eprintln!("cannot record audit event {event}: {error:?}");
        }
    }
}

/// Whom an audit event is about.
#[derive(Default, Clone, Copy)]
struct Who<'a> {
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
}

impl<'a> Who<'a> {
    /// A user in one of their sessions.
    fn session(user_id: &'a str, session_id: &'a str) -> Self {
        Self {
            user_id: Some(user_id),
            session_id: Some(session_id),
        }
    }
}

fn user_agent(request: &Request) -> String {
    request
        .header("user-agent")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect()
}

/// A counter key that does not store the email in the clear.
fn account_key(email: &str, address: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    format!("{}|{address}", hex::encode(&digest[..16]))
}

/// The address throttling counts by: an IPv4 address, or the /64 an IPv6
/// address is in (one client usually holds a whole /64, and counting each
/// address apart would let it step around every limit).
fn throttle_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        _ => ip.to_owned(),
    }
}

/// A password check that throttling let through. A failure needs nothing
/// more (the attempt is already counted); a success is settled with
/// [`Attempt::succeeded`]. See [`crate::throttle`] for the rules.
struct Attempt<'a> {
    service: &'a Service,
    account: String,
    address: Option<String>,
}

impl<'a> Attempt<'a> {
    /// Counts the attempt against the account (and the address, for
    /// logins) and refuses it with 429 when a limit or back-off is in force.
    fn begin(
        service: &'a Service,
        account: String,
        address: Option<String>,
    ) -> Result<Self, ApiError> {
        let counters = service.stores.counters();
        let now = clock::now_millis();
        if let Some(address) = &address {
            let (count, left) = counters.hit(address, throttle::LOGIN_WINDOW, now)?;
            if let Some(retry_after) =
                throttle::exhausted(count, service.config.login_failures_per_ip + 1, left)
            {
                return Err(ApiError::RateLimited { retry_after });
            }
        }
        let free = service.config.login_failures_per_account;
        let (count, _) = counters.hit(
            &format!("login-account:{account}"),
            throttle::LOGIN_WINDOW,
            now,
        )?;
        if count >= free {
            // From the last free attempt on, each attempt claims the current
            // back-off period (success lifts it): only the first claimant
            // goes ahead, any other waits. The last free attempt claims it
            // before its check, as if it had already failed, so parallel
            // guesses get no further than serial ones.
            let (claims, left) = counters.hit(
                &format!("login-block:{account}"),
                throttle::backoff(count.max(free + 1) - 1, free),
                now,
            )?;
            if claims > 1 {
                return Err(ApiError::RateLimited {
                    retry_after: left.max(1),
                });
            }
        }
        Ok(Self {
            service,
            account,
            address,
        })
    }

    /// The password was right: the account starts afresh, and the attempt
    /// does not count against the address.
    fn succeeded(self) -> Result<(), ApiError> {
        let counters = self.service.stores.counters();
        counters.clear(&format!("login-account:{}", self.account))?;
        counters.clear(&format!("login-block:{}", self.account))?;
        if let Some(address) = &self.address {
            counters.forgive(address)?;
        }
        Ok(())
    }
}

fn refresh_cookie(token: &RefreshToken, max_age: u64) -> String {
    format!(
        "{REFRESH_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path={REFRESH_COOKIE_PATH}; Max-Age={max_age}",
        token.expose()
    )
}

fn cleared_cookie() -> String {
    format!(
        "{REFRESH_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path={REFRESH_COOKIE_PATH}; Max-Age=0"
    )
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// A first or last name: at most 100 characters, no control characters
/// (the OpenAPI document states the same); stored trimmed, and an empty
/// name is no name.
fn optional_name(fields: &mut JsonFields, name: &str) -> Option<String> {
    let value = fields.optional_string(name)?;
    if value.chars().count() > MAX_NAME {
        fields.reject(FieldError::new(name, "must be at most 100 characters"));
        return None;
    }
    if value.chars().any(char::is_control) {
        fields.reject(FieldError::new(name, "must not contain control characters"));
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// `POST /auth/register`: creates an account.
pub fn register(service: &Service, request: &Request) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let email_input = fields.string("email");
    let password_input = fields.string("password");
    let first_name = optional_name(&mut fields, "first_name");
    let last_name = optional_name(&mut fields, "last_name");
    let email = email_input
        .as_deref()
        .and_then(|input| match Email::parse(input) {
            Ok(email) => Some(email),
            Err(reason) => {
                fields.reject(FieldError::new("email", reason));
                None
            }
        });
    let context: Vec<&str> = [
        email.as_ref().map(Email::as_str),
        first_name.as_deref(),
        last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let password =
        password_input
            .as_deref()
            .and_then(|input| match Password::parse(input, &context) {
                Ok(password) => Some(password),
                Err(reason) => {
                    fields.reject(FieldError::new("password", reason));
                    None
                }
            });
    fields.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validation passed without values"
        )));
    };

    // Every attempt that gets this far counts, taken or not: it is also
    // how one would probe which emails have accounts.
    let ip = request.client_ip(&service.config.trusted_proxies);
    let now = clock::now();
    let (count, window_left) = service.stores.counters().hit(
        &format!("register:{}", throttle_address(&ip)),
        throttle::REGISTRATION_WINDOW,
        clock::now_millis(),
    )?;
    if let Some(retry_after) =
        throttle::exhausted(count, service.config.registrations_per_ip + 1, window_left)
    {
        return Err(ApiError::RateLimited { retry_after });
    }

    let hash = hash_password(&password)?;
    let id = crate::random::uuid().to_string();
    let created = service.stores.database.insert_user(&NewUser {
        id: &id,
        email: &email,
        password_hash: &hash,
        first_name: first_name.as_deref(),
        last_name: last_name.as_deref(),
        created_at: now,
    })?;
    if !created {
        return Err(ApiError::Conflict("email_taken"));
    }
    let user = crate::domain::User {
        id: id.clone(),
        email: email.clone(),
        first_name,
        last_name,
        created_at: now,
    };
    service.audit(
        "register",
        request,
        Who {
            user_id: Some(&id),
            session_id: None,
        },
        None,
    );
    let roles = roles_for(&email, &service.config.admin_emails);
    Ok(
        Response::json(201, &UserBody::new(&user, role_names(&roles)))
            .header("location", "/auth/me"),
    )
}

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
pub fn login(service: &Service, request: &Request) -> Result<Response, ApiError> {
    let (email_input, password_input) = credentials(request)?;
    let password = Password::for_login(&password_input)
        .map_err(|reason| ApiError::invalid("password", reason))?;
    // The same canonical form as registration's; an input that is no
    // address this service accepts cannot name an account, but still
    // takes the same steps.
    let email = Email::parse(&email_input).ok();
    let account = match &email {
        Some(email) => email.as_str().to_owned(),
        None => email_input.trim().to_ascii_lowercase(),
    };
    let ip = request.client_ip(&service.config.trusted_proxies);
    let now = clock::now();
    // Throttled attempts are refused before any hashing: that is the
    // point of throttling. The attempt is counted now, not after the
    // check, so that parallel guesses cannot all slip under the limit.
    let address = throttle_address(&ip);
    let attempt = Attempt::begin(
        service,
        account_key(&account, &address),
        Some(format!("login-ip:{address}")),
    )?;

    // Unknown and known emails take the same steps and the same time.
    let found = match &email {
        Some(email) => service.stores.database.user_by_email(email)?,
        None => None,
    };
    let verified = match &found {
        Some((_, stored)) => verify_password(&password, &stored.hash),
        None => {
            verify_against_dummy(&password);
            crate::password::Verification {
                matches: false,
                needs_rehash: false,
            }
        }
    };
    let Some((user, checked)) = found.filter(|_| verified.matches) else {
        service.audit("login_failed", request, Who::default(), None);
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded()?;

    if verified.needs_rehash {
        // Best effort: the login stands even if the upgrade cannot be saved.
        let upgraded = hash_password(&password)
            .map_err(ApiError::from)
            .and_then(|hash| {
                Ok(service
                    .stores
                    .database
                    .upgrade_password_hash(&user.id, &checked, &hash)?)
            });
        if let Err(error) = upgraded {
            eprintln!("cannot upgrade a password hash: {error}");
        }
    }

    let roles = roles_for(&user.email, &service.config.admin_emails);
    let session_id = crate::random::uuid().to_string();
    let token = RefreshToken::generate();
    let user_agent = user_agent(request);
    let sessions = service.stores.sessions();
    sessions.create_session(
        &NewSession {
            id: &session_id,
            user_id: &user.id,
            roles: &role_names(&roles).join(","),
            created_at: now,
            user_agent: &user_agent,
            ip: &ip,
        },
        &token.digest(),
        &service.policy(),
    )?;
    // A password change that overtook this login (after the old password
    // was checked, before the session existed) revoked every session but
    // could not see this one: the session ends here instead. A change after
    // this read revokes it itself.
    let current = service.stores.database.credentials(&user.id)?;
    if current.as_ref().map(|c| c.version) != Some(checked.version) {
        sessions.revoke_session(&user.id, &session_id)?;
        service.audit(
            "login_failed",
            request,
            Who::session(&user.id, &session_id),
            Some("the password changed while the login was checked"),
        );
        return Err(ApiError::InvalidCredentials);
    }
    let access_token = service.keys()?.mint(
        &user.id,
        &session_id,
        &roles,
        service.config.access_token_ttl,
    )?;
    service.audit(
        "login_succeeded",
        request,
        Who::session(&user.id, &session_id),
        None,
    );
    let body = TokenBody {
        access_token,
        token_type: "bearer",
        expires_in: service.config.access_token_ttl,
        refresh_token: None,
        user: Some(UserBody::new(&user, role_names(&roles))),
    };
    Ok(Response::json(200, &body)
        .header(
            "set-cookie",
            &refresh_cookie(&token, service.config.refresh_token_ttl),
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
pub fn refresh(service: &Service, request: &Request) -> Result<Response, ApiError> {
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
    let roles = roles_for(&user.email, &service.config.admin_emails);
    let access_token = service.keys()?.mint(
        &user_id,
        &session_id,
        &roles,
        service.config.access_token_ttl,
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
        expires_in: service.config.access_token_ttl,
        refresh_token: in_body.then(|| current.expose().to_owned()),
        user: None,
    };
    Ok(Response::json(200, &body)
        .header(
            "set-cookie",
            &refresh_cookie(&current, service.config.refresh_token_ttl),
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
pub fn logout(service: &Service, request: &Request) -> Result<Response, ApiError> {
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
                .is_some_and(|at| now - at > service.config.refresh_reuse_grace as i64) =>
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

/// Checks the Bearer token and that its session is live (so a logout
/// takes effect at once, not when the token expires).
pub fn authenticate(service: &Service, request: &Request) -> Result<AccessClaims, ApiError> {
    let token = request.bearer_token()?;
    let claims = service
        .keys()?
        .verify(token)
        .map_err(|rejection| match rejection {
            TokenRejection::Expired => ApiError::TokenExpired,
            TokenRejection::Invalid(why) => ApiError::InvalidToken(why),
        })?;
    if !service
        .stores
        .sessions()
        .is_live(&claims.session_id, clock::now())?
    {
        return Err(ApiError::InvalidToken("the session has ended"));
    }
    Ok(claims)
}

/// `GET /auth/me`.
pub fn me(service: &Service, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let user = service
        .stores
        .database
        .user_by_id(&claims.user_id)?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    Ok(Response::json(200, &UserBody::new(&user, claims.roles)))
}

/// `GET /auth/sessions`.
pub fn list_sessions(service: &Service, request: &Request) -> Result<Response, ApiError> {
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
    service: &Service,
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
pub fn change_password(service: &Service, request: &Request) -> Result<Response, ApiError> {
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
    let attempt = Attempt::begin(service, format!("password:{}", user.id), None)?;
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
pub fn health(service: &Service) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document states the name rule as a pattern; the two
    /// must accept the same names.
    #[test]
    fn the_documented_name_pattern_accepts_exactly_what_registration_accepts() {
        let document: serde_json::Value = serde_json::from_str(crate::docs::OPENAPI_JSON).unwrap();
        let schema =
            &document["components"]["schemas"]["RegisterRequest"]["properties"]["first_name"];
        let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        for name in [
            "Ada",
            "",
            "  ",
            "Zoë",
            "tab\there",
            "nul\u{0}",
            "del\u{7f}",
            "c1\u{85}",
            "\u{a0}",
        ] {
            let mut fields = JsonFields::parse(
                serde_json::json!({ "first_name": name })
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            optional_name(&mut fields, "first_name");
            assert_eq!(pattern.is_match(name), fields.finish().is_ok(), "{name:?}");
        }
    }
}
