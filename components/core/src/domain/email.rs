//! An email address, trimmed and lower-cased, so that two spellings of one
//! address are one account.

use std::fmt;

/// Longest address SMTP can carry (RFC 5321 section 4.5.3.1.3).
const MAX_LENGTH: usize = 254;
/// Longest domain label (RFC 1035 section 2.3.4).
const MAX_LABEL: usize = 63;

/// Characters of an RFC 5322 `dot-atom` besides letters and digits.
const ATOM_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";

/// An email address in canonical (trimmed, lower-case) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims ASCII whitespace, lower-cases and checks `input`. The rule is the one the
    /// OpenAPI document states as a pattern, so clients can check it
    /// before sending: an ASCII `dot-atom` local part (RFC 5322 section
    /// 3.4.1), `@`, and a domain of at least two letter-digit-hyphen labels
    /// (RFC 1035), 254 characters at most. Deliverability is not checked;
    /// quoted local parts, address literals and non-ASCII addresses are not
    /// accepted.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        // ASCII whitespace around the address (spaces, tabs, line breaks)
        // is trimmed: what a form field or a copy and paste adds. Anything
        // else is part of the input.
        if input.chars().count() > MAX_LENGTH {
            return Err("is longer than 254 characters");
        }
        let email = input.trim_ascii().to_ascii_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("is not an email address");
        };
        let atom = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATOM_SPECIALS.contains(c))
        };
        let label = |part: &str| {
            (1..=MAX_LABEL).contains(&part.len())
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let valid = local.split('.').all(atom)
            && domain.split('.').count() >= 2
            && domain.split('.').all(label);
        if !valid {
            return Err("is not an email address");
        }
        Ok(Self(email))
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        for input in [
            "  Ada@Example.COM ",
            "\tada@example.com\r\n",
            "\nADA@example.com\x0c",
        ] {
            assert_eq!(Email::parse(input).unwrap().as_str(), "ada@example.com");
        }
    }

    #[test]
    fn plausible_addresses_are_accepted() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'brien@x-y.example",
            "0@0.com",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn implausible_addresses_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            ".a@b.c",
            "a..b@c.d",
            "a@b\u{0}.c",
            "<a@b.c>",
            "a@b@c.d",
            "δοκιμή@παράδειγμα.δοκιμή",
            "\"quoted\"@b.c",
            "a@[127.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    /// The OpenAPI document states the rule as a pattern; the two must
    /// accept the same addresses.
    #[test]
    fn the_documented_pattern_accepts_exactly_what_parse_accepts() {
        let document: serde_json::Value = serde_json::from_str(crate::docs::OPENAPI_JSON).unwrap();
        let schema = &document["components"]["schemas"]["RegisterRequest"]["properties"]["email"];
        let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        let corpus = [
            "a@b.co",
            " A@B.CO\t",
            "a@b",
            "a.@b.co",
            "a@b-.co",
            "a@-b.co",
            "a+b@c.de",
            "\na@b.co",
            "a@b.co\r\n",
            "a@b.co\u{b}",
            "\u{a0}a@b.co",
            "a b@c.de",
            "a@b..co",
            "a@b.c-o",
            "é@b.co",
            "a@é.co",
            "a@b.co ",
            "@b.co",
            "a@.co",
            &format!("a@{}.co", "b".repeat(63)),
            &format!("a@{}.co", "b".repeat(64)),
        ];
        for input in corpus {
            assert_eq!(
                pattern.is_match(input),
                Email::parse(input).is_ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn parsing_never_panics_and_canonical_forms_are_stable() {
        // A light property test over many generated strings.
        let alphabet: Vec<char> = "aZ@.-_+' \t\u{0}é@@..".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5_000 {
            let length = (seed % 24) as usize;
            let text: String = (0..length)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Ok(email) = Email::parse(&text) {
                assert_eq!(Email::parse(email.as_str()).unwrap(), email);
                assert_eq!(email.as_str(), email.as_str().to_lowercase());
            }
        }
    }
}
