//! The second factor's primitives: TOTP (RFC 6238) codes from a shared
//! secret, recovery codes, and the secret sealed for storage.
//!
//! TOTP here is what authenticator apps expect by default: HMAC-SHA-1,
//! six digits, 30-second steps (RFC 6238 section 4), with one step of
//! drift either way (section 5.2). HOTP's dynamic truncation (RFC 4226
//! section 5.3) is a few lines written here from the RFC, over RustCrypto's
//! `hmac` and `sha1`, rather than a TOTP crate that would bring URL and
//! QR-code dependencies into the component; the RFC's test vectors below
//! check it.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::tokens::sealed;

/// Seconds per step (RFC 6238 section 4.1, the default X).
pub const STEP_SECONDS: i64 = 30;
/// Digits in a code (RFC 4226 section 5.3 requires at least 6).
pub const DIGITS: u32 = 6;
/// Steps of clock drift accepted either way (RFC 6238 section 5.2).
pub const DRIFT_STEPS: i64 = 1;
/// Secret length: 160 bits, RFC 4226 section 4's recommendation (and the
/// length of an HMAC-SHA-1 output).
const SECRET_BYTES: usize = 20;
/// Recovery codes given at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes in a recovery code: 80 bits, 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;
/// HKDF label of the key that seals TOTP secrets (see [`crate::tokens::sealed`]).
const SECRET_CONTEXT: &[u8] = b"spin-auth totp secret v1";
/// Random bytes in an `mfa_token` (256 bits, like a refresh token).
const MFA_TOKEN_BYTES: usize = 32;

/// A TOTP shared secret. No `Display`; `Debug` hides it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new secret from the OS random source.
    pub fn generate() -> Self {
        Self(Zeroizing::new(
            crate::random::bytes::<SECRET_BYTES>().to_vec(),
        ))
    }

    /// A secret from its raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret in base32 without padding (RFC 4648 section 6), as
    /// authenticator apps take it.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The `otpauth://totp/` URI an authenticator app reads from a QR code:
    /// the label `issuer:account` and the `issuer` parameter make the app
    /// show both names.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent_encode(issuer),
            percent_encode(account),
            self.base32().as_str(),
            percent_encode(issuer),
        ))
    }

    /// The code for step `counter` (HOTP, RFC 4226 section 5.3).
    pub fn code_at(&self, counter: u64) -> u32 {
        let mut mac =
            Hmac::<sha1::Sha1>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(&counter.to_be_bytes());
        let hash = mac.finalize().into_bytes();
        let offset = (hash[hash.len() - 1] & 0x0f) as usize;
        let binary = u32::from_be_bytes([
            hash[offset] & 0x7f,
            hash[offset + 1],
            hash[offset + 2],
            hash[offset + 3],
        ]);
        binary % 10u32.pow(DIGITS)
    }

    /// The step at which `code` is right at time `now`, within the drift;
    /// `None` when it is right at none. Every candidate is compared in
    /// constant time.
    pub fn matching_step(&self, code: &str, now: Timestamp) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now.div_euclid(STEP_SECONDS);
        let mut found = None;
        for step in current - DRIFT_STEPS..=current + DRIFT_STEPS {
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let expected = format!("{:0width$}", self.code_at(counter), width = DIGITS as usize);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }

    /// The secret sealed for storage under `key`, bound to `user_id` (a
    /// sealed secret copied to another account does not open there).
    pub fn seal(&self, key: &[u8], user_id: &str) -> String {
        sealed::seal(key, SECRET_CONTEXT, user_id.as_bytes(), &self.0)
    }

    /// Opens a secret sealed by [`TotpSecret::seal`].
    pub fn open(key: &[u8], user_id: &str, stored: &str) -> Option<Self> {
        sealed::open(key, SECRET_CONTEXT, user_id.as_bytes(), stored).map(Self)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The step `now` falls in.
pub fn step_at(now: Timestamp) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// Percent-encodes everything but RFC 3986's unreserved characters: the
/// URI's label and issuer need nothing more, so no URL crate is pulled in.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Ten fresh recovery codes, `xxxx-xxxx-xxxx-xxxx` in lower-case base32.
pub fn generate_recovery_codes() -> Vec<Zeroizing<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let text = BASE32_NOPAD
                .encode(&crate::random::bytes::<RECOVERY_CODE_BYTES>())
                .to_ascii_lowercase();
            Zeroizing::new(
                text.as_bytes()
                    .chunks(4)
                    .map(|chunk| std::str::from_utf8(chunk).expect("base32 is ASCII"))
                    .collect::<Vec<_>>()
                    .join("-"),
            )
        })
        .collect()
}

/// Whether `code` has the shape of a recovery code (rather than a TOTP
/// code): 16 base32 characters, hyphens and spaces aside.
pub fn is_recovery_code(code: &str) -> bool {
    normalize_recovery_code(code).is_some()
}

fn normalize_recovery_code(code: &str) -> Option<String> {
    let normalized: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normalized.len() == RECOVERY_CODE_BYTES * 8 / 5
        && normalized
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    .then_some(normalized)
}

