//! Access tokens: JWTs with header `typ: at+jwt` (RFC 9068), signed with
//! HS256 (a shared secret, the default) or EdDSA (Ed25519; the header
//! names the key by `kid`, and the public keys are published as a JWKS).
//!
//! Verification pins the algorithm (a token claiming `none` or another
//! algorithm fails the header check; under EdDSA so does a missing or
//! unknown `kid`), then checks the signature, `typ`,
//! `iss`, `aud`, `exp` and `nbf` with the configured leeway. Whether the
//! session is still live is the caller's next step.

use std::collections::HashSet;

use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use super::SigningKey;
use crate::domain::Role;

/// The `typ` header value of an access token (RFC 9068 section 2.1).
const TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims beyond the registered ones.
#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sid: String,
    roles: Vec<String>,
    /// How the session's login was authenticated (RFC 8176): `["pwd"]`,
    /// or `["pwd", "otp"]` after a second factor.
    #[serde(default)]
    amr: Vec<String>,
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`: the user id.
    pub user_id: String,
    /// `sid`: the session.
    pub session_id: String,
    /// `roles`.
    pub roles: Vec<String>,
}

impl AccessClaims {
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Authentic, but past `exp` (and the leeway).
    Expired,
    /// Anything else; the text is safe to show the client.
    Invalid(&'static str),
}

/// The keys and the claims' expectations.
pub struct AccessKeys {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

impl AccessKeys {
    /// `secret` must already have been checked for length (see
    /// [`crate::config`]).
    pub fn new(secret: &[u8], issuer: &str, audience: &str, leeway_seconds: u64) -> Self {
        Self {
            keys: Keys::Hmac {
                key: HS256Key::from_bytes(secret),
                previous: None,
            },
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds,
        }
    }

    /// Also accepts tokens signed with `previous` (the key before a
    /// rotation); new tokens are still signed with the current key only.
    pub fn with_previous(mut self, previous: Option<&[u8]>) -> Self {
        if let Keys::Hmac { previous: slot, .. } = &mut self.keys {
            *slot = previous.map(HS256Key::from_bytes);
        }
        self
    }

    /// EdDSA: `current` signs; it and `previous` (the key before a
    /// rotation) verify, each chosen by the token's `kid`.
    pub fn ed25519(
        current: SigningKey,
        previous: Option<SigningKey>,
        issuer: &str,
        audience: &str,
        leeway_seconds: u64,
    ) -> Self {
        // The same key set twice (a rotation not yet begun) is one key.
        let previous = previous.filter(|previous| previous.kid() != current.kid());
        let keys: Vec<&SigningKey> = std::iter::once(&current).chain(&previous).collect();
        Self {
            keys: Keys::Ed25519 {
                verifying: keys
                    .iter()
                    .map(|key| (key.kid().to_owned(), key.public_key()))
                    .collect(),
                published: keys.iter().map(|key| key.public_jwk()).collect(),
                current,
            },
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds,
        }
    }

    /// The public keys as a JWK Set (RFC 7517 section 5): the signing key
    /// and, during a rotation, the previous one; none under HS256, whose
    /// key is a secret.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = match &self.keys {
            Keys::Hmac { .. } => Vec::new(),
            Keys::Ed25519 { published, .. } => published.clone(),
        };
        serde_json::json!({ "keys": keys })
    }

    /// The JWS `alg` this service signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.keys {
            Keys::Hmac { .. } => "HS256",
            Keys::Ed25519 { .. } => "EdDSA",
        }
    }

    /// Signs a token for `user_id` in session `session_id`, valid for
    /// `ttl_seconds` from now, for a login by password alone.
    pub fn mint(
        &self,
        user_id: &str,
        session_id: &str,
        roles: &[Role],
        ttl_seconds: u64,
    ) -> anyhow::Result<String> {
        self.mint_with_amr(user_id, session_id, roles, &["pwd"], ttl_seconds)
    }

    /// As [`AccessKeys::mint`], for a login authenticated by the methods
    /// `amr` (RFC 8176 values).
    pub fn mint_with_amr(
        &self,
        user_id: &str,
        session_id: &str,
        roles: &[Role],
        amr: &[&str],
        ttl_seconds: u64,
    ) -> anyhow::Result<String> {
        let custom = SessionClaims {
            sid: session_id.to_owned(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            amr: amr.iter().map(|method| (*method).to_owned()).collect(),
        };
        let claims = Claims::with_custom_claims(custom, Duration::from_secs(ttl_seconds))
            .with_issuer(&self.issuer)
            .with_audience(&self.audience)
            .with_subject(user_id)
            .with_jwt_id(crate::random::uuid().to_string());
        let header = HeaderOptions {
            signature_type: Some(TOKEN_TYPE.to_owned()),
            ..HeaderOptions::default()
        };
        match &self.keys {
            Keys::Hmac { key, .. } => key.authenticate_with_options(claims, &header),
            Keys::Ed25519 { current, .. } => current.key_pair().sign_with_options(claims, &header),
        }
        .map_err(|e| anyhow::anyhow!("cannot sign an access token: {e}"))
    }

    /// Checks `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        let options = VerificationOptions {
            required_signature_type: Some(TOKEN_TYPE.to_owned()),
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(self.leeway_seconds)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            max_header_length: Some(1024),
            ..VerificationOptions::default()
        };
        let claims = match &self.keys {
            Keys::Hmac { key, previous } => {
                let mut verified = key
                    .verify_token::<SessionClaims>(token, Some(options.clone()))
                    .map_err(|error| rejection(&error));
                if let (Err(TokenRejection::Invalid("bad signature")), Some(previous)) =
                    (&verified, previous)
                {
                    verified = previous
                        .verify_token::<SessionClaims>(token, Some(options))
                        .map_err(|error| rejection(&error));
                }
                verified?
            }
            Keys::Ed25519 { verifying, .. } => {
                if token.len() > MAX_TOKEN_BYTES {
                    return Err(TokenRejection::Invalid("malformed token"));
                }
                let metadata = Token::decode_metadata(token)
                    .map_err(|_| TokenRejection::Invalid("malformed token"))?;
                // The algorithm is pinned before any key is looked up: an
                // `HS256` token must not be checked with a public key as
                // its HMAC secret (the classic algorithm confusion).
                if metadata.algorithm() != "EdDSA" {
                    return Err(TokenRejection::Invalid("wrong algorithm"));
                }
                let kid = metadata
                    .key_id()
                    .ok_or(TokenRejection::Invalid("the token names no key"))?;
                let (_, public_key) = verifying
                    .iter()
                    .find(|(known, _)| known == kid)
                    .ok_or(TokenRejection::Invalid("unknown key"))?;
                public_key
                    .verify_token::<SessionClaims>(token, Some(options))
                    .map_err(|error| rejection(&error))?
            }
        };
        // Tokens this service signs always carry these; a token without them
        // was not made here, whatever its signature says.
        let (Some(user_id), Some(_), Some(_)) = (claims.subject, claims.expires_at, claims.jwt_id)
        else {
            return Err(TokenRejection::Invalid("a required claim is missing"));
        };
        Ok(AccessClaims {
            user_id,
            session_id: claims.custom.sid,
            roles: claims.custom.roles,
        })
    }
}

