//! The request and response as the use cases see them: plain data, so the
//! logic runs (and is tested) without a Spin host. Components convert
//! Spin's types to and from these.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::ApiError;

mod body;

pub use body::{JsonFields, form_pairs};

/// Largest request body read, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An incoming request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers with lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
}

/// An outgoing response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value).unwrap_or_default())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// With `Cache-Control: no-store` unless the handler chose caching:
    /// most answers hold tokens, secrets or personal data, and only what is
    /// public (keys, documentation) is marked cacheable by its handler.
    pub fn stored_only_if_marked(self) -> Self {
        if self.header_value("cache-control").is_some() {
            return self;
        }
        self.header("cache-control", "no-store")
    }

    /// The first value of a header.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// The last value of header `name`. Spin appends its own `spin-*`
    /// headers after any a client sent, so the last one is Spin's.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in arrival order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `User-Agent`, without control characters and cut to a sane length:
    /// as sessions and audit events keep it.
    pub fn user_agent(&self) -> String {
        /// Longest `User-Agent` kept.
        const MAX_USER_AGENT: usize = 256;
        self.header("user-agent")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT)
            .collect()
    }

    /// A query parameter, percent-decoded. Given more than once it is a
    /// 422, as a form field is: which one counts is not for proxies and
    /// this service to read differently.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = form_pairs(self.query.as_bytes())
            .into_iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value);
        let value = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(name, "is given more than once"));
        }
        Ok(value)
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header_values("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// The media type of the body, lower-case, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Whether the body is JSON by its content type.
    pub fn is_json(&self) -> bool {
        self.media_type().is_some_and(|media| {
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        })
    }

    /// A 415 when the body is sent with a content coding (`gzip`, say): the
    /// service reads bodies only as they are (RFC 9110 section 8.4.1).
    pub fn refuse_content_coding(&self) -> Result<(), ApiError> {
        let coded = self
            .header_values("content-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
        if coded && !self.body.is_empty() {
            return Err(ApiError::ContentCoding);
        }
        Ok(())
    }

    /// The body as a JSON object: 415 unless the content type is JSON, 400
    /// unless it parses to an object. No body at all, sent as JSON or with
    /// no content type, is an empty object, so the client hears which
    /// fields are required (422) rather than which type it did not send.
    pub fn json_object(&self) -> Result<JsonFields, ApiError> {
        let untyped = self.header("content-type").is_none();
        if self.body.is_empty() && (untyped || self.is_json()) {
            return JsonFields::parse(b"{}");
        }
        if !self.is_json() {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        JsonFields::parse(&self.body)
    }

    /// The body as a JSON object when there is one; `None` for an empty
    /// body (routes where the body is optional).
    pub fn optional_json_object(&self) -> Result<Option<JsonFields>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.json_object().map(Some)
    }

    /// The Bearer token of the `Authorization` header (RFC 6750 section
    /// 2.1). No header, or another scheme, is a missing token. The header
    /// holds one credential (RFC 9110 section 11.6.2): sent twice, neither
    /// is taken, as a proxy in front may have checked the other one. RFC
    /// 6750 section 3.1 would answer that with 400; the contract's answer
    /// to a credential it refuses is 401 `invalid_token`, which every
    /// Bearer route documents.
    pub fn bearer_token(&self) -> Result<&str, ApiError> {
        let Some(value) = self.header("authorization") else {
            return Err(ApiError::MissingToken);
        };
        if self.header_values("authorization").count() > 1 {
            return Err(ApiError::InvalidToken("more than one Authorization header"));
        }
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::MissingToken);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::InvalidToken("the Bearer token is empty"));
        }
        Ok(token)
    }

    /// The client's IP address: Spin's `spin-client-addr`, or, when that
    /// peer is a trusted proxy, the nearest untrusted address in
    /// `X-Forwarded-For`.
    pub fn client_ip(&self, trusted_proxies: &[IpNet]) -> String {
        let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|cidr| cidr.contains(ip));
        let mut client = self
            .header("spin-client-addr")
            .and_then(parse_socket_ip)
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let forwarded: Vec<&str> = self
            .header_values("x-forwarded-for")
            .flat_map(|v| v.split(','))
            .collect();
        // Walk back from the nearest hop while it is a trusted proxy: each
        // one vouches for the address before it. An entry that does not
        // parse ends the walk at the proxy that added it.
        for entry in forwarded.iter().rev() {
            if !trusted(&client) {
                break;
            }
            match parse_socket_ip(entry.trim()) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client.to_string()
    }

    /// The scheme and authority the client used (`https://auth.example.com`),
    /// from Spin's `spin-full-url`; `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` replace them only when the peer is a trusted
    /// proxy, as `X-Forwarded-For` does in [`Request::client_ip`]. `None`
    /// when no usable origin is known.
    pub fn origin(&self, trusted_proxies: &[IpNet]) -> Option<String> {
        let full_url = self.header("spin-full-url")?;
        let (scheme, rest) = full_url.split_once("://")?;
        let mut scheme = scheme.to_ascii_lowercase();
        let mut authority = rest.split(['/', '?', '#']).next()?.to_owned();
        let peer = self.header("spin-client-addr").and_then(parse_socket_ip);
        if peer.is_some_and(|ip| trusted_proxies.iter().any(|cidr| cidr.contains(&ip))) {
            // The nearest proxy's own value is the first one it wrote.
            let first = |name: &str| {
                self.header(name)
                    .and_then(|value| value.split(',').next())
                    .map(|value| value.trim().to_owned())
            };
            if let Some(proto) = first("x-forwarded-proto") {
                scheme = proto.to_ascii_lowercase();
            }
            if let Some(host) = first("x-forwarded-host") {
                authority = host;
            }
        }
        // Only what a URL's origin can hold: the value ends up in links
        // that clients follow.
        let plain_authority = !authority.is_empty()
            && authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c));
        ((scheme == "http" || scheme == "https") && plain_authority)
            .then(|| format!("{scheme}://{}", authority.to_ascii_lowercase()))
    }
}

