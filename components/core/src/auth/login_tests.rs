//! The login rules, natively, against the in-memory store.

use super::*;
use crate::auth::testing::{self, CLIENT, PASSWORD, POLICY, settings, with_user};
use crate::store::memory::MemoryStore;

fn stores(store: &MemoryStore) -> SignInStores<'_> {
    testing::stores(store).sign_in()
}

fn login<'a>(email: &'a str, password: &str) -> Login<'a> {
    Login {
        email,
        password: Password::for_login(password).unwrap(),
        client: CLIENT,
    }
}

#[test]
fn the_right_password_starts_a_live_session() {
    let (store, id) = with_user("ada@example.com");
    let signed_in = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login(" Ada@Example.com ", PASSWORD),
        100,
    )
    .unwrap()
    .into_signed_in()
    .unwrap();
    assert_eq!(signed_in.user.id, id);
    assert_eq!(signed_in.roles, vec![Role::User]);
    assert!(store.is_live(&signed_in.session_id, 100).unwrap());
    assert_eq!(store.audited.borrow().last().unwrap().0, "login_succeeded");
}

#[test]
fn an_unknown_email_and_a_wrong_password_are_refused_alike() {
    let (store, id) = with_user("ada@example.com");
    let unknown = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login("bob@example.com", PASSWORD),
        100,
    );
    let wrong = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login("ada@example.com", "not the password"),
        100,
    );
    assert!(matches!(unknown, Err(ApiError::InvalidCredentials)));
    assert!(matches!(wrong, Err(ApiError::InvalidCredentials)));
    // Only the trail tells them apart: the account a wrong password was
    // for.
    let audited = store.audited.borrow();
    assert_eq!(
        *audited,
        [
            ("login_failed".to_owned(), None),
            ("login_failed".to_owned(), Some(id))
        ]
    );
}

#[test]
fn after_the_free_attempts_even_the_right_password_waits() {
    let (store, _) = with_user("ada@example.com");
    for _ in 0..3 {
        let failed = sign_in(
            stores(&store),
            &settings(),
            &POLICY,
            login("ada@example.com", "a wrong guess"),
            100,
        );
        assert!(matches!(failed, Err(ApiError::InvalidCredentials)));
    }
    let throttled = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login("ada@example.com", PASSWORD),
        100,
    );
    assert!(matches!(throttled, Err(ApiError::RateLimited { retry_after }) if retry_after >= 1));
}

#[test]
fn admin_emails_grant_admin_to_a_verified_address_only() {
    let (store, id) = with_user("root@example.com");
    let before = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login("root@example.com", PASSWORD),
        100,
    )
    .unwrap()
    .into_signed_in()
    .unwrap();
    assert_eq!(before.roles, vec![Role::User]);
    store.mark_email_verified(&id, 100).unwrap();
    let after = sign_in(
        stores(&store),
        &settings(),
        &POLICY,
        login("root@example.com", PASSWORD),
        100,
    )
    .unwrap()
    .into_signed_in()
    .unwrap();
    assert_eq!(after.roles, vec![Role::User, Role::Admin]);
}

#[test]
fn an_unverified_address_gets_no_session_when_verification_is_required() {
    let (store, id) = with_user("ada@example.com");
    let settings = AuthSettings {
        require_verified_email: true,
        ..settings()
    };
    let refused = sign_in(
        stores(&store),
        &settings,
        &POLICY,
        login("ada@example.com", PASSWORD),
        100,
    );
    assert!(matches!(refused, Err(ApiError::EmailNotVerified)));
    assert!(store.list_sessions(&id, 100).unwrap().is_empty());
}

#[test]
fn a_login_overtaken_by_a_password_change_keeps_no_session() {
    let (store, id) = with_user("ada@example.com");
    let racing = testing::ChangedBeforeRecord(&store);
    let stores = SignInStores {
        users: &racing,
        ..stores(&store)
    };
    let outcome = sign_in(
        stores,
        &settings(),
        &POLICY,
        login("ada@example.com", PASSWORD),
        100,
    );
    assert!(
        matches!(outcome, Err(ApiError::InvalidCredentials)),
        "{outcome:?}"
    );
    assert!(store.list_sessions(&id, 100).unwrap().is_empty());
    // Neither the time of a login nor its success was recorded.
    let user = store.user_by_id(&id).unwrap().unwrap();
    assert_eq!(user.last_login_at, None);
    let events = testing::audited(&store);
    assert!(
        !events.iter().any(|event| event == "login_succeeded"),
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("login_failed"));
}
