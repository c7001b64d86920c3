//! A candidate password that meets the policy: 8 to 256 characters, not
//! trivially guessable, and normalised with Unicode NFKC before hashing (so
//! that one password typed on two keyboards is one password).

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Fewest characters (OWASP ASVS 5.0 6.2.1).
pub const MIN_LENGTH: usize = 8;
/// Most characters; long enough for passphrases, short enough that hashing
/// a hostile input stays cheap (ASVS 6.2.9 asks for at least 64).
pub const MAX_LENGTH: usize = 256;

/// A password, normalised. Its bytes are wiped when dropped and it has no
/// `Display`; its `Debug` prints nothing of it.
#[derive(Clone)]
pub struct Password {
    normalised: Zeroizing<String>,
    /// At login, the input as typed where NFKC changed it: hashes that
    /// other implementations made are of that form.
    as_typed: Option<Zeroizing<String>>,
}

impl Password {
    /// Normalises `input` and checks the policy. `context` holds words
    /// the password must not simply be (the user's email, names).
    pub fn parse(input: &str, context: &[&str]) -> Result<Self, &'static str> {
        // Length counts the characters as typed, as the OpenAPI document's
        // minLength and maxLength do; normalisation is for hashing.
        let length = input.chars().count();
        if length < MIN_LENGTH {
            return Err("must be at least 8 characters");
        }
        if length > MAX_LENGTH {
            return Err("must be at most 256 characters");
        }
        let normalised = Self::normalise(input);
        if is_trivially_guessable(&normalised.normalised, context) {
            return Err("is too common or easy to guess");
        }
        Ok(normalised)
    }

    /// A password as typed at login: normalised the same way, not checked
    /// against the policy (an old password may predate it), but bounded so
    /// that a huge input cannot make hashing expensive.
    pub fn for_login(input: &str) -> Result<Self, &'static str> {
        if input.chars().count() > MAX_LENGTH * 4 {
            return Err("is too long");
        }
        let mut password = Self::normalise(input);
        password.as_typed =
            (*password.normalised != input).then(|| Zeroizing::new(input.to_owned()));
        Ok(password)
    }

    fn normalise(input: &str) -> Self {
        Self {
            normalised: Zeroizing::new(input.nfkc().collect()),
            as_typed: None,
        }
    }

    /// The normalised bytes, for hashing.
    pub fn expose(&self) -> &[u8] {
        self.normalised.as_bytes()
    }

    /// At login, the bytes as typed where normalisation changed them:
    /// other implementations (the Python service's passlib) hashed those.
    pub fn as_typed(&self) -> Option<&[u8]> {
        self.as_typed.as_deref().map(String::as_bytes)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Passwords made of one repeated character or an alphabet or keyboard run,
/// the user's own email or name, or a well-known leaked password.
fn is_trivially_guessable(password: &str, context: &[&str]) -> bool {
    let lower = password.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    if chars.iter().all(|&c| c == chars[0]) {
        return true;
    }
    const RUNS: &[&str] = &[
        "abcdefghijklmnopqrstuvwxyz",
        "zyxwvutsrqponmlkjihgfedcba",
        "01234567890",
        "09876543210",
        "qwertyuiopasdfghjklzxcvbnm",
        "qwertzuiopasdfghjklyxcvbnm",
        "azertyuiopqsdfghjklmwxcvbn",
        "1qaz2wsx3edc4rfv5tgb6yhn",
    ];
    if RUNS.iter().any(|run| run.contains(lower.as_str())) {
        return true;
    }
    if context
        .iter()
        .filter(|word| word.chars().count() >= 3)
        .any(|word| {
            let word = word.to_lowercase();
            lower == word || lower == word.split('@').next().unwrap_or_default()
        })
    {
        return true;
    }
    // The `passwords` crate carries a sorted list of about 100,000
    // passwords seen in breaches; its entries keep their case.
    passwords::analyzer::is_common_password(password)
        || passwords::analyzer::is_common_password(&lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_after_normalisation() {
        assert!(Password::parse("short", &[]).is_err());
        assert!(Password::parse("ünïcödé-pässwörd", &[]).is_ok());
        assert!(Password::parse(&"x".repeat(257), &[]).is_err());
        // The ligature "ﬁ" becomes "fi" under NFKC: seven characters typed
        // become eight.
        assert_eq!(
            Password::parse("ﬁ-a-b-c-", &[])
                .map(|p| p.expose().len())
                .ok(),
            Some("fi-a-b-c-".len())
        );
    }

    #[test]
    fn compatibility_forms_hash_alike() {
        let full_width = Password::parse("ｐａｓｓｗｏｒｄ４２！", &[]).unwrap();
        let ascii = Password::parse("password42!", &[]).unwrap();
        assert_eq!(full_width.expose(), ascii.expose());
    }

    #[test]
    fn trivial_passwords_are_refused() {
        for weak in ["aaaaaaaa", "12345678", "abcdefgh", "qwertyuiop", "87654321"] {
            assert!(Password::parse(weak, &[]).is_err(), "{weak} accepted");
        }
        assert!(Password::parse("ada@example.com", &["ada@example.com"]).is_err());
        assert!(Password::parse("adalovelace", &["adalovelace@example.com"]).is_err());
    }

    #[test]
    fn leaked_passwords_are_refused_whatever_the_case() {
        for leaked in ["password", "Password1", "iloveyou", "sunshine"] {
            assert!(Password::parse(leaked, &[]).is_err(), "{leaked} accepted");
        }
    }

    #[test]
    fn a_reasonable_password_passes() {
        assert!(Password::parse("correct horse battery staple", &["ada@example.com"]).is_ok());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let password = Password::parse("correct horse battery staple", &[]).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
