//! The JSON bodies the service sends, as the OpenAPI document describes
//! them. Field names here are the contract; renaming one breaks clients.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::domain::User;
use crate::store::{AuditRecord, SessionInfo};

/// A user, as `GET /auth/me` and registration return it. Never a hash.
#[derive(Debug, Serialize)]
pub struct UserBody {
    /// UUID.
    pub id: String,
    /// Canonical (lower-case) email.
    pub email: String,
    /// Given name or null.
    pub first_name: Option<String>,
    /// Family name or null.
    pub last_name: Option<String>,
    /// `["user"]` or `["user", "admin"]`.
    pub roles: Vec<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Whether the owner proved the address.
    pub email_verified: bool,
    /// Whether sign-in needs a second factor.
    pub mfa_enabled: bool,
}

impl UserBody {
    /// The body of `user` with `roles`.
    pub fn new(user: &User, roles: Vec<String>) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.as_str().to_owned(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            roles,
            created_at: rfc3339(user.created_at),
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
        }
    }
}

/// A login or refresh answer.
#[derive(Debug, Serialize)]
pub struct TokenBody {
    /// The access JWT.
    pub access_token: String,
    /// Always `bearer` (RFC 6749 section 7.1).
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token, only when the client sent its refresh token in
    /// the body (a client without a cookie jar); otherwise it travels only
    /// in the HttpOnly cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The user, on login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserBody>,
}

/// One session in `GET /auth/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionBody {
    /// The session id (the `sid` of its access tokens).
    pub id: String,
    /// Login time.
    pub created_at: String,
    /// Last refresh or login.
    pub last_used_at: String,
    /// `User-Agent` of the login.
    pub user_agent: String,
    /// Client IP of the login.
    pub ip: String,
    /// Whether the calling token belongs to this session.
    pub current: bool,
}

impl SessionBody {
    /// The body of `session`; `current` when it is the caller's.
    pub fn new(session: SessionInfo, current_session: &str) -> Self {
        Self {
            current: session.id == current_session,
            id: session.id,
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used_at),
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}

/// `GET /health`.
#[derive(Debug, Serialize)]
pub struct HealthBody {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Each store: `ok` or `unavailable`.
    pub checks: HealthChecks,
}

/// The stores `/health` checks.
#[derive(Debug, Serialize)]
pub struct HealthChecks {
    /// Users and questions.
    pub database: &'static str,
    /// Sessions and refresh tokens.
    pub sessions: &'static str,
}

/// A topic in `GET /questions/topics`.
#[derive(Debug, Serialize)]
pub struct TopicBody {
    /// UUID.
    pub id: String,
    /// URL name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description or null.
    pub description: Option<String>,
    /// Questions in the topic.
    pub question_count: i64,
    /// Questions of the topic the caller has answered.
    pub answered: i64,
    /// Of those, the ones whose latest answer is right.
    pub correct: i64,
}

/// A question as listed (without its answer).
#[derive(Debug, Serialize)]
pub struct QuestionBody {
    /// UUID.
    pub id: String,
    /// The question.
    pub prompt: String,
    /// The choices, in order.
    pub choices: Vec<String>,
}

/// A page of questions.
#[derive(Debug, Serialize)]
pub struct QuestionPage {
    /// The questions, oldest first.
    pub items: Vec<QuestionBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A question as created (with its answer), for admins.
#[derive(Debug, Serialize)]
pub struct CreatedQuestionBody {
    /// UUID.
    pub id: String,
    /// The question.
    pub prompt: String,
    /// The choices.
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub answer_index: i64,
}

/// The result of answering.
#[derive(Debug, Serialize)]
pub struct AnswerBody {
    /// Whether the answer was right.
    pub correct: bool,
    /// The right choice.
    pub answer_index: i64,
}

/// A user as the administration sees them.
#[derive(Debug, Serialize)]
pub struct AdminUserBody {
    /// What the user sees of themselves.
    #[serde(flatten)]
    pub user: UserBody,
    /// Whether an admin disabled the account.
    pub disabled: bool,
    /// The last successful login (RFC 3339 UTC), or null.
    pub last_login_at: Option<String>,
}

impl AdminUserBody {
    /// The body of `user` with the roles in force.
    pub fn new(user: &User, roles: Vec<String>) -> Self {
        Self {
            user: UserBody::new(user, roles),
            disabled: user.disabled,
            last_login_at: user.last_login_at.map(rfc3339),
        }
    }
}

/// An audited event.
#[derive(Debug, Serialize)]
pub struct AuditEventBody {
    /// A UUID that carries its place in the trail ([`audit_event_id`]).
    pub id: String,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// What happened: `login_succeeded`, `admin_user_updated`, ...
    pub event: String,
    /// Whose account, or null.
    pub user_id: Option<String>,
    /// Which session, or null.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip: String,
    /// Client `User-Agent`.
    pub user_agent: String,
    /// Free text, or null.
    pub detail: Option<String>,
}

impl From<AuditRecord> for AuditEventBody {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: audit_event_id(record.id),
            at: rfc3339(record.at),
            event: record.event,
            user_id: record.user_id,
            session_id: record.session_id,
            ip: record.ip,
            user_agent: record.user_agent,
            detail: record.detail,
        }
    }
}

/// The contract's ids are UUIDs. An audit event's is a version 8 UUID
/// (RFC 9562 section 5.8, the layout left to the implementation) holding
/// its place in the trail, big-endian in the last eight bytes: unique, and
/// later events sort after earlier ones as strings too.
pub fn audit_event_id(place: i64) -> String {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&place.to_be_bytes());
    // new_v8 sets the variant's two bits, which a place below 2^62 leaves
    // clear.
    uuid::Uuid::new_v8(bytes).hyphenated().to_string()
}

/// The place in the trail an id of [`audit_event_id`] holds; `None` for
/// any other text, UUIDs of other layouts included.
pub fn audit_event_place(id: &str) -> Option<i64> {
    let bytes = *uuid::Uuid::try_parse(id).ok()?.as_bytes();
    let mut place = [0u8; 8];
    place.copy_from_slice(&bytes[8..]);
    place[0] &= 0x3f;
    let place = i64::from_be_bytes(place);
    (audit_event_id(place) == id.to_ascii_lowercase()).then_some(place)
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{audit_event_id, audit_event_place};

    #[test]
    fn audit_event_ids_are_uuids_in_the_trails_order() {
        assert_eq!(audit_event_id(42), "00000000-0000-8000-8000-00000000002a");
        let places = [1, 9, 10, 255, 256, 1 << 40, (1 << 62) - 1];
        let ids: Vec<String> = places.iter().map(|&place| audit_event_id(place)).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 8, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        for (place, id) in places.iter().zip(&ids) {
            assert_eq!(audit_event_place(id), Some(*place));
            assert_eq!(audit_event_place(&id.to_uppercase()), Some(*place));
        }
        for other in [
            "",
            "42",
            "not-a-cursor",
            "3f1c2b1e-8a4d-4c3e-9b2a-1d2e3f4a5b6c",
            "00000000-0000-8000-c000-00000000002a",
            "00000001-0000-8000-8000-00000000002a",
        ] {
            assert_eq!(audit_event_place(other), None, "{other}");
        }
    }
}