/// The signing and verifying keys of one algorithm.
enum Keys {
    Hmac {
        key: HS256Key,
        previous: Option<HS256Key>,
    },
    Ed25519 {
        current: SigningKey,
        /// Public keys by `kid`: the current key, then the previous one.
        verifying: Vec<(String, Ed25519PublicKey)>,
        /// Their JWKs, as the JWKS publishes them.
        published: Vec<serde_json::Value>,
    },
}

fn rejection(error: &jwt_simple::Error) -> TokenRejection {
    use jwt_simple::JWTError as E;
    let reason = match error.downcast_ref::<E>() {
        Some(E::TokenHasExpired) => return TokenRejection::Expired,
        Some(E::TokenNotValidYet | E::ClockDrift) => "not valid yet",
        Some(E::RequiredIssuerMismatch | E::RequiredIssuerMissing) => "wrong issuer",
        Some(E::RequiredAudienceMismatch | E::RequiredAudienceMissing) => "wrong audience",
        Some(E::RequiredSignatureTypeMismatch) => "wrong token type",
        Some(E::AlgorithmMismatch) => "wrong algorithm",
        Some(E::InvalidAuthenticationTag | E::InvalidSignature) => "bad signature",
        _ => "malformed token",
    };
    TokenRejection::Invalid(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> AccessKeys {
        AccessKeys::new(SECRET, "spin-auth", "spin-auth", 60)
    }

    fn mint() -> String {
        keys()
            .mint("user-1", "session-1", &[Role::User], 900)
            .unwrap()
    }

    fn header(token: &str) -> serde_json::Value {
        let part = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Replaces one claim and re-signs with `secret`, as an attacker who
    /// knows (or guesses) the key would.
    fn forge(header_json: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        use hmac_sha256::HMAC;
        let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let signing_input = format!("{}.{}", encode(&header_json), encode(&claims));
        let signature = URL_SAFE_NO_PAD.encode(HMAC::mac(signing_input.as_bytes(), secret));
        format!("{signing_input}.{signature}")
    }

    fn claims(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_minted_token_has_the_contracted_header_and_claims() {
        let token = mint();
        assert_eq!(header(&token)["typ"], "at+jwt");
        assert_eq!(header(&token)["alg"], "HS256");
        let c = claims(&token);
        for name in [
            "iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "roles",
        ] {
            assert!(c.get(name).is_some(), "missing {name}: {c}");
        }
        assert_eq!(c["roles"], serde_json::json!(["user"]));
        assert_eq!(c["amr"], serde_json::json!(["pwd"]));
        let second = keys()
            .mint_with_amr("u", "s", &[Role::User], &["pwd", "otp"], 900)
            .unwrap();
        assert_eq!(claims(&second)["amr"], serde_json::json!(["pwd", "otp"]));
        let verified = keys().verify(&token).unwrap();
        assert_eq!(verified.user_id, "user-1");
        assert_eq!(verified.session_id, "session-1");
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = AccessKeys::new(
            b"another-key-another-key-another-k",
            "spin-auth",
            "spin-auth",
            60,
        );
        let token = other.mint("u", "s", &[Role::User], 900).unwrap();
        assert_eq!(
            keys().verify(&token),
            Err(TokenRejection::Invalid("bad signature"))
        );
    }

    #[test]
    fn the_previous_key_still_verifies_but_does_not_sign() {
        let old = AccessKeys::new(
            b"the-old-key-the-old-key-the-old-k",
            "spin-auth",
            "spin-auth",
            60,
        );
        let token = old.mint("u", "s", &[Role::User], 900).unwrap();
        let rotated = keys().with_previous(Some(b"the-old-key-the-old-key-the-old-k"));
        assert_eq!(rotated.verify(&token).unwrap().user_id, "u");
        assert!(keys().verify(&token).is_err());
        let fresh = rotated.mint("u", "s", &[Role::User], 900).unwrap();
        assert!(old.verify(&fresh).is_err(), "new tokens use the new key");
    }

    #[test]
    fn alg_none_is_refused() {
        let token = mint();
        let mut h = header(&token);
        h["alg"] = "none".into();
        let forged = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()),
            token.split('.').nth(1).unwrap()
        );
        assert!(matches!(
            keys().verify(&forged),
            Err(TokenRejection::Invalid(_))
        ));
    }

    #[test]
    fn wrong_issuer_audience_and_type_are_refused_even_when_signed() {
        let token = mint();
        let (h, c) = (header(&token), claims(&token));
        let mut wrong_iss = c.clone();
        wrong_iss["iss"] = "someone-else".into();
        assert_eq!(
            keys().verify(&forge(h.clone(), wrong_iss, SECRET)),
            Err(TokenRejection::Invalid("wrong issuer"))
        );
        let mut wrong_aud = c.clone();
        wrong_aud["aud"] = "other-api".into();
        assert_eq!(
            keys().verify(&forge(h.clone(), wrong_aud, SECRET)),
            Err(TokenRejection::Invalid("wrong audience"))
        );
        let mut wrong_typ = h.clone();
        wrong_typ["typ"] = "JWT".into();
        assert_eq!(
            keys().verify(&forge(wrong_typ, c, SECRET)),
            Err(TokenRejection::Invalid("wrong token type"))
        );
    }

    #[test]
    fn expiry_is_reported_apart_from_other_faults() {
        let token = mint();
        let (h, mut c) = (header(&token), claims(&token));
        c["exp"] = (crate::clock::now() - 120).into();
        c["iat"] = (crate::clock::now() - 1000).into();
        c["nbf"] = (crate::clock::now() - 1000).into();
        assert_eq!(
            keys().verify(&forge(h, c, SECRET)),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_from_the_future_is_refused() {
        let token = mint();
        let (h, mut c) = (header(&token), claims(&token));
        c["nbf"] = (crate::clock::now() + 3600).into();
        assert_eq!(
            keys().verify(&forge(h, c, SECRET)),
            Err(TokenRejection::Invalid("not valid yet"))
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJhbGciOiJIUzI1NiJ9..",
            &"A".repeat(10_000),
        ] {
            assert!(keys().verify(junk).is_err(), "{junk:?}");
        }
    }

    fn ed25519(current: &SigningKey, previous: Option<&SigningKey>) -> AccessKeys {
        AccessKeys::ed25519(
            current.clone(),
            previous.cloned(),
            "spin-auth",
            "spin-auth",
            60,
        )
    }

    #[test]
    fn an_eddsa_token_names_its_key_and_verifies() {
        let key = SigningKey::generate();
        let keys = ed25519(&key, None);
        let token = keys
            .mint("user-1", "session-1", &[Role::User], 900)
            .unwrap();
        let h = header(&token);
        assert_eq!(
            (h["alg"].as_str(), h["typ"].as_str()),
            (Some("EdDSA"), Some("at+jwt"))
        );
        assert_eq!(h["kid"], key.kid());
        assert_eq!(keys.verify(&token).unwrap().user_id, "user-1");
        assert_eq!(keys.jwks()["keys"][0]["kid"], key.kid());
        assert_eq!(keys.algorithm(), "EdDSA");
        assert_eq!(super::tests::keys().jwks(), serde_json::json!({"keys": []}));
    }

    #[test]
    fn a_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let (old, new) = (SigningKey::generate(), SigningKey::generate());
        let before = ed25519(&old, None)
            .mint("u", "s", &[Role::User], 900)
            .unwrap();
        let rotated = ed25519(&new, Some(&old));
        assert_eq!(rotated.verify(&before).unwrap().user_id, "u");
        let after = rotated.mint("u", "s", &[Role::User], 900).unwrap();
        assert_eq!(header(&after)["kid"], new.kid());
        let published: Vec<_> = rotated.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(published, [new.kid(), old.kid()]);
        // Once the previous key is dropped, its tokens are unknown.
        assert_eq!(
            ed25519(&new, None).verify(&before),
            Err(TokenRejection::Invalid("unknown key"))
        );
    }

    #[test]
    fn under_eddsa_hs256_a_missing_kid_and_a_forged_kid_are_refused() {
        let key = SigningKey::generate();
        let keys = ed25519(&key, None);
        let token = keys.mint("u", "s", &[Role::User], 900).unwrap();
        let (h, c) = (header(&token), claims(&token));
        // An HS256 token keyed with the public key (algorithm confusion).
        let mut hs = h.clone();
        hs["alg"] = "HS256".into();
        let public = key.public_key().to_bytes();
        assert_eq!(
            keys.verify(&forge(hs, c.clone(), &public)),
            Err(TokenRejection::Invalid("wrong algorithm"))
        );
        let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let signature = token.rsplit('.').next().unwrap();
        let mut no_kid = h.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut other_kid = h.clone();
        other_kid["kid"] = SigningKey::generate().kid().into();
        for (header_json, why) in [
            (no_kid, "the token names no key"),
            (other_kid, "unknown key"),
        ] {
            let forged = format!("{}.{}.{signature}", encode(&header_json), encode(&c));
            assert_eq!(keys.verify(&forged), Err(TokenRejection::Invalid(why)));
        }
        // A token signed by another Ed25519 key that claims our kid.
        let impostor =
            AccessKeys::ed25519(SigningKey::generate(), None, "spin-auth", "spin-auth", 60)
                .mint("u", "s", &[Role::User], 900)
                .unwrap();
        let mut claimed = header(&impostor);
        claimed["kid"] = key.kid().into();
        let parts: Vec<&str> = impostor.split('.').collect();
        let relabelled = format!("{}.{}.{}", encode(&claimed), parts[1], parts[2]);
        assert_eq!(
            keys.verify(&relabelled),
            Err(TokenRejection::Invalid("bad signature"))
        );
        // And an HS256 service does not take an EdDSA token.
        assert!(super::tests::keys().verify(&token).is_err());
    }
}
