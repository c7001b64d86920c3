//! One error type for the whole service. Each variant is either the
//! caller's fault (4xx, with a stable `code` the client can match) or ours
//! (503 when a store is down, 500 otherwise); [`ApiError::status`] and
//! [`ApiError::code`] decide, and [`crate::problem`] renders it.
//!
//! The client sees `title` and a safe `detail`; the cause chain of a 5xx
//! goes to the component's log only.

use std::fmt;

use crate::config::ConfigError;
pub use crate::store::Store;
use crate::store::StoreError;

/// A field that failed validation, reported in a 422.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The request field, such as `email`.
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    /// `field`: `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not what the route reads (not JSON, wrong shape).
    MalformedBody(String),
    /// 400: a header the route needs is unusable (what is wrong with it).
    BadRequest(&'static str),
    /// 422: the body is well-formed but its values are not acceptable.
    Validation(Vec<FieldError>),
    /// 401: unknown email or wrong password, indistinguishably.
    InvalidCredentials,
    /// 401: the refresh token is unknown, expired or revoked.
    InvalidRefreshToken,
    /// 401: a retired refresh token came back after the grace window; the
    /// session was revoked.
    RefreshTokenReused,
    /// 401: a Bearer route was called without a token.
    MissingToken,
    /// 401: the Bearer token is not acceptable; the text says why.
    InvalidToken(&'static str),
    /// 401: the Bearer token has expired.
    TokenExpired,
    /// 403: authenticated, but the role is missing.
    Forbidden,
    /// 403: the password is right, but the address must be verified first.
    EmailNotVerified,
    /// 403 `account_disabled`: the password is right, but an admin
    /// disabled the account.
    AccountDisabled,
    /// 403 `mfa_required`: the password is right, and the account needs a
    /// second factor; the problem carries the `mfa_token` to present it
    /// with at `POST /auth/mfa/verify`.
    MfaRequired(crate::totp::MfaToken),
    /// 401 `invalid_mfa_code`: the TOTP or recovery code is wrong or
    /// already used.
    InvalidMfaCode,
    /// 401 `invalid_mfa_token`: the `mfa_token` is unknown, used or
    /// expired.
    InvalidMfaToken,
    /// 400 `invalid_token`: an email link's token is unknown, used or too
    /// old.
    InvalidLink,
    /// 404 with a code: `not_found` or `session_not_found`.
    NotFound(&'static str),
    /// 405, with the methods the path does serve.
    MethodNotAllowed(Vec<&'static str>),
    /// 409 with a code: `email_taken`, `slug_taken`.
    Conflict(&'static str),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the content type is not one the route reads.
    UnsupportedMediaType(&'static str),
    /// 415: the body came in a content coding (`gzip`, say); bodies are
    /// read only as sent.
    ContentCoding,
    /// 429: throttled; retry after this many seconds.
    RateLimited { retry_after: u64 },
    /// 503: a backing store is unreachable.
    Unavailable(Store, String),
    /// 500 `misconfigured`: a variable is missing or does not parse.
    Misconfigured {
        variable: &'static str,
        reason: String,
    },
    /// 500: a bug.
    Internal(anyhow::Error),
}

/// Seconds a client should wait before retrying after a 503.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

impl ApiError {
    /// A 400 saying what is wrong with the body.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::MalformedBody(detail.into())
    }

    /// A 422 for one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedBody(_) | Self::BadRequest(_) => 400,
            Self::Validation(_) => 422,
            Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::MissingToken
            | Self::InvalidToken(_)
            | Self::TokenExpired
            | Self::InvalidMfaCode
            | Self::InvalidMfaToken => 401,
            Self::Forbidden
            | Self::EmailNotVerified
            | Self::AccountDisabled
            | Self::MfaRequired(_) => 403,
            Self::InvalidLink => 400,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType(_) | Self::ContentCoding => 415,
            Self::RateLimited { .. } => 429,
            Self::Unavailable(..) => 503,
            Self::Misconfigured { .. } | Self::Internal(_) => 500,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedBody(_) => "malformed_body",
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::Forbidden => "forbidden",
            Self::EmailNotVerified => "email_not_verified",
            Self::AccountDisabled => "account_disabled",
            Self::MfaRequired(_) => "mfa_required",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::InvalidMfaToken => "invalid_mfa_token",
            Self::InvalidLink => "invalid_token",
            Self::NotFound(code) | Self::Conflict(code) => code,
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) | Self::ContentCoding => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(..) => "service_unavailable",
            Self::Misconfigured { .. } => "misconfigured",
            Self::Internal(_) => "internal_error",
        }
    }

    /// A short, fixed summary of the problem type.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MalformedBody(_) => "Malformed request body",
            Self::BadRequest(_) => "Bad request",
            Self::Validation(_) => "Validation failed",
            Self::InvalidCredentials => "Invalid credentials",
            Self::InvalidRefreshToken => "Invalid refresh token",
            Self::RefreshTokenReused => "Refresh token reused",
            Self::MissingToken => "Authentication required",
            Self::InvalidToken(_) => "Invalid access token",
            Self::TokenExpired => "Access token expired",
            Self::Forbidden => "Forbidden",
            Self::EmailNotVerified => "Email not verified",
            Self::AccountDisabled => "Account disabled",
            Self::MfaRequired(_) => "Second factor required",
            Self::InvalidMfaCode => "Invalid code",
            Self::InvalidMfaToken => "Invalid MFA token",
            Self::InvalidLink => "Invalid link",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed(_) => "Method not allowed",
            Self::Conflict(_) => "Conflict",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType(_) | Self::ContentCoding => "Unsupported media type",
            Self::RateLimited { .. } => "Too many requests",
            Self::Unavailable(..) => "Service unavailable",
            Self::Misconfigured { .. } => "Service misconfigured",
            Self::Internal(_) => "Internal server error",
        }
    }

    /// What the client may read about this occurrence: never internal
    /// detail.
    pub fn detail(&self) -> String {
        match self {
            Self::MalformedBody(detail) => detail.clone(),
            Self::BadRequest(why) => format!("{why}."),
            Self::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => "Several fields are invalid.".to_owned(),
            },
            Self::InvalidCredentials => "The email or password is incorrect.".to_owned(),
            Self::InvalidRefreshToken => {
                "The refresh token is unknown, expired or revoked; log in again.".to_owned()
            }
            Self::RefreshTokenReused => {
                "This refresh token was already used; the session has been revoked. Log in again."
                    .to_owned()
            }
            Self::MissingToken => "This route needs a Bearer access token.".to_owned(),
            Self::InvalidToken(why) => format!("The access token is invalid: {why}."),
            Self::TokenExpired => "The access token has expired; refresh it.".to_owned(),
            Self::Forbidden => "Your roles do not allow this.".to_owned(),
            Self::AccountDisabled => {
                "An administrator disabled this account; it cannot sign in.".to_owned()
            }
            Self::EmailNotVerified => {
                "Verify your email address first: open the link we sent you.".to_owned()
            }
            Self::MfaRequired(_) => {
                "Enter a code from your authenticator app (or a recovery code) at \
                 POST /auth/mfa/verify with this mfa_token."
                    .to_owned()
            }
            Self::InvalidMfaCode => {
                "The code is wrong or was already used; wait for the next one.".to_owned()
            }
            Self::InvalidMfaToken => {
                "The mfa_token is unknown, used or expired; log in again.".to_owned()
            }
            Self::Conflict("mfa_already_enabled") => {
                "Two-factor sign-in is already on; turn it off first.".to_owned()
            }
            Self::Conflict("mfa_not_pending") => {
                "No enrolment is waiting for confirmation; start one first.".to_owned()
            }
            Self::InvalidLink => {
                "The link is unknown, already used or too old; ask for a new one.".to_owned()
            }
            Self::Conflict("already_verified") => {
                "This email address is already verified.".to_owned()
            }
            Self::NotFound("session_not_found") => "No such session.".to_owned(),
            Self::NotFound(_) => "The requested resource does not exist.".to_owned(),
            Self::MethodNotAllowed(allow) => {
                format!("This path accepts {}.", allow.join(", "))
            }
            Self::Conflict("email_taken") => {
                "An account with this email already exists.".to_owned()
            }
            Self::Conflict("slug_taken") => "A topic with this slug already exists.".to_owned(),
            Self::Conflict(_) => "The request conflicts with existing data.".to_owned(),
            Self::PayloadTooLarge => "The request body is larger than 64 KiB.".to_owned(),
            Self::ContentCoding => {
                "Send the body uncompressed, without a Content-Encoding.".to_owned()
            }
            Self::UnsupportedMediaType(expected) => format!("Send the body as {expected}."),
            Self::RateLimited { retry_after } => {
                format!("Too many attempts; retry in {retry_after} seconds.")
            }
            Self::Unavailable(Store::Database, _) => {
                "The database is unreachable; try again shortly.".to_owned()
            }
            Self::Unavailable(Store::Sessions, _) => {
                "The session store is unreachable; try again shortly.".to_owned()
            }
            Self::Unavailable(Store::Settings, _) => {
                "The service's settings cannot be read just now; try again shortly.".to_owned()
            }
            Self::Misconfigured { variable, reason } => {
                format!("The service variable `{variable}` {reason}.")
            }
            Self::Internal(_) => "An unexpected error occurred.".to_owned(),
        }
    }

    /// Seconds to wait before retrying, for 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Unavailable(..) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }

    /// Whether the operator should hear about this one.
    pub fn is_server_fault(&self) -> bool {
        self.status() >= 500
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal(error) => write!(f, "internal error: {error:#}"),
            Self::Unavailable(store, cause) => write!(f, "{store:?} unavailable: {cause}"),
            other => write!(f, "{} ({})", other.code(), other.detail()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::Internal(error)
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        if error.unreadable {
            return Self::Unavailable(
                Store::Settings,
                format!("`{}` {}", error.variable, error.reason),
            );
        }
        Self::Misconfigured {
            variable: error.variable,
            reason: error.reason,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(store, cause) => Self::Unavailable(store, cause),
            StoreError::Refused(variable) => Self::Misconfigured {
                variable,
                reason: "does not allow connecting to the configured server".to_owned(),
            },
            // Where a route has its own word for it (a login: the
            // credentials), it maps this itself; elsewhere the request's
            // token names an account that is no more.
            StoreError::Gone(_) => Self::InvalidToken("the account no longer exists"),
            StoreError::Other(error) => Self::Internal(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_has_a_4xx_status_and_a_snake_case_code() {
        let errors = [
            ApiError::malformed("x"),
            ApiError::BadRequest("the Host header is not a host name"),
            ApiError::invalid("email", "bad"),
            ApiError::InvalidCredentials,
            ApiError::InvalidRefreshToken,
            ApiError::RefreshTokenReused,
            ApiError::MissingToken,
            ApiError::InvalidToken("bad signature"),
            ApiError::TokenExpired,
            ApiError::Forbidden,
            ApiError::NotFound("not_found"),
            ApiError::MethodNotAllowed(vec!["GET"]),
            ApiError::Conflict("email_taken"),
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType("application/json"),
            ApiError::ContentCoding,
            ApiError::RateLimited { retry_after: 3 },
            ApiError::MfaRequired(crate::totp::MfaToken::generate()),
            ApiError::InvalidMfaCode,
            ApiError::InvalidMfaToken,
        ];
        for error in errors {
            assert!((400..500).contains(&error.status()), "{error}");
            assert!(
                error
                    .code()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                error.code()
            );
        }
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let error = ApiError::Internal(anyhow::anyhow!("SELECT secret FROM users"));
        assert!(!error.detail().contains("SELECT"));
        let error = ApiError::Unavailable(Store::Database, "postgres://u:p@db:5432".into());
        assert!(!error.detail().contains("postgres://"));
        assert_eq!(error.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
    }
}
