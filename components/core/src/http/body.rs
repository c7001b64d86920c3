//! Request bodies read field by field: JSON objects (every field's error
//! collected for one 422) and `application/x-www-form-urlencoded` pairs.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

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

/// A JSON object's members in order, a name given twice kept twice
/// (serde_json's `Map` keeps only the last value).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_any(Visit)
    }
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
    /// than 128 levels, so a hostile body cannot exhaust the stack. A name
    /// given twice is refused as in a form (I-JSON, RFC 7493 section 2.3):
    /// parsers differ on which of the two values counts.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Members>(bytes) {
            Ok(Members(members)) => Ok(Self::from_members(members)),
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                Err(ApiError::malformed("The body must be a JSON object."))
            }
            Err(error) => Err(ApiError::malformed(format!(
                "The body is not valid JSON: {error}."
            ))),
        }
    }

    /// Builds from form pairs (all values are strings). A field sent more
    /// than once is refused (RFC 6749 section 3.1): taking one of two values
    /// would let a proxy and this service read different requests.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self::from_members(
            pairs
                .into_iter()
                .map(|(name, value)| (name, Value::String(value))),
        )
    }

    /// Builds from an object's members in order; a name given more than
    /// once is an error of that field.
    fn from_members(members: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut fields = Self {
            object: Map::new(),
            errors: Vec::new(),
        };
        for (name, value) in members {
            if fields.object.contains_key(&name) {
                if !fields.errors.iter().any(|error| error.field == name) {
                    fields
                        .errors
                        .push(FieldError::new(name, "is given more than once"));
                }
            } else {
                fields.object.insert(name, value);
            }
        }
        fields
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

    /// Whether the field is there and not null.
    pub fn has(&self, name: &str) -> bool {
        self.object.get(name).is_some_and(|value| !value.is_null())
    }

    /// An optional boolean field (absent or null is `None`).
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.object.get(name) {
            Some(Value::Bool(flag)) => Some(*flag),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "must be true or false"));
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
    fn a_json_name_given_twice_is_refused_whichever_value_is_right() {
        let mut fields =
            JsonFields::parse(br#"{"password": "wrong", "email": "a@b.c", "password": "right"}"#)
                .unwrap();
        assert_eq!(fields.string("email").as_deref(), Some("a@b.c"));
        let Err(ApiError::Validation(errors)) = fields.finish() else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "password");
        for body in [&b"[1, 2]"[..], b"\"text\"", b"12", b"null"] {
            assert!(
                matches!(JsonFields::parse(body), Err(ApiError::MalformedBody(m)) if m.contains("object")),
                "{body:?}"
            );
        }
        assert!(matches!(
            JsonFields::parse(b"{\"a\": }"),
            Err(ApiError::MalformedBody(m)) if m.contains("not valid JSON")
        ));
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
