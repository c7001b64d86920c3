//! HTTP routing as Spin does it.
//!
//! A route is a path pattern: literal segments, `:name` segments that match
//! any one segment, and an optional trailing `/...` that matches the rest of
//! the path (including nothing). When several routes match, the most
//! specific wins, comparing segment by segment: a literal beats a `:name`,
//! which beats the wildcard, and a route that ends beats one that goes on
//! with a wildcard. Routes of equal rank keep manifest order (the first
//! wins); a route written twice is served by its last entry, and the
//! earlier one is reported as never used, as Spin does.

use std::collections::HashMap;

use anyhow::bail;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route such as `/auth/...` or `/users/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePattern {
    segments: Vec<Segment>,
    wildcard: bool,
}

impl RoutePattern {
    /// Parses a route as written in `[[trigger.http]] route`.
    pub fn parse(route: &str) -> anyhow::Result<Self> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with `/`");
        }
        let (path, wildcard) = match route.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None if route.ends_with("...") => {
                bail!("route {route:?}: `...` is only allowed as a whole last segment")
            }
            None => (route, false),
        };
        let mut segments = Vec::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(name) = segment.strip_prefix(':') {
                if name.is_empty() {
                    bail!("route {route:?}: a `:` segment needs a name");
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if segment.contains("...") {
                bail!("route {route:?}: `...` is only allowed as a whole last segment");
            } else {
                segments.push(Segment::Literal(segment.to_owned()));
            }
        }
        Ok(Self { segments, wildcard })
    }

    /// The route without its wildcard, as Spin reports it in
    /// `spin-component-route`: `/auth/...` gives `/auth`, `/...` gives ``.
    pub fn component_route(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => format!("/{text}"),
                Segment::Param(name) => format!("/:{name}"),
            })
            .collect()
    }

    /// Sort key: larger is more specific.
    fn specificity(&self) -> Vec<u8> {
        const LITERAL: u8 = 3;
        const PARAM: u8 = 2;
        const END: u8 = 1;
        const WILDCARD: u8 = 0;
        let mut key: Vec<u8> = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => LITERAL,
                Segment::Param(_) => PARAM,
            })
            .collect();
        key.push(if self.wildcard { WILDCARD } else { END });
        key
    }

    fn matches(&self, path: &str) -> Option<RouteMatch> {
        let mut rest = path;
        let mut params = HashMap::new();
        for segment in &self.segments {
            let trimmed = rest.strip_prefix('/')?;
            let end = trimmed.find('/').unwrap_or(trimmed.len());
            let (head, tail) = trimmed.split_at(end);
            match segment {
                Segment::Literal(text) if head == text => {}
                Segment::Param(name) if !head.is_empty() => {
                    params.insert(name.clone(), head.to_owned());
                }
                _ => return None,
            }
            rest = tail;
        }
        if self.wildcard {
            // `/auth/...` matches `/auth` and `/auth/x`, never `/authx`.
            if rest.is_empty() || rest.starts_with('/') {
                return Some(RouteMatch {
                    path_info: rest.to_owned(),
                    params,
                });
            }
            return None;
        }
        // An exact route also accepts one trailing slash.
        (rest.is_empty() || rest == "/").then(|| RouteMatch {
            path_info: String::new(),
            params,
        })
    }
}

/// What a successful match tells the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Rest of the path after the route's fixed part (`spin-path-info`).
    pub path_info: String,
    /// Values of `:name` segments.
    pub params: HashMap<String, String>,
}

/// A route in the router: its pattern, its text and who serves it.
#[derive(Debug, Clone)]
pub struct Route<T> {
    /// The route as written in the manifest.
    pub raw: String,
    /// Parsed form.
    pub pattern: RoutePattern,
    /// What the route leads to (a component index in the host).
    pub target: T,
}

/// Routes sorted from most to least specific.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<Route<T>>,
    duplicates: Vec<(Route<T>, T)>,
}

impl<T: Clone> Router<T> {
    /// Builds a router from routes in manifest order.
    pub fn new(entries: impl IntoIterator<Item = (String, T)>) -> anyhow::Result<Self> {
        let mut routes: Vec<Route<T>> = Vec::new();
        let mut duplicates = Vec::new();
        for (raw, target) in entries {
            let pattern = RoutePattern::parse(&raw)?;
            if let Some(index) = routes.iter().position(|route| route.raw == raw) {
                let replaced = routes.remove(index);
                duplicates.push((replaced, target.clone()));
            }
            routes.push(Route {
                raw,
                pattern,
                target,
            });
        }
        // A stable sort: equal ranks keep manifest order.
        routes.sort_by_key(|route| std::cmp::Reverse(route.pattern.specificity()));
        Ok(Self { routes, duplicates })
    }

    /// Routes written again later in the manifest, which are never used,
    /// each with the target of the entry that replaced it.
    pub fn duplicates(&self) -> &[(Route<T>, T)] {
        &self.duplicates
    }

    /// The most specific route matching `path`, if any.
    pub fn route(&self, path: &str) -> Option<(&Route<T>, RouteMatch)> {
        self.routes
            .iter()
            .find_map(|route| route.pattern.matches(path).map(|found| (route, found)))
    }

    /// All routes, most specific first.
    pub fn routes(&self) -> &[Route<T>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<usize> {
        Router::new(routes.iter().enumerate().map(|(i, r)| (r.to_string(), i))).unwrap()
    }

    fn matched(router: &Router<usize>, path: &str) -> Option<(String, String)> {
        router
            .route(path)
            .map(|(route, found)| (route.raw.clone(), found.path_info))
    }

    #[test]
    fn exact_beats_wildcard() {
        let r = router(&["/...", "/health"]);
        assert_eq!(matched(&r, "/health"), Some(("/health".into(), "".into())));
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router(&["/...", "/auth/...", "/auth/admin/..."]);
        assert_eq!(
            matched(&r, "/auth/admin/x"),
            Some(("/auth/admin/...".into(), "/x".into()))
        );
        assert_eq!(
            matched(&r, "/auth/login"),
            Some(("/auth/...".into(), "/login".into()))
        );
        assert_eq!(
            matched(&r, "/other"),
            Some(("/...".into(), "/other".into()))
        );
    }

    #[test]
    fn a_wildcard_matches_its_own_prefix_but_not_a_longer_word() {
        let r = router(&["/auth/..."]);
        assert_eq!(matched(&r, "/auth"), Some(("/auth/...".into(), "".into())));
        assert_eq!(matched(&r, "/authx"), None);
    }

    #[test]
    fn an_exact_route_does_not_match_deeper_paths() {
        let r = router(&["/health"]);
        assert_eq!(matched(&r, "/health/x"), None);
        assert_eq!(matched(&r, "/health/"), Some(("/health".into(), "".into())));
    }

    #[test]
    fn nothing_matches_without_a_catch_all() {
        let r = router(&["/auth/..."]);
        assert_eq!(matched(&r, "/questions"), None);
    }

    #[test]
    fn parameters_are_captured_and_lose_to_literals() {
        let r = router(&["/users/:id", "/users/me"]);
        assert_eq!(matched(&r, "/users/me").unwrap().0, "/users/me");
        let (route, found) = r.route("/users/42").unwrap();
        assert_eq!(route.raw, "/users/:id");
        assert_eq!(found.params["id"], "42");
    }

    #[test]
    fn a_route_written_twice_is_served_by_its_last_entry() {
        let r = Router::new([("/a/...".to_string(), 0), ("/a/...".to_string(), 1)]).unwrap();
        assert_eq!(r.route("/a/x").unwrap().0.target, 1);
        assert_eq!(r.duplicates().len(), 1);
        assert_eq!(r.duplicates()[0].0.target, 0);
    }

    #[test]
    fn equal_ranks_keep_manifest_order() {
        let r = router(&["/u/:a", "/u/:b"]);
        assert_eq!(matched(&r, "/u/1").unwrap().0, "/u/:a");
    }

    #[test]
    fn an_exact_route_beats_a_wildcard_on_the_same_prefix() {
        let r = router(&["/one/...", "/one"]);
        assert_eq!(matched(&r, "/one").unwrap().0, "/one");
        assert_eq!(matched(&r, "/one/two").unwrap().0, "/one/...");
    }

    #[test]
    fn a_parameter_beats_a_wildcard() {
        let r = router(&["/a/...", "/a/:b"]);
        assert_eq!(matched(&r, "/a/x").unwrap().0, "/a/:b");
        assert_eq!(matched(&r, "/a/x/y").unwrap().0, "/a/...");
    }

    #[test]
    fn component_route_drops_the_wildcard() {
        assert_eq!(
            RoutePattern::parse("/auth/...").unwrap().component_route(),
            "/auth"
        );
        assert_eq!(RoutePattern::parse("/...").unwrap().component_route(), "");
        assert_eq!(
            RoutePattern::parse("/health").unwrap().component_route(),
            "/health"
        );
    }

    #[test]
    fn malformed_routes_are_refused() {
        for bad in ["auth", "/a...", "/a/.../b", "/:"] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
