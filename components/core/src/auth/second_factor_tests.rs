//! The second factor's rules, natively, against the in-memory store.

use super::*;
use crate::auth::login::{Login, SignInOutcome, sign_in};
use crate::auth::testing::{self, CLIENT, PASSWORD, POLICY, settings};
use crate::store::memory::MemoryStore;
use crate::store::{MfaStore, SessionStore, UserStore};

/// A time well inside a 30-second step.
const NOW: Timestamp = 1_700_000_010;

fn key() -> Result<Zeroizing<Vec<u8>>, ApiError> {
    Ok(Zeroizing::new(vec![9u8; 32]))
}

fn stores(store: &MemoryStore) -> SignInStores<'_> {
    testing::stores(store).sign_in()
}

fn with_user() -> (MemoryStore, String) {
    testing::with_user("ada@example.com")
}

fn code(secret: &str, at: Timestamp) -> String {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    let secret = TotpSecret::from_bytes(&bytes);
    format!("{:06}", secret.code_at(totp::step_at(at) as u64))
}

/// A user with TOTP on: the store, the user id, the base32 secret and
/// the recovery codes.
fn enrolled() -> (MemoryStore, String, String, Vec<String>) {
    let (store, id) = with_user();
    let user = store.user_by_id(&id).unwrap().unwrap();
    let enrolment = begin_enrolment(stores(&store), &key, "spin-auth", &user, CLIENT, NOW).unwrap();
    let codes = confirm_enrolment(
        stores(&store),
        &settings(),
        &key,
        &user,
        &code(&enrolment.secret, NOW),
        CLIENT,
        NOW,
    )
    .unwrap();
    let codes = codes.iter().map(|c| c.to_string()).collect();
    (store, id, enrolment.secret.to_string(), codes)
}

fn login(store: &MemoryStore) -> SignInOutcome {
    sign_in(
        stores(store),
        &settings(),
        &POLICY,
        Login {
            email: "ada@example.com",
            password: Password::for_login(PASSWORD).unwrap(),
            client: CLIENT,
        },
        NOW,
    )
    .unwrap()
}

fn mfa_token(store: &MemoryStore) -> String {
    match login(store) {
        SignInOutcome::MfaRequired(token) => token.expose().to_owned(),
        other => panic!("expected mfa_required, got {other:?}"),
    }
}

fn verify_at(
    store: &MemoryStore,
    token: &str,
    code: &str,
    now: Timestamp,
) -> Result<SignedIn, ApiError> {
    verify(
        stores(store),
        &settings(),
        &POLICY,
        &key,
        Verify {
            mfa_token: token,
            code,
            client: CLIENT,
        },
        now,
    )
}

#[test]
fn enrolment_turns_on_only_with_a_right_code() {
    let (store, id) = with_user();
    let user = store.user_by_id(&id).unwrap().unwrap();
    let enrolment = begin_enrolment(stores(&store), &key, "spin-auth", &user, CLIENT, NOW).unwrap();
    assert!(
        enrolment
            .otpauth_uri
            .starts_with("otpauth://totp/spin-auth:ada%40example.com?secret=")
    );
    let wrong = confirm_enrolment(
        stores(&store),
        &settings(),
        &key,
        &user,
        "000000",
        CLIENT,
        NOW,
    );
    // One in a million that 000000 is right.
    if code(&enrolment.secret, NOW) != "000000" {
        assert!(matches!(wrong, Err(ApiError::InvalidMfaCode)));
        assert!(!store.user_by_id(&id).unwrap().unwrap().mfa_enabled);
    }
    let codes = confirm_enrolment(
        stores(&store),
        &settings(),
        &key,
        &user,
        &code(&enrolment.secret, NOW),
        CLIENT,
        NOW,
    )
    .unwrap();
    assert_eq!(codes.len(), 10);
    let user = store.user_by_id(&id).unwrap().unwrap();
    assert!(user.mfa_enabled);
    let again = begin_enrolment(stores(&store), &key, "spin-auth", &user, CLIENT, NOW);
    assert!(matches!(
        again,
        Err(ApiError::Conflict("mfa_already_enabled"))
    ));
}

#[test]
fn confirming_without_an_enrolment_is_a_conflict() {
    let (store, id) = with_user();
    let user = store.user_by_id(&id).unwrap().unwrap();
    let outcome = confirm_enrolment(
        stores(&store),
        &settings(),
        &key,
        &user,
        "123456",
        CLIENT,
        NOW,
    );
    assert!(matches!(
        outcome,
        Err(ApiError::Conflict("mfa_not_pending"))
    ));
}

#[test]
fn with_totp_on_the_right_password_gets_a_token_and_no_session() {
    let (store, id, _, _) = enrolled();
    mfa_token(&store);
    assert!(store.list_sessions(&id, NOW).unwrap().is_empty());
    assert_eq!(
        store.audited.borrow().last().unwrap().0,
        "login_mfa_required"
    );
}

