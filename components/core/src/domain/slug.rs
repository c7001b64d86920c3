//! A topic's URL name: lower-case letters, digits and single hyphens.

use std::fmt;

/// A topic slug, 1 to 64 characters of `a-z`, `0-9` and single inner
/// hyphens, such as `aws-solutions-architect`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicSlug(String);

impl TopicSlug {
    /// Checks `input` as given (no case folding: a slug is an identifier).
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if input.is_empty() || input.len() > 64 {
            return Err("must be 1 to 64 characters");
        }
        let valid_chars = input
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_chars || input.starts_with('-') || input.ends_with('-') || input.contains("--") {
            return Err("must be lower-case letters, digits and single hyphens");
        }
        Ok(Self(input.to_owned()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TopicSlug;

    #[test]
    fn slugs_follow_the_rule() {
        for ok in ["a", "aws-saa-c03", "k8s", &"x".repeat(64)] {
            assert!(TopicSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "a_b",
            "a b",
            "é",
            &"x".repeat(65),
            "a'; DROP",
        ] {
            assert!(TopicSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
