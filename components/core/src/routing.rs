//! Matching a request to a component's route table: `{name}` segments
//! capture one path segment; a path served with another method is a 405
//! that lists the methods it does serve (RFC 9110 section 15.5.6).
//!
//! Each route is written once, here, with the operation it names; a
//! component matches on the operation, so a route without a handler does
//! not compile, and the OpenAPI test reads the same table.

use crate::error::ApiError;

/// A route: method, path pattern (such as `/auth/sessions/{id}`) and the
/// operation it serves.
pub type Route<Op> = (&'static str, &'static str, Op);

/// The operations of the `auth` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOp {
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /auth/logout`.
    Logout,
    /// `GET /auth/me`.
    Me,
    /// `DELETE /auth/me`.
    DeleteMe,
    /// `GET /auth/sessions`.
    ListSessions,
    /// `DELETE /auth/sessions/{id}`.
    RevokeSession,
    /// `POST /auth/password`.
    ChangePassword,
    /// `POST /auth/verify-email/request`.
    RequestVerification,
    /// `POST /auth/verify-email`.
    VerifyEmail,
    /// `POST /auth/password/forgot`.
    ForgotPassword,
    /// `POST /auth/password/reset`.
    ResetPassword,
    /// `POST /auth/mfa/totp`.
    EnrolTotp,
    /// `POST /auth/mfa/totp/confirm`.
    ConfirmTotp,
    /// `DELETE /auth/mfa/totp`.
    DisableTotp,
    /// `POST /auth/mfa/verify`.
    VerifySecondFactor,
    /// `GET /health`.
    Health,
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `GET /.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /docs` and its assets.
    Docs,
}

/// What the `auth` component serves (besides the catch-all 404).
pub const AUTH_ROUTES: &[Route<AuthOp>] = &[
    ("POST", "/auth/register", AuthOp::Register),
    ("POST", "/auth/login", AuthOp::Login),
    ("POST", "/auth/refresh", AuthOp::Refresh),
    ("POST", "/auth/logout", AuthOp::Logout),
    ("GET", "/auth/me", AuthOp::Me),
    ("DELETE", "/auth/me", AuthOp::DeleteMe),
    ("GET", "/auth/sessions", AuthOp::ListSessions),
    ("DELETE", "/auth/sessions/{id}", AuthOp::RevokeSession),
    ("POST", "/auth/password", AuthOp::ChangePassword),
    (
        "POST",
        "/auth/verify-email/request",
        AuthOp::RequestVerification,
    ),
    ("POST", "/auth/verify-email", AuthOp::VerifyEmail),
    ("POST", "/auth/password/forgot", AuthOp::ForgotPassword),
    ("POST", "/auth/password/reset", AuthOp::ResetPassword),
    ("POST", "/auth/mfa/totp", AuthOp::EnrolTotp),
    ("POST", "/auth/mfa/totp/confirm", AuthOp::ConfirmTotp),
    ("DELETE", "/auth/mfa/totp", AuthOp::DisableTotp),
    ("POST", "/auth/mfa/verify", AuthOp::VerifySecondFactor),
    ("GET", "/health", AuthOp::Health),
    ("GET", "/.well-known/jwks.json", AuthOp::Jwks),
    (
        "GET",
        "/.well-known/openid-configuration",
        AuthOp::OpenIdConfiguration,
    ),
    ("GET", "/openapi.json", AuthOp::OpenApi),
    ("GET", "/docs", AuthOp::Docs),
    ("GET", "/docs/{file}", AuthOp::Docs),
];

/// The operations of the `questions` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionOp {
    /// `GET /questions/topics`.
    ListTopics,
    /// `POST /questions/topics`.
    CreateTopic,
    /// `GET /questions/topics/{slug}/questions`.
    ListQuestions,
    /// `POST /questions/topics/{slug}/questions`.
    CreateQuestion,
    /// `POST /questions/{id}/answer`.
    Answer,
}

/// What the `questions` component serves.
pub const QUESTION_ROUTES: &[Route<QuestionOp>] = &[
    ("GET", "/questions/topics", QuestionOp::ListTopics),
    ("POST", "/questions/topics", QuestionOp::CreateTopic),
    (
        "GET",
        "/questions/topics/{slug}/questions",
        QuestionOp::ListQuestions,
    ),
    (
        "POST",
        "/questions/topics/{slug}/questions",
        QuestionOp::CreateQuestion,
    ),
    ("POST", "/questions/{id}/answer", QuestionOp::Answer),
];

/// The operations of the `admin` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    /// `GET /admin/users`.
    ListUsers,
    /// `GET /admin/users/{id}`.
    GetUser,
    /// `PATCH /admin/users/{id}`.
    ChangeUser,
    /// `DELETE /admin/users/{id}`.
    DeleteUser,
    /// `GET /admin/audit`.
    ListAudit,
}

/// What the `admin` component serves.
pub const ADMIN_ROUTES: &[Route<AdminOp>] = &[
    ("GET", "/admin/users", AdminOp::ListUsers),
    ("GET", "/admin/users/{id}", AdminOp::GetUser),
    ("PATCH", "/admin/users/{id}", AdminOp::ChangeUser),
    ("DELETE", "/admin/users/{id}", AdminOp::DeleteUser),
    ("GET", "/admin/audit", AdminOp::ListAudit),
];

/// The matched route's operation and its captured segments, in order.
///
/// `HEAD` is served wherever `GET` is (RFC 9110 section 9.3.2: uptime
/// checks and `curl -I` use it), by the same operation, and the HTTP
/// server, Spin's as the local host's, sends its headers without the body.
/// `GET` routes change nothing a client sees (`/health` may deliver due
/// mail, the JWKS route may make the embedded default's key), so a `HEAD`
/// does no more than the `GET` would.
pub fn route<Op: Copy>(
    routes: &[Route<Op>],
    method: &str,
    path: &str,
) -> Result<(Op, Vec<String>), ApiError> {
    let mut allowed = Vec::new();
    for (route_method, pattern, operation) in routes {
        let Some(captures) = captures(pattern, path) else {
            continue;
        };
        if *route_method == method || (method == "HEAD" && *route_method == "GET") {
            return Ok((*operation, captures));
        }
        if !allowed.contains(route_method) {
            allowed.push(*route_method);
            if *route_method == "GET" {
                allowed.push("HEAD");
            }
        }
    }
    if allowed.is_empty() {
        Err(ApiError::NotFound("not_found"))
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

fn captures(pattern: &str, path: &str) -> Option<Vec<String>> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    let mut captured = Vec::new();
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(captured),
            (Some(expected), Some(actual)) => {
                if expected.starts_with('{') && expected.ends_with('}') {
                    if actual.is_empty() {
                        return None;
                    }
                    captured.push(percent_decode(actual));
                } else if expected != actual {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

fn percent_decode(segment: &str) -> String {
    let pairs = crate::http::form_pairs(format!("x={}", segment.replace('+', "%2B")).as_bytes());
    pairs
        .into_iter()
        .next()
        .map(|(_, value)| value)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Swagger UI's files under `/docs/` are not operations of the API.
    const UNDOCUMENTED: &[(&str, &str)] = &[("GET", "/docs/{file}")];

    #[test]
    fn the_openapi_document_lists_exactly_the_served_routes() {
        let document: serde_json::Value = serde_json::from_str(crate::docs::OPENAPI_JSON).unwrap();
        let mut documented: Vec<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = AUTH_ROUTES
            .iter()
            .map(|(method, path, _)| (*method, *path))
            .chain(
                QUESTION_ROUTES
                    .iter()
                    .map(|(method, path, _)| (*method, *path)),
            )
            .chain(
                ADMIN_ROUTES
                    .iter()
                    .map(|(method, path, _)| (*method, *path)),
            )
            .filter(|route| !UNDOCUMENTED.contains(route))
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    const ROUTES: &[Route<usize>] = &[
        ("GET", "/auth/sessions", 0),
        ("DELETE", "/auth/sessions/{id}", 1),
        ("POST", "/auth/login", 2),
    ];

    #[test]
    fn a_route_matches_and_captures() {
        assert_eq!(route(ROUTES, "GET", "/auth/sessions").unwrap(), (0, vec![]));
        assert_eq!(
            route(ROUTES, "DELETE", "/auth/sessions/a%20b").unwrap(),
            (1, vec!["a b".to_owned()])
        );
        assert_eq!(route(ROUTES, "POST", "/auth/login/").unwrap().0, 2);
    }

    #[test]
    fn a_wrong_method_lists_the_right_ones() {
        let Err(ApiError::MethodNotAllowed(allowed)) = route(ROUTES, "GET", "/auth/login") else {
            panic!("expected 405");
        };
        assert_eq!(allowed, vec!["POST"]);
        let Err(ApiError::MethodNotAllowed(allowed)) = route(ROUTES, "PUT", "/auth/sessions")
        else {
            panic!("expected 405");
        };
        assert_eq!(allowed, vec!["GET", "HEAD"]);
    }

    #[test]
    fn head_is_served_where_get_is() {
        assert_eq!(
            route(ROUTES, "HEAD", "/auth/sessions").unwrap(),
            (0, vec![])
        );
        assert!(matches!(
            route(ROUTES, "HEAD", "/auth/login"),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in ["/auth", "/auth/sessions/a/b", "/nope", "/auth/sessions/"] {
            let result = route(ROUTES, "DELETE", path);
            assert!(
                matches!(
                    result,
                    Err(ApiError::NotFound(_)) | Err(ApiError::MethodNotAllowed(_))
                ),
                "{path}"
            );
        }
        assert!(matches!(
            route(ROUTES, "GET", "/nope"),
            Err(ApiError::NotFound(_))
        ));
    }
}
