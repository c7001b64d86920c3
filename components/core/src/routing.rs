//! Matching a request to a component's route table: `{name}` segments
//! capture one path segment; a path served with another method is a 405
//! that lists the methods it does serve (RFC 9110 section 15.5.6).

use crate::error::ApiError;

/// A route: method and path pattern, such as `("DELETE", "/auth/sessions/{id}")`.
pub type Route = (&'static str, &'static str);

/// What the `auth` component serves (besides the catch-all 404).
pub const AUTH_ROUTES: &[Route] = &[
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/me"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions/{id}"),
    ("POST", "/auth/password"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{file}"),
];

/// What the `questions` component serves.
pub const QUESTION_ROUTES: &[Route] = &[
    ("GET", "/questions/topics"),
    ("POST", "/questions/topics"),
    ("GET", "/questions/topics/{slug}/questions"),
    ("POST", "/questions/topics/{slug}/questions"),
    ("POST", "/questions/{id}/answer"),
];

/// The matched route's index and its captured segments, in order.
pub fn route(routes: &[Route], method: &str, path: &str) -> Result<(usize, Vec<String>), ApiError> {
    let mut allowed = Vec::new();
    for (index, (route_method, pattern)) in routes.iter().enumerate() {
        let Some(captures) = captures(pattern, path) else {
            continue;
        };
        if *route_method == method {
            return Ok((index, captures));
        }
        if !allowed.contains(route_method) {
            allowed.push(*route_method);
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
    const UNDOCUMENTED: &[Route] = &[("GET", "/docs/{file}")];

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
            .chain(QUESTION_ROUTES)
            .filter(|route| !UNDOCUMENTED.contains(route))
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    const ROUTES: &[Route] = &[
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{id}"),
        ("POST", "/auth/login"),
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
