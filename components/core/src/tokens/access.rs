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
/// The same media type written in full, which verifiers accept too
/// (RFC 9068 section 4).
const FULL_TOKEN_TYPE: &str = "application/at+jwt";
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
        self.verify_within(token, self.leeway_seconds)
    }

    /// Checks `token` as [`AccessKeys::verify`] does, with `max_age` seconds
    /// of leeway on its times instead of the usual: one that expired up to
    /// then still proves which session it was issued in, though it opens
    /// nothing any more. (Its `nbf` and `iat` get the same leeway; only the
    /// key's holder could set them ahead, and all such a token can do is
    /// end its own live session.)
    pub fn verify_expired(
        &self,
        token: &str,
        max_age: u64,
    ) -> Result<AccessClaims, TokenRejection> {
        self.verify_within(token, max_age.max(self.leeway_seconds))
    }

    /// Checks `token`, with `tolerance` seconds of leeway on its times.
    fn verify_within(&self, token: &str, tolerance: u64) -> Result<AccessClaims, TokenRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::Invalid("malformed token"));
        }
        let metadata = Token::decode_metadata(token)
            .map_err(|_| TokenRejection::Invalid("malformed token"))?;
        let typ = metadata.signature_type().unwrap_or_default();
        if !typ.eq_ignore_ascii_case(TOKEN_TYPE) && !typ.eq_ignore_ascii_case(FULL_TOKEN_TYPE) {
            return Err(TokenRejection::Invalid("wrong token type"));
        }
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(tolerance)),
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
        Some(E::AlgorithmMismatch) => "wrong algorithm",
        Some(E::InvalidAuthenticationTag | E::InvalidSignature) => "bad signature",
        _ => "malformed token",
    };
    TokenRejection::Invalid(reason)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
