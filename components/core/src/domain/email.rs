//! An email address, trimmed and lower-cased, so that two spellings of one
//! address are one account.

use std::fmt;

/// Longest address SMTP can carry (RFC 5321 section 4.5.3.1.3).
const MAX_LENGTH: usize = 254;
/// Longest local part (RFC 5321 section 4.5.3.1.1).
const MAX_LOCAL_LENGTH: usize = 64;

/// A syntactically plausible email address in canonical (lower-case) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks `input`: one `@`, a non-empty local
    /// part, a domain of dot-separated labels, no spaces or control
    /// characters. Deliverability is not checked.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > MAX_LENGTH {
            return Err("is longer than 254 characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("is not an email address");
        };
        let valid_local = !local.is_empty()
            && local.len() <= MAX_LOCAL_LENGTH
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let valid_domain = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let printable = email
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\\\"".contains(c));
        if !(valid_local && valid_domain && printable) {
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
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn plausible_addresses_are_accepted() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "δοκιμή@παράδειγμα.δοκιμή",
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
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn parsing_never_panics_and_canonical_forms_are_stable() {
        // A light property test over many generated strings.
        let alphabet: Vec<char> = "aZ@.-_+ \t\u{0}é@@..".chars().collect();
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