/// An IP address, alone or with a port (`1.2.3.4:5`, `[::1]:5`); an
/// IPv4-mapped IPv6 address is read as the IPv4 address.
fn parse_socket_ip(value: &str) -> Option<IpAddr> {
    let ip = match value.parse::<std::net::SocketAddr>() {
        Ok(address) => address.ip(),
        Err(_) => value.parse().ok()?,
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn no_body_at_all_is_an_empty_object_unless_typed_otherwise() {
        let read = |content_type: Option<&str>, body: &[u8]| {
            let headers: Vec<(&str, &str)> = content_type
                .map(|media| ("content-type", media))
                .into_iter()
                .collect();
            Request {
                body: body.to_vec(),
                ..request(&headers)
            }
            .json_object()
        };
        assert!(read(None, b"").is_ok());
        assert!(read(Some("application/json"), b"").is_ok());
        for (content_type, body) in [(Some("text/plain"), &b""[..]), (None, b"{}")] {
            assert!(matches!(
                read(content_type, body),
                Err(ApiError::UnsupportedMediaType(_))
            ));
        }
        // Whitespace is a body, and not JSON.
        assert!(matches!(
            read(Some("application/json"), b" "),
            Err(ApiError::MalformedBody(_))
        ));
    }

    #[test]
    fn a_body_in_a_content_coding_is_refused_and_no_body_is_not_checked() {
        let coded = |coding: &str, body: &[u8]| {
            Request {
                body: body.to_vec(),
                ..request(&[("content-encoding", coding)])
            }
            .refuse_content_coding()
        };
        for coding in ["gzip", "BR", "identity, gzip"] {
            assert!(
                matches!(coded(coding, b"{}"), Err(ApiError::ContentCoding)),
                "{coding}"
            );
            assert!(coded(coding, b"").is_ok(), "{coding}");
        }
        for coding in ["identity", "IDENTITY", ""] {
            assert!(coded(coding, b"{}").is_ok(), "{coding}");
        }
    }

    #[test]
    fn a_second_authorization_header_voids_both() {
        let one = request(&[("authorization", "Bearer a")]);
        assert_eq!(one.bearer_token().unwrap(), "a");
        let two = request(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(two.bearer_token(), Err(ApiError::InvalidToken(_))));
    }

    #[test]
    fn an_answer_is_no_store_unless_its_handler_chose_caching() {
        let plain = Response::new(200).stored_only_if_marked();
        assert_eq!(plain.header_value("cache-control"), Some("no-store"));
        let public = Response::new(200)
            .header("Cache-Control", "public, max-age=60")
            .stored_only_if_marked();
        let policies: Vec<_> = public
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cache-control"))
            .collect();
        assert_eq!(policies.len(), 1);
        assert_eq!(
            public.header_value("cache-control"),
            Some("public, max-age=60")
        );
    }

    #[test]
    fn the_client_ip_is_spins_peer_address_by_default() {
        let req = request(&[
            ("spin-client-addr", "6.6.6.6:1"),
            ("x-forwarded-for", "7.7.7.7"),
            ("spin-client-addr", "10.1.2.3:5555"),
        ]);
        assert_eq!(req.client_ip(&[]), "10.1.2.3");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let req = request(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2"),
            ("spin-client-addr", "10.0.0.1:4000"),
        ]);
        let proxies = ["10.0.0.0/8".parse::<IpNet>().unwrap()];
        assert_eq!(req.client_ip(&proxies), "203.0.113.9");
        assert_eq!(req.client_ip(&[]), "10.0.0.1");
    }

    #[test]
    fn forwarded_entries_with_ports_and_mapped_addresses_are_read() {
        let proxies = ["10.0.0.0/8".parse::<IpNet>().unwrap()];
        let req = request(&[
            ("x-forwarded-for", "203.0.113.9:4711"),
            ("spin-client-addr", "[::ffff:10.0.0.1]:4000"),
        ]);
        assert_eq!(req.client_ip(&proxies), "203.0.113.9");
        let junk = request(&[
            ("x-forwarded-for", "1.1.1.1, garbage, 10.0.0.3"),
            ("spin-client-addr", "10.0.0.1:4000"),
        ]);
        assert_eq!(
            junk.client_ip(&proxies),
            "10.0.0.3",
            "the walk stops at junk"
        );
    }

    #[test]
    fn ipv6_peers_parse() {
        let req = request(&[("spin-client-addr", "[::1]:8080")]);
        assert_eq!(req.client_ip(&[]), "::1");
        let proxies = ["::1/128".parse::<IpNet>().unwrap()];
        let forwarded = request(&[
            ("x-forwarded-for", "2001:db8::7"),
            ("spin-client-addr", "[::1]:8080"),
        ]);
        assert_eq!(forwarded.client_ip(&proxies), "2001:db8::7");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(
            request(&[("authorization", "bearer abc")])
                .bearer_token()
                .unwrap(),
            "abc"
        );
        assert!(matches!(
            request(&[("authorization", "Basic abc")]).bearer_token(),
            Err(ApiError::MissingToken)
        ));
        assert!(matches!(
            request(&[]).bearer_token(),
            Err(ApiError::MissingToken)
        ));
        assert!(matches!(
            request(&[("authorization", "Bearer ")]).bearer_token(),
            Err(ApiError::InvalidToken(_))
        ));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let req = request(&[("cookie", "a=1; __Secure-refresh_token=tok; b=2")]);
        assert_eq!(req.cookie("__Secure-refresh_token"), Some("tok"));
        assert_eq!(req.cookie("c"), None);
    }

    #[test]
    fn the_origin_is_the_url_the_client_used_and_proxies_are_believed_only_if_trusted() {
        let direct = request(&[
            (
                "spin-full-url",
                "http://Auth.Example.com:3000/.well-known/x?y=1",
            ),
            ("spin-client-addr", "127.0.0.1:5000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        assert_eq!(
            direct.origin(&[]).as_deref(),
            Some("http://auth.example.com:3000")
        );
        let proxies: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            direct.origin(&proxies).as_deref(),
            Some("https://evil.example")
        );
        let junk = request(&[
            ("spin-full-url", "http://a.example/"),
            ("spin-client-addr", "127.0.0.1:5000"),
            ("x-forwarded-host", "a.example/\"><script>"),
        ]);
        assert_eq!(junk.origin(&proxies), None);
        let ftp = request(&[("spin-full-url", "ftp://a.example/")]);
        assert_eq!(ftp.origin(&[]), None);
        assert_eq!(request(&[]).origin(&[]), None);
    }
}
