//! The only place that writes problem+json (RFC 9457), `WWW-Authenticate`
//! (RFC 6750), `Retry-After`, `Allow` and `Accept-Encoding`.

use serde_json::json;

use crate::error::ApiError;
use crate::http::Response;

/// The realm every Bearer challenge names.
pub const REALM: &str = "spin-auth";

/// The `type` URI of a problem code.
pub fn type_uri(code: &str) -> String {
    format!("urn:spin-auth:problem:{code}")
}

/// Renders `error` as the client sees it; a server fault is logged with
/// its cause chain first.
pub fn response(error: &ApiError) -> Response {
    if error.is_server_fault() {
        // Goes to the component's log (Spin's `.spin/logs`), never to the
        // client.
        eprintln!("{} {}: {error}", error.status(), error.code());
    }
    let mut body = json!({
        "type": type_uri(error.code()),
        "title": error.title(),
        "status": error.status(),
        "detail": error.detail(),
        "code": error.code(),
    });
    if let ApiError::Validation(errors) = error {
        body["errors"] = json!(errors);
    }
    if let ApiError::MfaRequired(token) = error {
        // An extension member (RFC 9457 section 3.2): what the client
        // presents with the second factor.
        body["mfa_token"] = json!(token.expose());
    }
    let mut response = Response::new(error.status())
        .header("content-type", "application/problem+json")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    if let Some(challenge) = www_authenticate(error) {
        response = response.header("www-authenticate", &challenge);
    }
    if let Some(seconds) = error.retry_after() {
        response = response.header("retry-after", &seconds.to_string());
    }
    if let ApiError::MethodNotAllowed(allow) = error {
        response = response.header("allow", &allow.join(", "));
    }
    if let ApiError::ContentCoding = error {
        // The codings the service reads (RFC 9110 section 12.5.3).
        response = response.header("accept-encoding", "identity");
    }
    response
}

/// RFC 7235 wants a challenge on every 401. RFC 6750 section 3: no `error`
/// attribute when the request simply had no token; `invalid_token` with a
/// description when the token was rejected.
fn www_authenticate(error: &ApiError) -> Option<String> {
    let rejected = |description: &str| {
        format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
        )
    };
    match error {
        ApiError::TokenExpired => Some(rejected("access token expired")),
        ApiError::InvalidToken(why) => Some(rejected(why)),
        _ if error.status() == 401 => Some(format!("Bearer realm=\"{REALM}\"")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn a_problem_has_the_rfc_9457_members_and_a_code() {
        let response = response(&ApiError::Conflict("email_taken"));
        assert_eq!(response.status, 409);
        assert_eq!(
            response.header_value("content-type"),
            Some("application/problem+json")
        );
        let body = parsed(&response);
        assert_eq!(body["status"], 409);
        assert_eq!(body["code"], "email_taken");
        assert_eq!(body["type"], "urn:spin-auth:problem:email_taken");
        assert!(body["title"].is_string() && body["detail"].is_string());
    }

    #[test]
    fn validation_problems_list_the_fields() {
        let body = parsed(&response(&ApiError::invalid(
            "email",
            "is not an email address",
        )));
        assert_eq!(body["errors"][0]["field"], "email");
    }

    #[test]
    fn a_missing_token_challenge_has_no_error_attribute() {
        let response = response(&ApiError::MissingToken);
        assert_eq!(
            response.header_value("www-authenticate"),
            Some("Bearer realm=\"spin-auth\"")
        );
    }

    #[test]
    fn an_expired_token_challenge_says_so() {
        let response = response(&ApiError::TokenExpired);
        assert_eq!(
            response.header_value("www-authenticate"),
            Some(
                "Bearer realm=\"spin-auth\", error=\"invalid_token\", error_description=\"access token expired\""
            )
        );
        assert_eq!(parsed(&response)["code"], "token_expired");
    }

    #[test]
    fn throttling_and_outages_say_when_to_retry() {
        let throttled = response(&ApiError::RateLimited { retry_after: 7 });
        assert_eq!(throttled.header_value("retry-after"), Some("7"));
        let down = response(&ApiError::Unavailable(
            crate::error::Store::Sessions,
            "x".into(),
        ));
        assert_eq!(down.status, 503);
        assert!(down.header_value("retry-after").is_some());
    }

    #[test]
    fn mfa_required_carries_the_token() {
        let token = crate::totp::MfaToken::generate();
        let text = token.expose().to_owned();
        let response = response(&ApiError::MfaRequired(token));
        assert_eq!(response.status, 403);
        let body = parsed(&response);
        assert_eq!(body["code"], "mfa_required");
        assert_eq!(body["mfa_token"], text);
    }

    #[test]
    fn method_not_allowed_lists_the_methods() {
        let response = response(&ApiError::MethodNotAllowed(vec!["GET", "POST"]));
        assert_eq!(response.header_value("allow"), Some("GET, POST"));
    }
}
