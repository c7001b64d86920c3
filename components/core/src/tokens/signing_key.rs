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

/// The Ed25519 algorithm identifier, 1.3.101.112 (RFC 8410 section 3).
const ED25519_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
/// A PKCS#8 v1 Ed25519 key up to the seed: the one DER form the signing
/// library reads, so keys in other forms are re-encoded to it.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

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
    /// `openssl genpkey -algorithm ed25519` writes it, or version 2 with
    /// the public key included). The error is safe to show the operator:
    /// it never repeats the key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        const NOT_A_KEY: &str =
            "is not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)";
        use pkcs8::der::Decode;
        let (label, document) =
            pkcs8::SecretDocument::from_pem(pem.trim()).map_err(|_| NOT_A_KEY.to_owned())?;
        let info = pkcs8::PrivateKeyInfo::from_der(document.as_bytes())
            .map_err(|_| NOT_A_KEY.to_owned())?;
        if label != "PRIVATE KEY" || info.algorithm.oid != ED25519_OID {
            return Err(NOT_A_KEY.to_owned());
        }
        // RFC 8410 section 7: the private key is an OCTET STRING holding
        // the 32-byte seed.
        let seed = match info.private_key {
            [0x04, 0x20, seed @ ..] if seed.len() == 32 => seed,
            _ => return Err(NOT_A_KEY.to_owned()),
        };
        let mut v1 = zeroize::Zeroizing::new(PKCS8_V1_PREFIX.to_vec());
        v1.extend_from_slice(seed);
        let key_pair = Ed25519KeyPair::from_der(&v1).map_err(|_| NOT_A_KEY.to_owned())?;
        // A version 2 key also states its public key: it must be this one.
        if let Some(public) = info.public_key
            && public != key_pair.public_key().to_bytes().as_slice()
        {
            return Err("holds a public key that does not belong to its private key".to_owned());
        }
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

    /// The key as PKCS#8 (v1) PEM, to keep a generated key.
    pub fn to_pem(&self) -> Zeroizing<String> {
        use pkcs8::der::pem::{LineEnding, encode_string};
        let der = Zeroizing::new(self.key_pair.to_der());
        Zeroizing::new(
            encode_string("PRIVATE KEY", LineEnding::LF, &der).expect("a short key encodes"),
        )
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

    /// The same key as PKCS#8 v2 (RFC 5958), with its public key, as
    /// `ed25519-dalek` and some key services write it.
    #[test]
    fn a_version_2_key_reads_the_same_and_a_wrong_public_key_is_refused() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let public =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        let v2 = |public: &[u8]| {
            let mut der = hex::decode("3051020101300506032b657004220420").unwrap();
            der.extend_from_slice(&seed);
            der.extend_from_slice(&[0x81, 0x21, 0x00]);
            der.extend_from_slice(public);
            let body = STANDARD.encode(der);
            let (first, rest) = body.split_at(64);
            format!("-----BEGIN PRIVATE KEY-----\n{first}\n{rest}\n-----END PRIVATE KEY-----\n")
        };
        let key = SigningKey::from_pem(&v2(&public)).unwrap();
        assert_eq!(key.kid(), SigningKey::from_pem(RFC8037_PEM).unwrap().kid());
        let mut wrong = public.clone();
        wrong[0] ^= 1;
        assert!(
            SigningKey::from_pem(&v2(&wrong))
                .unwrap_err()
                .contains("does not belong")
        );
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
