//! The `admin` component's HTTP layer: query and body to command, outcome
//! to JSON or problem+json. Every handler first checks that the caller is
//! an active admin.

use std::ops::Deref;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Actor, require_admin};
use crate::api_types::{AdminUserBody, AuditEventBody, Page, audit_event_id, audit_event_place};
use crate::auth::AuthStores;
use crate::auth::login::Client;
use crate::clock;
use crate::config::{AdminSettings, Config};
use crate::domain::{Role, User, parse_id, roles_for};
use crate::error::{ApiError, FieldError};
use crate::http::{Request, Response};
use crate::service::{Service, authenticate};
use crate::store::{AuditQuery, UserChange};

/// Page size when the client names none, and the most it may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 100;
/// Longest email prefix, event name or cursor worth looking up.
const MAX_FILTER: usize = 320;
/// A user listing's cursor: the longest email (254 bytes) in base64.
const MAX_USER_CURSOR: usize = 340;

/// The `admin` component's service: what every component has, and the
/// settings only this one reads.
pub struct AdminService {
    service: Service,
    settings: AdminSettings,
}

impl Deref for AdminService {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

impl AdminService {
    /// Reads the variables and prepares (but does not connect) the stores.
    pub fn from_spin() -> Result<Self, ApiError> {
        Ok(Self {
            service: Service::new(Config::from_spin()?),
            settings: AdminSettings::from_spin()?,
        })
    }

    fn stores(&self) -> AuthStores<'_> {
        AuthStores::of(&self.stores)
    }

    fn body(&self, user: &User) -> AdminUserBody {
        let roles = roles_for(user, &self.settings.admin_emails);
        AdminUserBody::new(user, roles.iter().map(|r| r.as_str().to_owned()).collect())
    }
}

/// The caller, checked: a live access token of an active admin.
struct Caller {
    admin_id: String,
    session_id: String,
    ip: String,
    user_agent: String,
}

impl Caller {
    fn of(service: &AdminService, request: &Request) -> Result<Self, ApiError> {
        let claims = authenticate(service, request)?;
        require_admin(
            service.stores(),
            &service.settings.admin_emails,
            &claims.user_id,
        )?;
        Ok(Self {
            admin_id: claims.user_id,
            session_id: claims.session_id,
            ip: request.client_ip(&service.settings.trusted_proxies),
            user_agent: request.user_agent(),
        })
    }

    fn actor(&self) -> Actor<'_> {
        Actor {
            admin_id: &self.admin_id,
            session_id: &self.session_id,
            client: Client {
                ip: &self.ip,
                user_agent: &self.user_agent,
            },
        }
    }
}

/// `limit`: 1 to 100, 50 when absent.
fn limit(request: &Request) -> Result<usize, ApiError> {
    match request.query_param("limit")? {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "must be a whole number from 1 to 100")),
    }
}

