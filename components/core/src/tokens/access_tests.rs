//! Access tokens: minting, verification and every refusal, natively.

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
    for typ in [Some("JWT"), Some("application/jwt"), Some("at+jwt+x"), None] {
        let mut wrong_typ = h.clone();
        match typ {
            Some(typ) => wrong_typ["typ"] = typ.into(),
            None => drop(wrong_typ.as_object_mut().unwrap().remove("typ")),
        }
        assert_eq!(
            keys().verify(&forge(wrong_typ, c.clone(), SECRET)),
            Err(TokenRejection::Invalid("wrong token type")),
            "{typ:?}"
        );
    }
}

/// RFC 9068 section 4: `at+jwt`, in any case, or the media type in full.
#[test]
fn the_token_type_may_be_written_in_full() {
    let token = mint();
    let (h, c) = (header(&token), claims(&token));
    for typ in ["application/at+jwt", "Application/AT+JWT", "AT+JWT"] {
        let mut full = h.clone();
        full["typ"] = typ.into();
        assert!(
            keys().verify(&forge(full, c.clone(), SECRET)).is_ok(),
            "{typ}"
        );
    }
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
fn an_expired_token_still_names_its_session_for_a_while_if_it_is_genuine() {
    let token = mint();
    let (h, mut c) = (header(&token), claims(&token));
    c["exp"] = (crate::clock::now() - 1000).into();
    c["iat"] = (crate::clock::now() - 1900).into();
    c["nbf"] = (crate::clock::now() - 1900).into();
    let expired = forge(h.clone(), c.clone(), SECRET);
    let claims = keys().verify_expired(&expired, 3600).unwrap();
    assert_eq!(claims.session_id, "session-1");
    assert_eq!(
        keys().verify_expired(&expired, 600),
        Err(TokenRejection::Expired)
    );
    assert_eq!(
        keys().verify_expired(&forge(h, c, b"another key, another key, another"), 3600),
        Err(TokenRejection::Invalid("bad signature"))
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
    let impostor = AccessKeys::ed25519(SigningKey::generate(), None, "spin-auth", "spin-auth", 60)
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
