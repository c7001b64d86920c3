//! Ed25519 signing keys (`jwt_algorithm = EdDSA`): read from PKCS#8 PEM,
//! named by their RFC 7638 JWK thumbprint (the `kid` of every token they
//! sign), and published as RFC 8037 `OKP` JWKs so that anyone can verify
//! tokens without holding a secret.
//!
//! The signatures themselves come from `jwt-simple`'s EdDSA (the
//! `ed25519-compact` crate), the same JWT library that does HS256 here, so
//! both algorithms share one verification path and no new dependency.

use jwt_simple::prelude::*;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// An Ed25519 key pair and its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    key_pair: Ed25519KeyPair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    /// The public `kid` only: the private half never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &"EdDSA")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as
    /// `openssl genpkey -algorithm ed25519` writes it). The error is safe
    /// to show the operator: it never repeats the key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key_pair = Ed25519KeyPair::from_pem(pem.trim()).map_err(|_| {
            "is not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)".to_owned()
        })?;
        Ok(Self::named(key_pair))
    }

    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        Self::named(Ed25519KeyPair::generate())
    }

    fn named(key_pair: Ed25519KeyPair) -> Self {
        // RFC 7638: the SHA-256 thumbprint of the public JWK's required
        // members. It is stable for a key and differs between keys, so a
        // verifier can pick the key (or notice a rotation) from `kid` alone.
        let kid = key_pair.public_key().jwk_thumbprint();
        Self {
            key_pair: key_pair.with_key_id(&kid),
            kid,
        }
    }

    /// The key as PKCS#8 PEM, to keep a generated key.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key_pair.to_pem())
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key pair, for signing (its `kid` goes into the header).
    pub(crate) fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key_pair
    }

    /// The public key, for verification.
    pub(crate) fn public_key(&self) -> Ed25519PublicKey {
        self.key_pair.public_key()
    }

    /// The public key as a JWK (RFC 7517, RFC 8037 section 2).
    pub fn public_jwk(&self) -> Value {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public_key().to_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 appendix A.1: the example Ed25519 private key, here wrapped
    /// in PKCS#8 (the 16-byte PKCS#8 prefix, then the 32-byte seed).
    const RFC8037_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint_of_the_public_jwk() {
        let key = SigningKey::from_pem(RFC8037_PEM).unwrap();
        // RFC 8037 appendix A.2 (public key) and A.3 (its thumbprint).
        assert_eq!(
            key.public_jwk()["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jwk = key.public_jwk();
        assert_eq!(
            (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
            (
                &json!("OKP"),
                &json!("Ed25519"),
                &json!("EdDSA"),
                &json!("sig")
            )
        );
        assert!(jwk.get("d").is_none(), "no private part is published");
    }

    #[test]
    fn a_generated_key_survives_its_pem_and_keys_differ() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_ne!(key.kid(), SigningKey::generate().kid());
    }

    #[test]
    fn other_keys_and_junk_are_refused_without_echoing_them() {
        // An EC P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
        let p256 = "-----BEGIN PRIVATE KEY-----\n\
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgeGn+SsjFFef0TLtU\n\
            5beBOQ7jLVLBjAadfHiUxJqmDcChRANCAAR+TaxZRzr495yRWH8boSaFH/QQlrK4\n\
            lwhRHVLHddPlT/JJHeQaGg5fU8GsEcoUJxCvyDmR/zpRPBDLpsv2Y5T9\n\
            -----END PRIVATE KEY-----\n";
        for junk in [
            "",
            "secret-secret",
            p256,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----",
        ] {
            let error = SigningKey::from_pem(junk).unwrap_err();
            assert!(error.contains("PKCS#8"), "{error}");
            assert!(!error.contains("secret-secret"));
        }
    }
}
