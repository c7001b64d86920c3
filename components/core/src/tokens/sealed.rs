//! Sealing a short secret under a key: the one AEAD construction this
//! service uses, for refresh token successors and TOTP secrets alike.
//!
//! HKDF-SHA-256 (RFC 5869) derives a 256-bit key from the key material and
//! a context label; ChaCha20-Poly1305 (RFC 8439) encrypts and authenticates
//! the message under a random 96-bit nonce, with associated data that binds
//! the ciphertext to its place (so it cannot be moved elsewhere and still
//! open). The text is `v1.` and the URL-safe base64 of nonce and
//! ciphertext.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// ChaCha20-Poly1305's nonce size (RFC 8439 section 2.8).
const NONCE_BYTES: usize = 12;
/// Prefix of a sealed text in the current format.
pub const SEAL_VERSION: &str = "v1.";

fn cipher(key_material: &[u8], context: &[u8]) -> ChaCha20Poly1305 {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, key_material)
        .expand(context, key.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    ChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
}

/// `message` encrypted under a key derived from `key_material` for
/// `context`, authenticated together with `associated`.
pub fn seal(key_material: &[u8], context: &[u8], associated: &[u8], message: &[u8]) -> String {
    let nonce = crate::random::bytes::<NONCE_BYTES>();
    let sealed = cipher(key_material, context)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: message,
                aad: associated,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message this short");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    format!("{SEAL_VERSION}{}", URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] made with the same key material, context and
/// associated data; `None` for anything else, tampered texts included.
pub fn open(
    key_material: &[u8],
    context: &[u8],
    associated: &[u8],
    sealed: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    let sealed = URL_SAFE_NO_PAD
        .decode(sealed.strip_prefix(SEAL_VERSION)?)
        .ok()?;
    if sealed.len() <= NONCE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    cipher(key_material, context)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: associated,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_only_with_the_same_key_context_and_place() {
        let sealed = seal(b"key", b"context", b"user-1", b"secret");
        assert_eq!(
            open(b"key", b"context", b"user-1", &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(open(b"other", b"context", b"user-1", &sealed).is_none());
        assert!(open(b"key", b"other", b"user-1", &sealed).is_none());
        assert!(open(b"key", b"context", b"user-2", &sealed).is_none());
        assert!(open(b"key", b"context", b"user-1", "v1.").is_none());
        assert!(open(b"key", b"context", b"user-1", "junk").is_none());
    }
}
