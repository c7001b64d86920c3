//! The pure part: a JWK Set read once, and a token checked against it. No
//! I/O here, so every rule is tested natively.

use std::collections::HashSet;

use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, TokenClaims};

/// The `typ` of a spin-auth access token (RFC 9068 section 2.1).
const TOKEN_TYPE: &str = "at+jwt";
/// The same media type written in full, accepted too (RFC 9068 section 4).
const FULL_TOKEN_TYPE: &str = "application/at+jwt";
/// Tokens longer than this are refused before parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Ed25519 public keys by `kid`.
pub struct KeySet {
    keys: Vec<(String, Ed25519PublicKey)>,
}

impl KeySet {
    /// Reads a JWKS document. Keys that are not Ed25519 signing keys with a
    /// `kid` are skipped (a set may hold keys for other uses); a document
    /// that is not a JWKS is an error.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| format!("not a JWK Set: {e}"))?;
        let keys = document
            .keys
            .iter()
            .filter(|jwk| jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519")
            .filter(|jwk| jwk.get("use").is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let kid = jwk["kid"].as_str()?.to_owned();
                let key = Ed25519PublicKey::from_jwk(&jwk.to_string()).ok()?;
                Some((kid, key))
            })
            .collect();
        Ok(Self { keys })
    }

    /// Whether the set has the key `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|(known, _)| known == kid)
    }

    /// Checks `token` with the key its header names.
    pub fn verify(&self, token: &str, expect: &Expectations<'_>) -> Result<TokenClaims, Error> {
        let kid = key_id(token)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| known == kid.as_str())
            .ok_or(Error::InvalidToken("unknown key"))?;
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([expect.issuer.to_owned()])),
            allowed_audiences: Some(HashSet::from([expect.audience.to_owned()])),
            time_tolerance: Some(Duration::from_secs(expect.leeway_seconds)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            max_header_length: Some(1024),
            ..VerificationOptions::default()
        };
        let claims = key
            .verify_token::<SessionClaims>(token, Some(options))
            .map_err(|error| rejection(&error))?;
        let (Some(subject), Some(expires_at)) = (claims.subject, claims.expires_at) else {
            return Err(Error::InvalidToken("a required claim is missing"));
        };
        Ok(TokenClaims {
            subject,
            session_id: claims.custom.sid,
            roles: claims.custom.roles,
            token_id: claims.jwt_id,
            expires_at: expires_at.as_secs(),
        })
    }
}

/// What a token must say besides its signature.
pub struct Expectations<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_seconds: u64,
}

/// The key a token names, once its algorithm and type are checked: only
/// `EdDSA` access tokens with a `kid`. Read before any key is fetched, so
/// junk costs no request.
pub fn key_id(token: &str) -> Result<String, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::InvalidToken("malformed token"));
    }
    let metadata =
        Token::decode_metadata(token).map_err(|_| Error::InvalidToken("malformed token"))?;
    // Pinned: an HS256 token must never be checked with a public key as
    // its HMAC secret.
    if metadata.algorithm() != "EdDSA" {
        return Err(Error::InvalidToken("wrong algorithm"));
    }
    let typ = metadata.signature_type().unwrap_or_default();
    if !typ.eq_ignore_ascii_case(TOKEN_TYPE) && !typ.eq_ignore_ascii_case(FULL_TOKEN_TYPE) {
        return Err(Error::InvalidToken("wrong token type"));
    }
    metadata
        .key_id()
        .map(str::to_owned)
        .ok_or(Error::InvalidToken("the token names no key"))
}

/// spin-auth's claims beyond the registered ones.
#[derive(Serialize, Deserialize)]
struct SessionClaims {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn rejection(error: &jwt_simple::Error) -> Error {
    use jwt_simple::JWTError as E;
    let reason = match error.downcast_ref::<E>() {
        Some(E::TokenHasExpired) => return Error::Expired,
        Some(E::TokenNotValidYet | E::ClockDrift) => "not valid yet",
        Some(E::RequiredIssuerMismatch | E::RequiredIssuerMissing) => "wrong issuer",
        Some(E::RequiredAudienceMismatch | E::RequiredAudienceMissing) => "wrong audience",
        Some(E::AlgorithmMismatch) => "wrong algorithm",
        Some(E::InvalidSignature) => "bad signature",
        _ => "malformed token",
    };
    Error::InvalidToken(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: Expectations<'static> = Expectations {
        issuer: "spin-auth",
        audience: "spin-auth",
        leeway_seconds: 60,
    };

