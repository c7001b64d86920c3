//! The request and response as the use cases see them: plain data, so the
//! logic runs (and is tested) without a Spin host. Components convert
//! Spin's types to and from these.

use std::net::IpAddr;

use ipnet::IpNet;

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

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

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_pairs(self.query.as_bytes())
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
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

    /// The body as a JSON object: 415 unless the content type is JSON, 400
    /// unless it parses to an object.
    pub fn json_object(&self) -> Result<JsonFields, ApiError> {
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
    /// 2.1). No header, or another scheme, is a missing token.
    pub fn bearer_token(&self) -> Result<&str, ApiError> {
        let Some(value) = self.header("authorization") else {
            return Err(ApiError::MissingToken);
        };
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
            .headers
            .iter()
            .filter(|(n, _)| n == "x-forwarded-for")
            .flat_map(|(_, v)| v.split(','))
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

/// Decodes `application/x-www-form-urlencoded` pairs.
pub fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() => {
                    match std::str::from_utf8(&part[i + 1..i + 3])
                        .ok()
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    {
                        Some(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    bytes
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut split = pair.splitn(2, |&b| b == b'=');
            let key = decode(split.next().unwrap_or_default());
            let value = decode(split.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

/// A JSON object body, read field by field. Type errors are collected so
/// that one 422 lists every field at fault.
#[derive(Debug)]
pub struct JsonFields {
    object: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl JsonFields {
    /// Parses `bytes` as a JSON object. serde_json refuses nesting deeper
    /// than 128 levels, so a hostile body cannot exhaust the stack.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(object)) => Ok(Self {
                object,
                errors: Vec::new(),
            }),
            Ok(_) => Err(ApiError::malformed("The body must be a JSON object.")),
            Err(error) => Err(ApiError::malformed(format!(
                "The body is not valid JSON: {error}."
            ))),
        }
    }

    /// Builds from form pairs (all values are strings).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self {
            object: pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            errors: Vec::new(),
        }
    }

    /// A string value, unless it holds a NUL character: PostgreSQL refuses
    /// the byte in text (SQLSTATE 22021), and no field of this API has a
    /// use for it, so it is refused here for every field and backend alike.
    fn text(&mut self, name: &str, text: &str) -> Option<String> {
        if text.contains('\0') {
            self.errors
                .push(FieldError::new(name, "must not contain NUL characters"));
            return None;
        }
        Some(text.to_owned())
    }

    /// A required string field.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.object.get(name).cloned() {
            Some(Value::String(text)) => self.text(name, &text),
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    /// An optional string field (absent or null is `None`).
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.object.get(name).cloned() {
            Some(Value::String(text)) => self.text(name, &text),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    /// A required integer field. As in JSON Schema, `1.0` is the integer 1.
    pub fn integer(&mut self, name: &str) -> Option<i64> {
        const I64_BOUND: f64 = 9_223_372_036_854_775_808.0; // 2^63
        match self.object.get(name) {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(Value::Number(n))
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&f)) =>
            {
                n.as_f64().map(|f| f as i64)
            }
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "must be an integer"));
                None
            }
        }
    }

    /// A required array of strings.
    pub fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.object.get(name) {
            Some(Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect();
                match strings {
                    None => {
                        self.errors
                            .push(FieldError::new(name, "must be an array of strings"));
                        None
                    }
                    Some(strings) if strings.iter().any(|s| s.contains('\0')) => {
                        self.errors
                            .push(FieldError::new(name, "must not contain NUL characters"));
                        None
                    }
                    Some(strings) => Some(strings),
                }
            }
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "must be an array of strings"));
                None
            }
        }
    }

    /// Records a validation error found later (a value that parsed but is
    /// not acceptable).
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// 422 with every recorded error, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
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
    fn form_bodies_decode_plus_and_percent() {
        assert_eq!(
            form_pairs(b"username=a%40b.c&password=p+w%21&bad=%zz"),
            vec![
                ("username".into(), "a@b.c".into()),
                ("password".into(), "p w!".into()),
                ("bad".into(), "%zz".into())
            ]
        );
    }

    #[test]
    fn json_fields_collect_every_type_error() {
        let mut fields = JsonFields::parse(br#"{"email": 1, "name": "x"}"#).unwrap();
        assert_eq!(fields.string("email"), None);
        assert_eq!(fields.string("password"), None);
        assert_eq!(fields.optional_string("name").as_deref(), Some("x"));
        let Err(ApiError::Validation(errors)) = fields.finish() else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn integral_numbers_are_integers() {
        let mut fields =
            JsonFields::parse(br#"{"a": 1.0, "b": 1.5, "c": 1e300, "d": -7}"#).unwrap();
        assert_eq!(fields.integer("a"), Some(1));
        assert_eq!(fields.integer("b"), None);
        assert_eq!(fields.integer("c"), None);
        assert_eq!(fields.integer("d"), Some(-7));
    }

    #[test]
    fn deeply_nested_json_is_refused_without_panicking() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            JsonFields::parse(deep.as_bytes()),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(matches!(
            JsonFields::parse(b"[1]"),
            Err(ApiError::MalformedBody(_))
        ));
    }
}