#[test]
fn a_right_code_completes_the_login_once_with_otp_in_amr() {
    let (store, id, secret, _) = enrolled();
    let token = mfa_token(&store);
    // The enrolment used this step's code: the next step's is fresh.
    let later = NOW + 30;
    let signed_in = verify_at(&store, &token, &code(&secret, later), later).unwrap();
    assert_eq!(signed_in.user.id, id);
    assert_eq!(signed_in.amr, &["pwd", "otp"]);
    assert!(store.is_live(&signed_in.session_id, later).unwrap());
    let spent = verify_at(&store, &token, &code(&secret, later + 30), later + 30);
    assert!(matches!(spent, Err(ApiError::InvalidMfaToken)));
}

#[test]
fn a_code_is_accepted_once_in_its_window() {
    let (store, _, secret, _) = enrolled();
    let later = NOW + 30;
    let first = mfa_token(&store);
    verify_at(&store, &first, &code(&secret, later), later).unwrap();
    let second = mfa_token(&store);
    let replayed = verify_at(&store, &second, &code(&secret, later), later + 5);
    assert!(matches!(replayed, Err(ApiError::InvalidMfaCode)));
    // The refused replay did not spend the token.
    verify_at(&store, &second, &code(&secret, later + 30), later + 30).unwrap();
}

#[test]
fn a_recovery_code_works_once() {
    let (store, _, _, codes) = enrolled();
    let token = mfa_token(&store);
    let signed_in = verify_at(&store, &token, &codes[3].to_uppercase(), NOW).unwrap();
    assert_eq!(signed_in.amr, &["pwd", "otp"]);
    let token = mfa_token(&store);
    let reused = verify_at(&store, &token, &codes[3], NOW);
    assert!(matches!(reused, Err(ApiError::InvalidMfaCode)));
    verify_at(&store, &token, &codes[4], NOW).unwrap();
}

#[test]
fn wrong_codes_are_throttled_like_wrong_passwords() {
    let (store, _, secret, _) = enrolled();
    let token = mfa_token(&store);
    let right = code(&secret, NOW + 30);
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..3 {
        let refused = verify_at(&store, &token, wrong, NOW + 30);
        assert!(matches!(refused, Err(ApiError::InvalidMfaCode)));
    }
    let throttled = verify_at(&store, &token, &right, NOW + 30);
    assert!(
        matches!(throttled, Err(ApiError::RateLimited { retry_after }) if retry_after >= 1),
        "{throttled:?}"
    );
}

#[test]
fn a_forged_or_unknown_token_is_refused() {
    let (store, _, secret, _) = enrolled();
    for token in ["", "junk", MfaToken::generate().expose()] {
        let refused = verify_at(&store, token, &code(&secret, NOW + 30), NOW + 30);
        assert!(matches!(refused, Err(ApiError::InvalidMfaToken)), "{token}");
    }
}

#[test]
fn a_password_change_after_the_login_voids_its_token() {
    let (store, id, _, codes) = enrolled();
    let token = mfa_token(&store);
    store
        .change_password_hash(&id, None, "changed", NOW)
        .unwrap();
    let refused = verify_at(&store, &token, &codes[0], NOW);
    assert!(matches!(refused, Err(ApiError::InvalidMfaToken)));
    assert_eq!(store.recovery_codes_left(&id).unwrap(), 10);
}

#[test]
fn a_password_change_racing_the_verification_voids_its_token() {
    let (store, id, _, codes) = enrolled();
    let token = mfa_token(&store);
    let racing = testing::ChangedBeforeRecord(&store);
    let stores = SignInStores {
        users: &racing,
        ..stores(&store)
    };
    let refused = verify(
        stores,
        &settings(),
        &POLICY,
        &key,
        Verify {
            mfa_token: &token,
            code: &codes[0],
            client: CLIENT,
        },
        NOW,
    );
    // The route's own answer for a void pending login, as when the change
    // came before the verification.
    assert!(
        matches!(refused, Err(ApiError::InvalidMfaToken)),
        "{refused:?}"
    );
    assert!(store.list_sessions(&id, NOW).unwrap().is_empty());
}

#[test]
fn a_token_expires_after_five_minutes() {
    let (store, _, secret, _) = enrolled();
    let token = mfa_token(&store);
    let late = NOW + 301;
    let refused = verify_at(&store, &token, &code(&secret, late), late);
    assert!(matches!(refused, Err(ApiError::InvalidMfaToken)));
}

#[test]
fn disabling_needs_the_password_and_voids_the_recovery_codes() {
    let (store, id, _, codes) = enrolled();
    let user = store.user_by_id(&id).unwrap().unwrap();
    let wrong = disable(
        stores(&store),
        &settings(),
        &user,
        &Password::for_login("not the password").unwrap(),
        CLIENT,
        NOW,
    );
    assert!(matches!(wrong, Err(ApiError::InvalidCredentials)));
    assert!(store.user_by_id(&id).unwrap().unwrap().mfa_enabled);
    let token = mfa_token(&store);
    disable(
        stores(&store),
        &settings(),
        &user,
        &Password::for_login(PASSWORD).unwrap(),
        CLIENT,
        NOW,
    )
    .unwrap();
    assert!(!store.user_by_id(&id).unwrap().unwrap().mfa_enabled);
    let voided = verify_at(&store, &token, &codes[0], NOW);
    assert!(matches!(voided, Err(ApiError::InvalidMfaToken)));
    assert!(login(&store).into_signed_in().is_some());
}
