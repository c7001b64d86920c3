//! Refresh tokens: 256 random bits, URL-safe base64, given to the client
//! once and remembered by the server only as a SHA-256 digest.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Random bytes in a token (256 bits, RFC 9700 section 4.14's "high entropy").
const TOKEN_BYTES: usize = 32;
/// HKDF `info` and AEAD associated data: binds keys and ciphertexts to
/// this one use.
const SEAL_CONTEXT: &[u8] = b"spin-auth refresh successor v1";

/// A refresh token in the clear. No `Display`; `Debug` hides it.
pub struct RefreshToken(Zeroizing<String>);

impl RefreshToken {
    /// A new token from the OS random source.
    pub fn generate() -> Self {
        let bytes = Zeroizing::new(crate::random::bytes::<TOKEN_BYTES>());
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_slice())))
    }

    /// A token as presented by a client: `None` unless it has the shape of
    /// one this service issues (which keeps junk out of the store).
    pub fn parse(presented: &str) -> Option<Self> {
        let presented = presented.trim();
        let decoded = URL_SAFE_NO_PAD.decode(presented).ok()?;
        (decoded.len() == TOKEN_BYTES).then(|| Self(Zeroizing::new(presented.to_owned())))
    }

    /// The token text, for the cookie or response body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the server stores and looks tokens up by.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// `successor` encrypted so that only a holder of this token can read
    /// it. The server keeps the result beside this token's digest when it
    /// retires this token; it cannot read it itself, since it never stores
    /// this token.
    ///
    /// The construction is [`super::sealed`]'s, keyed by this token.
    pub fn seal(&self, successor: &RefreshToken) -> String {
        super::sealed::seal(
            self.0.as_bytes(),
            SEAL_CONTEXT,
            SEAL_CONTEXT,
            successor.expose().as_bytes(),
        )
    }

    /// Reads a successor sealed by [`RefreshToken::seal`] with this token;
    /// `None` for anything else, including rows sealed before version 1
    /// (a hand-made pad, no longer trusted).
    pub fn unseal(&self, sealed: &str) -> Option<RefreshToken> {
        let plain = super::sealed::open(self.0.as_bytes(), SEAL_CONTEXT, SEAL_CONTEXT, sealed)?;
        RefreshToken::parse(std::str::from_utf8(&plain).ok()?)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// SHA-256 of a refresh token, lower-case hex. Knowing it does not let
/// anyone present the token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(String);

impl TokenDigest {
    /// The hex text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a digest back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }
}

impl fmt::Debug for TokenDigest {
    /// Only a prefix: enough to correlate log lines, not to look anything up.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", &self.0[..8.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::sealed::SEAL_VERSION;
    /// ChaCha20-Poly1305's nonce size.
    const NONCE_BYTES: usize = 12;

    #[test]
    fn a_token_is_256_bits_of_url_safe_base64() {
        let token = RefreshToken::generate();
        assert_eq!(token.expose().len(), 43);
        assert!(
            token
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(RefreshToken::generate().expose(), token.expose());
    }

    #[test]
    fn a_presented_token_parses_back_to_the_same_digest() {
        let token = RefreshToken::generate();
        let again = RefreshToken::parse(token.expose()).unwrap();
        assert_eq!(again.digest(), token.digest());
        assert_eq!(token.digest().as_str().len(), 64);
    }

    #[test]
    fn junk_is_not_a_token() {
        for junk in ["", "short", "!!!!", &"A".repeat(44), &"A".repeat(4096)] {
            assert!(RefreshToken::parse(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn a_sealed_successor_opens_only_with_its_predecessor() {
        let old = RefreshToken::generate();
        let new = RefreshToken::generate();
        let sealed = old.seal(&new);
        assert_eq!(old.unseal(&sealed).unwrap().expose(), new.expose());
        let stranger = RefreshToken::generate();
        assert!(stranger.unseal(&sealed).is_none());
        assert!(!sealed.contains(new.expose()));
        assert!(old.unseal("zz").is_none());
        assert!(old.unseal("v1.").is_none());
    }

    #[test]
    fn sealing_twice_gives_different_texts() {
        let old = RefreshToken::generate();
        let new = RefreshToken::generate();
        assert_ne!(old.seal(&new), old.seal(&new));
    }

    #[test]
    fn a_tampered_sealed_successor_is_refused() {
        let old = RefreshToken::generate();
        let sealed = old.seal(&RefreshToken::generate());
        let mut bytes = URL_SAFE_NO_PAD
            .decode(&sealed[SEAL_VERSION.len()..])
            .unwrap();
        for i in [0, NONCE_BYTES, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("{SEAL_VERSION}{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(old.unseal(&tampered).is_none(), "flipped byte {i}");
            bytes[i] ^= 1;
        }
    }

    /// Rows sealed before version 1 were 64 hex digits (a SHA-256 pad):
    /// they are refused, so a replay of such a token in its grace window
    /// gets `invalid_refresh_token` instead of being trusted.
    #[test]
    fn a_successor_sealed_in_the_old_format_is_refused() {
        let old = RefreshToken::generate();
        assert!(old.unseal(&"ab".repeat(32)).is_none());
    }

    #[test]
    fn debug_output_reveals_neither_token_nor_digest() {
        let token = RefreshToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
        let digest = token.digest();
        assert!(!format!("{digest:?}").contains(digest.as_str()));
    }
}
