//! The recovery rules, natively: links are single use and short-lived, a
//! reset ends every session, and an unknown address sends nothing.

use super::*;
use crate::auth::testing::{CLIENT, PASSWORD, audited, log_in, settings, stores, with_user};
use crate::store::memory::MemoryStore;
use crate::store::{SessionStore, UserStore};

const NEW: &str = "a brand new passphrase";

/// The token of the newest queued message's link.
fn last_link_token(store: &MemoryStore) -> LinkToken {
    let outbox = store.outbox.borrow();
    let text = &outbox.last().expect("a message was queued").text;
    let start = text.find("token=").unwrap() + "token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    LinkToken::parse(&token).unwrap()
}

fn email(address: &str) -> Email {
    Email::parse(address).unwrap()
}

#[test]
fn a_verification_link_verifies_once() {
    let (store, id) = with_user("root@example.com");
    let session = "00000000-0000-4000-8000-000000000001";
    request_verification(stores(&store), &settings(), &id, session, CLIENT, 100).unwrap();
    let token = last_link_token(&store);
    let (user, roles) = verify_email(stores(&store), &settings(), &token, CLIENT, 110).unwrap();
    assert!(user.email_verified);
    // Now proven, the address in admin_emails makes an admin.
    assert_eq!(roles, vec![Role::User, Role::Admin]);
    let again = verify_email(stores(&store), &settings(), &token, CLIENT, 111);
    assert!(matches!(again, Err(ApiError::InvalidLink)));
    let requested = request_verification(stores(&store), &settings(), &id, session, CLIENT, 112);
    assert!(matches!(
        requested,
        Err(ApiError::Conflict("already_verified"))
    ));
}

#[test]
fn a_verification_link_expires_after_a_day() {
    let (store, id) = with_user("ada@example.com");
    let session = "00000000-0000-4000-8000-000000000001";
    request_verification(stores(&store), &settings(), &id, session, CLIENT, 100).unwrap();
    let token = last_link_token(&store);
    let late = 100 + VERIFY_LINK_SECONDS;
    let outcome = verify_email(stores(&store), &settings(), &token, CLIENT, late);
    assert!(matches!(outcome, Err(ApiError::InvalidLink)));
}

#[test]
fn a_reset_sets_the_password_and_ends_every_session() {
    let (store, id) = with_user("ada@example.com");
    let login = |password: &str| log_in(&store, "ada@example.com", password, 100);
    let before = login(PASSWORD).unwrap();
    let sent = send_reset_link(
        stores(&store),
        &settings().mail,
        &email("ada@example.com"),
        CLIENT,
        100,
    );
    assert!(sent.unwrap());
    let token = last_link_token(&store);

    // A password the policy refuses does not cost the link.
    let weak = reset_password(stores(&store), &token, "short", CLIENT, 110);
    assert!(matches!(weak, Err(ApiError::Validation(_))));
    reset_password(stores(&store), &token, NEW, CLIENT, 110).unwrap();

    assert!(!store.is_live(&before.session_id, 110).unwrap());
    assert!(matches!(login(PASSWORD), Err(ApiError::InvalidCredentials)));
    login(NEW).unwrap();
    assert!(store.user_by_id(&id).unwrap().unwrap().email_verified);
    let reused = reset_password(
        stores(&store),
        &token,
        "yet another passphrase",
        CLIENT,
        120,
    );
    assert!(matches!(reused, Err(ApiError::InvalidLink)));
    assert_eq!(
        audited(&store)
            .iter()
            .filter(|e| *e == "password_reset")
            .count(),
        1
    );
}

#[test]
fn a_newer_reset_link_voids_the_older_one() {
    let (store, _) = with_user("ada@example.com");
    let ada = email("ada@example.com");
    send_reset_link(stores(&store), &settings().mail, &ada, CLIENT, 100).unwrap();
    let older = last_link_token(&store);
    send_reset_link(stores(&store), &settings().mail, &ada, CLIENT, 101).unwrap();
    let newer = last_link_token(&store);
    let outcome = reset_password(stores(&store), &older, NEW, CLIENT, 110);
    assert!(matches!(outcome, Err(ApiError::InvalidLink)));
    reset_password(stores(&store), &newer, NEW, CLIENT, 110).unwrap();
}

#[test]
fn an_unknown_address_gets_no_mail() {
    let (store, _) = with_user("ada@example.com");
    let unknown = email("bob@example.com");
    let sent = send_reset_link(stores(&store), &settings().mail, &unknown, CLIENT, 100);
    assert!(!sent.unwrap());
    assert!(store.outbox.borrow().is_empty());
}

#[test]
fn reset_requests_are_limited_per_address() {
    let store = MemoryStore::default();
    let ada = email("ada@example.com");
    for _ in 0..RESETS_PER_EMAIL_PER_HOUR {
        admit_reset_request(stores(&store), &ada, "203.0.113.7").unwrap();
    }
    let refused = admit_reset_request(stores(&store), &ada, "198.51.100.1");
    assert!(matches!(refused, Err(ApiError::RateLimited { .. })));
    admit_reset_request(stores(&store), &email("bob@example.com"), "203.0.113.7").unwrap();
}