    /// A key pair, its JWKS, and a token signed as spin-auth signs one.
    fn issue(claims: JWTClaims<SessionClaims>, typ: &str) -> (Ed25519KeyPair, Vec<u8>, String) {
        let key = Ed25519KeyPair::generate();
        let kid = key.public_key().jwk_thumbprint();
        let key = key.with_key_id(&kid);
        let mut jwk: serde_json::Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
        jwk["kid"] = kid.into();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": [jwk] })).unwrap();
        let header = HeaderOptions {
            signature_type: Some(typ.to_owned()),
            ..HeaderOptions::default()
        };
        let token = key.sign_with_options(claims, &header).unwrap();
        (key, jwks, token)
    }

    fn claims(issuer: &str, audience: &str) -> JWTClaims<SessionClaims> {
        let custom = SessionClaims {
            sid: Some("session-1".into()),
            roles: vec!["user".into()],
        };
        Claims::with_custom_claims(custom, Duration::from_mins(15))
            .with_issuer(issuer)
            .with_audience(audience)
            .with_subject("user-1")
            .with_jwt_id("jti-1")
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let (_, jwks, token) = issue(claims("spin-auth", "spin-auth"), TOKEN_TYPE);
        let verified = KeySet::parse(&jwks)
            .unwrap()
            .verify(&token, &EXPECT)
            .unwrap();
        assert_eq!(verified.subject, "user-1");
        assert_eq!(verified.session_id.as_deref(), Some("session-1"));
        assert_eq!(verified.roles, ["user"]);
    }

    #[test]
    fn issuer_audience_type_and_tampering_are_checked() {
        let (_, jwks, wrong_iss) = issue(claims("other", "spin-auth"), TOKEN_TYPE);
        let set = KeySet::parse(&jwks).unwrap();
        assert_eq!(
            set.verify(&wrong_iss, &EXPECT).unwrap_err(),
            Error::InvalidToken("wrong issuer")
        );
        let (_, jwks, wrong_aud) = issue(claims("spin-auth", "other"), TOKEN_TYPE);
        let set = KeySet::parse(&jwks).unwrap();
        assert_eq!(
            set.verify(&wrong_aud, &EXPECT).unwrap_err(),
            Error::InvalidToken("wrong audience")
        );
        let (_, jwks, wrong_typ) = issue(claims("spin-auth", "spin-auth"), "JWT");
        let set = KeySet::parse(&jwks).unwrap();
        assert_eq!(
            set.verify(&wrong_typ, &EXPECT).unwrap_err(),
            Error::InvalidToken("wrong token type")
        );
        let (_, jwks, full_typ) = issue(claims("spin-auth", "spin-auth"), FULL_TOKEN_TYPE);
        let set = KeySet::parse(&jwks).unwrap();
        assert!(set.verify(&full_typ, &EXPECT).is_ok());
        let (_, jwks, token) = issue(claims("spin-auth", "spin-auth"), TOKEN_TYPE);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        let tampered = parts.join(".");
        let set = KeySet::parse(&jwks).unwrap();
        assert!(matches!(
            set.verify(&tampered, &EXPECT),
            Err(Error::InvalidToken(_))
        ));
    }

    #[test]
    fn an_unknown_kid_hs256_and_junk_are_refused() {
        let (_, jwks, _) = issue(claims("spin-auth", "spin-auth"), TOKEN_TYPE);
        let (_, _, other) = issue(claims("spin-auth", "spin-auth"), TOKEN_TYPE);
        let set = KeySet::parse(&jwks).unwrap();
        assert_eq!(
            set.verify(&other, &EXPECT).unwrap_err(),
            Error::InvalidToken("unknown key")
        );
        let hs = HS256Key::generate()
            .authenticate(claims("spin-auth", "spin-auth"))
            .unwrap();
        assert_eq!(
            key_id(&hs).unwrap_err(),
            Error::InvalidToken("wrong algorithm")
        );
        for junk in ["", "a.b.c", &"A".repeat(10_000)] {
            assert!(set.verify(junk, &EXPECT).is_err());
        }
        assert!(KeySet::parse(b"{\"nope\": 1}").is_err());
    }
}