/// A query parameter that goes to the database: bounded, and free of
/// control characters (PostgreSQL refuses NUL in text); empty is absent.
fn filter(request: &Request, name: &str) -> Result<Option<String>, ApiError> {
    match request.query_param(name)? {
        Some(text) if text.chars().count() > MAX_FILTER || text.chars().any(char::is_control) => {
            Err(ApiError::invalid(
                name,
                "is too long or holds control characters",
            ))
        }
        Some(text) if text.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A user listing's cursor: the last email of the previous page, in
/// URL-safe base64 without padding, so that a client may append it to a
/// query string as it is (`+` and `&` are common in addresses). Decoding
/// allows trailing bits: whatever text a well-formed cursor decodes to is
/// a place in the order to go on from, so every cursor the OpenAPI
/// document's pattern allows is served.
const USER_CURSOR: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// The place a user listing's `cursor` names, if any; only a cursor that
/// is no base64 at all is refused.
fn user_cursor(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(cursor) = request.query_param("cursor")?.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if cursor.len() > MAX_USER_CURSOR {
        return Err(invalid_cursor());
    }
    let bytes = USER_CURSOR.decode(cursor).map_err(|_| invalid_cursor())?;
    // PostgreSQL's text holds no NUL; no address has one.
    Ok(Some(
        String::from_utf8_lossy(&bytes).replace('\0', "\u{fffd}"),
    ))
}

fn invalid_cursor() -> ApiError {
    ApiError::invalid("cursor", "is not a cursor of this listing")
}

/// `GET /admin/users?query=&limit=&cursor=`: users in email order; `query`
/// is a prefix of the email, compared case-insensitively.
pub fn list_users(service: &AdminService, request: &Request) -> Result<Response, ApiError> {
    Caller::of(service, request)?;
    let prefix = filter(request, "query")?
        .map(|query| query.trim().to_lowercase())
        .unwrap_or_default();
    let limit = limit(request)?;
    let after = user_cursor(request)?;
    let (users, more) = super::list_users(service.stores(), &prefix, after.as_deref(), limit)?;
    let next_cursor = users
        .last()
        .filter(|_| more)
        .map(|user| USER_CURSOR.encode(user.email.as_str()));
    let items = users.iter().map(|user| service.body(user)).collect();
    Ok(Response::json(200, &Page { items, next_cursor }))
}

/// The id in a path, or 404: a string that is not a UUID names no one.
fn user_id(id: &str) -> Result<String, ApiError> {
    parse_id(id).ok_or(ApiError::NotFound("not_found"))
}

/// A UUID in the hyphenated form ids are given out in (any case), as the
/// OpenAPI document's pattern says; other UUID spellings are not ids here.
fn parse_hyphenated_id(text: &str) -> Option<String> {
    (text.len() == 36).then(|| parse_id(text)).flatten()
}

/// `GET /admin/users/{id}`.
pub fn get_user(service: &AdminService, request: &Request, id: &str) -> Result<Response, ApiError> {
    Caller::of(service, request)?;
    let user = service
        .stores()
        .users
        .user_by_id(&user_id(id)?)?
        .ok_or(ApiError::NotFound("not_found"))?;
    Ok(Response::json(200, &service.body(&user)))
}

/// `PATCH /admin/users/{id}` with `{roles?, disabled?}`.
pub fn change_user(
    service: &AdminService,
    request: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(service, request)?;
    // Every field is optional, so no body at all is not read as `{}`: a
    // PATCH that sends nothing is a mistake, not a change of nothing.
    if request.body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "is required: a JSON object with roles, disabled or both",
        ));
    }
    let mut fields = request.json_object()?;
    let mut change = UserChange {
        roles: None,
        disabled: fields.optional_bool("disabled"),
    };
    if fields.has("roles") {
        let names = fields.strings("roles").unwrap_or_default();
        let unknown: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| Role::parse(name).is_none())
            .collect();
        if unknown.is_empty() {
            change.roles = Some(names.iter().filter_map(|name| Role::parse(name)).collect());
        } else {
            let known: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
            fields.reject(FieldError::new(
                "roles",
                format!(
                    "has unknown roles ({}); roles are {}",
                    unknown.join(", "),
                    known.join(", ")
                ),
            ));
        }
    }
    fields.finish()?;
    let id = user_id(id)?;
    let user = super::change_user(
        service.stores(),
        &service.settings.admin_emails,
        caller.actor(),
        &id,
        &change,
        clock::now(),
    )?;
    Ok(Response::json(200, &service.body(&user)))
}

/// `DELETE /admin/users/{id}`.
pub fn delete_user(
    service: &AdminService,
    request: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::of(service, request)?;
    super::delete_user(
        service.stores(),
        &service.settings.admin_emails,
        caller.actor(),
        &user_id(id)?,
        clock::now(),
    )?;
    Ok(Response::new(204))
}

/// `GET /admin/audit?user_id=&event=&limit=&cursor=`: newest first; the
/// cursor is the id of the page's last event (which holds its place in
/// the trail), so events recorded while paging never shift a page.
pub fn list_audit(service: &AdminService, request: &Request) -> Result<Response, ApiError> {
    Caller::of(service, request)?;
    // An id that is no one's matches nothing; text that is no id is 422.
    let user_id = match filter(request, "user_id")? {
        Some(text) => Some(parse_hyphenated_id(&text).ok_or_else(|| {
            ApiError::invalid("user_id", "must be a user's id (a hyphenated UUID)")
        })?),
        None => None,
    };
    let event = filter(request, "event")?;
    let limit = limit(request)?;
    let before = match filter(request, "cursor")? {
        Some(cursor) => Some(audit_event_place(&cursor).ok_or_else(invalid_cursor)?),
        None => None,
    };
    let query = AuditQuery {
        user_id: user_id.as_deref(),
        event: event.as_deref(),
        before,
        limit,
    };
    let (events, more) = super::list_audit(service.stores(), &query)?;
    let next_cursor = events
        .last()
        .filter(|_| more)
        .map(|event| audit_event_id(event.id));
    let items: Vec<AuditEventBody> = events.into_iter().map(AuditEventBody::from).collect();
    Ok(Response::json(200, &Page { items, next_cursor }))
}