/// What is stored of a recovery code: SHA-256 over the user id and the
/// code as typed without hyphens or case. A code has 80 random bits, so a
/// fast digest suffices (there is no dictionary to try), and the user id
/// makes each account's digests its own. `None` when `code` is not shaped
/// like one.
pub fn recovery_code_digest(user_id: &str, code: &str) -> Option<String> {
    let normalized = normalize_recovery_code(code)?;
    let mut hasher = Sha256::new();
    hasher.update(user_id.as_bytes());
    hasher.update(b":");
    hasher.update(normalized.as_bytes());
    Some(hex::encode(hasher.finalize()))
}

/// The `mfa_token` a login with the right password gets when a second
/// factor is needed: 256 random bits, URL-safe base64, stored only as a
/// SHA-256 digest.
pub struct MfaToken(Zeroizing<String>);

impl MfaToken {
    /// A new token from the OS random source.
    pub fn generate() -> Self {
        use base64::Engine;
        let bytes = Zeroizing::new(crate::random::bytes::<MFA_TOKEN_BYTES>());
        Self(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_slice()),
        ))
    }

    /// A token as presented: `None` unless shaped like one.
    pub fn parse(presented: &str) -> Option<Self> {
        use base64::Engine;
        let presented = presented.trim();
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(presented)
            .ok()?;
        (decoded.len() == MFA_TOKEN_BYTES).then(|| Self(Zeroizing::new(presented.to_owned())))
    }

    /// The token text, for the response.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the server stores.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed: "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";

    /// RFC 6238 appendix B, SHA-1 column: time, 8-digit TOTP. Six digits
    /// are its last six (the modulus only shortens it).
    const RFC_VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let secret = TotpSecret::from_bytes(RFC_SEED);
        for (time, eight_digits) in RFC_VECTORS {
            let expected = &eight_digits[2..];
            let code = format!("{:06}", secret.code_at(step_at(*time) as u64));
            assert_eq!(code, expected, "T = {time}");
            assert_eq!(secret.matching_step(expected, *time), Some(step_at(*time)));
        }
    }

    #[test]
    fn the_rfc_4226_hotp_vectors_hold() {
        // RFC 4226 appendix D, counters 0 to 9.
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        let secret = TotpSecret::from_bytes(RFC_SEED);
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(secret.code_at(counter as u64), *code);
        }
    }

    #[test]
    fn one_step_of_drift_is_accepted_either_way_and_no_more() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = step_at(now);
        let code = |s: i64| format!("{:06}", secret.code_at(s as u64));
        assert_eq!(secret.matching_step(&code(step - 1), now), Some(step - 1));
        assert_eq!(secret.matching_step(&code(step + 1), now), Some(step + 1));
        for far in [step - 2, step + 2] {
            let found = secret.matching_step(&code(far), now);
            // A far code may collide with a near one (1 in 10^6): only
            // then may it match, and at a near step.
            assert!(found.is_none_or(|s| (s - step).abs() <= 1), "{far}");
        }
    }

    #[test]
    fn malformed_codes_match_nothing() {
        let secret = TotpSecret::generate();
        for junk in ["", "12345", "1234567", "abcdef", "12 456", "١٢٣٤٥٦"] {
            assert_eq!(secret.matching_step(junk, 1_700_000_000), None, "{junk}");
        }
    }

    #[test]
    fn the_uri_names_issuer_and_account_and_carries_the_secret() {
        let secret = TotpSecret::from_bytes(RFC_SEED);
        assert_eq!(secret.base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.otpauth_uri("spin auth", "ada@example.com").as_str(),
            "otpauth://totp/spin%20auth:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=spin%20auth&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn a_sealed_secret_opens_for_its_user_and_key_only() {
        let secret = TotpSecret::generate();
        let key = [7u8; 32];
        let stored = secret.seal(&key, "user-1");
        assert!(!stored.contains(secret.base32().as_str()));
        let opened = TotpSecret::open(&key, "user-1", &stored).unwrap();
        assert_eq!(opened.code_at(1), secret.code_at(1));
        assert!(TotpSecret::open(&key, "user-2", &stored).is_none());
        assert!(TotpSecret::open(&[8u8; 32], "user-1", &stored).is_none());
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_read_back_loosely() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut distinct: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let code = codes[0].as_str();
        assert_eq!(code.len(), 19);
        let digest = recovery_code_digest("u", code).unwrap();
        let typed = code.to_ascii_uppercase().replace('-', " ");
        assert_eq!(recovery_code_digest("u", &typed).unwrap(), digest);
        assert_ne!(recovery_code_digest("v", code).unwrap(), digest);
        assert!(recovery_code_digest("u", "123456").is_none());
        assert!(!is_recovery_code("123456"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let secret = TotpSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.base32().as_str()));
        let token = MfaToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
        assert!(MfaToken::parse(token.expose()).is_some());
        assert!(MfaToken::parse("short").is_none());
    }
}
