//! The session rules, natively: rotation, grace, reuse, logout scopes and
//! revocation, against the in-memory store.

use super::*;
use crate::auth::login::SignedIn;
use crate::auth::testing::{
    CLIENT, PASSWORD, POLICY, audited, log_in, settings, stores, with_user,
};
use crate::store::memory::MemoryStore;
use crate::store::{SessionStore, UserDirectory, UserStore};

fn signed_in(store: &MemoryStore, email: &str, now: Timestamp) -> SignedIn {
    log_in(store, email, PASSWORD, now).unwrap()
}

fn refreshed(
    store: &MemoryStore,
    token: &RefreshToken,
    now: Timestamp,
) -> Result<Refreshed, ApiError> {
    let presented = RefreshToken::parse(token.expose()).unwrap();
    refresh(stores(store), &settings(), &POLICY, presented, CLIENT, now)
}

#[test]
fn a_refresh_retires_the_token_for_a_new_one() {
    let (store, id) = with_user("ada@example.com");
    let first = signed_in(&store, "ada@example.com", 100);
    let second = refreshed(&store, &first.refresh_token, 110).unwrap();
    assert_eq!(second.user.id, id);
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    assert_eq!(audited(&store).last().unwrap(), "refresh");
    // The new token works in turn.
    let third = refreshed(&store, &second.refresh_token, 120).unwrap();
    assert_ne!(third.refresh_token.expose(), second.refresh_token.expose());
}

#[test]
fn a_retired_token_within_the_grace_window_leads_to_the_current_one() {
    let (store, _) = with_user("ada@example.com");
    let first = signed_in(&store, "ada@example.com", 100);
    let second = refreshed(&store, &first.refresh_token, 110).unwrap();
    let third = refreshed(&store, &second.refresh_token, 115).unwrap();
    // Two rotations behind, inside the window: the session's current token.
    let replayed = refreshed(&store, &first.refresh_token, 120).unwrap();
    assert_eq!(
        replayed.refresh_token.expose(),
        third.refresh_token.expose()
    );
    assert!(store.is_live(&first.session_id, 120).unwrap());
}

#[test]
fn a_retired_token_after_the_grace_window_revokes_the_session() {
    let (store, _) = with_user("ada@example.com");
    let first = signed_in(&store, "ada@example.com", 100);
    let second = refreshed(&store, &first.refresh_token, 110).unwrap();
    let late = 110 + POLICY.reuse_grace as i64 + 1;
    let reused = refreshed(&store, &first.refresh_token, late);
    assert!(
        matches!(reused, Err(ApiError::RefreshTokenReused)),
        "{reused:?}"
    );
    assert!(!store.is_live(&first.session_id, late).unwrap());
    assert_eq!(audited(&store).last().unwrap(), "refresh_token_reused");
    // The thief's victim loses the session too: that is the point.
    let current = refreshed(&store, &second.refresh_token, late);
    assert!(matches!(current, Err(ApiError::InvalidRefreshToken)));
}

#[test]
fn an_unknown_token_refreshes_nothing() {
    let (store, _) = with_user("ada@example.com");
    let outcome = refreshed(&store, &RefreshToken::generate(), 100);
    assert!(matches!(outcome, Err(ApiError::InvalidRefreshToken)));
}

#[test]
fn roles_are_read_afresh_at_each_refresh() {
    let (store, id) = with_user("root@example.com");
    let first = signed_in(&store, "root@example.com", 100);
    assert_eq!(first.roles, vec![Role::User]);
    store.mark_email_verified(&id, 105).unwrap();
    let second = refreshed(&store, &first.refresh_token, 110).unwrap();
    assert_eq!(second.roles, vec![Role::User, Role::Admin]);
}

#[test]
fn a_disabled_account_is_not_refreshed_and_its_session_ends() {
    let (store, id) = with_user("ada@example.com");
    let first = signed_in(&store, "ada@example.com", 100);
    let none: &[crate::domain::Email] = &[];
    let disable = crate::store::UserChange {
        roles: None,
        disabled: Some(true),
    };
    store.change_user(&id, &disable, none, 105).unwrap();
    let refused = refreshed(&store, &first.refresh_token, 110);
    assert!(matches!(refused, Err(ApiError::InvalidRefreshToken)));
    assert!(!audited(&store).contains(&"refresh".to_owned()));
    assert!(store.list_sessions(&id, 110).unwrap().is_empty());
}

fn logged_out(
    store: &MemoryStore,
    token: &RefreshToken,
    scope: Scope,
    now: Timestamp,
) -> LoggedOut {
    let proof = Proof::RefreshToken(token);
    log_out(stores(store), &settings(), proof, scope, CLIENT, now).unwrap()
}

#[test]
fn logout_scopes_end_this_session_the_others_or_all() {
    let (store, _) = with_user("ada@example.com");
    let [a, b, c] = [100, 101, 102].map(|now| signed_in(&store, "ada@example.com", now));
    let live = |s: &SignedIn| store.is_live(&s.session_id, 200).unwrap();

    assert_eq!(
        logged_out(&store, &a.refresh_token, Scope::Local, 200),
        LoggedOut::Ended
    );
    assert!(!live(&a) && live(&b) && live(&c));

    assert_eq!(
        logged_out(&store, &b.refresh_token, Scope::Others, 200),
        LoggedOut::Ended
    );
    assert!(live(&b) && !live(&c));

    let d = signed_in(&store, "ada@example.com", 150);
    assert_eq!(
        logged_out(&store, &d.refresh_token, Scope::Global, 200),
        LoggedOut::Ended
    );
    assert!(!live(&b) && !live(&d));
    // Logging out again finds nothing to end, and is no error.
    assert_eq!(
        logged_out(&store, &d.refresh_token, Scope::Local, 200),
        LoggedOut::NoSession
    );
}

#[test]
fn a_stolen_token_at_logout_ends_only_its_own_session() {
    let (store, _) = with_user("ada@example.com");
    let victim = signed_in(&store, "ada@example.com", 100);
    let other = signed_in(&store, "ada@example.com", 100);
    refreshed(&store, &victim.refresh_token, 110).unwrap();
    let late = 110 + POLICY.reuse_grace as i64 + 1;
    let outcome = logged_out(&store, &victim.refresh_token, Scope::Global, late);
    assert_eq!(outcome, LoggedOut::StolenTokenRevoked);
    assert!(!store.is_live(&victim.session_id, late).unwrap());
    assert!(
        store.is_live(&other.session_id, late).unwrap(),
        "scope ignored"
    );
    assert_eq!(audited(&store).last().unwrap(), "refresh_token_reused");
}

#[test]
fn a_bearer_session_can_log_out() {
    let (store, id) = with_user("ada@example.com");
    let session = signed_in(&store, "ada@example.com", 100);
    let proof = Proof::Session {
        user_id: &id,
        session_id: &session.session_id,
    };
    let outcome = log_out(
        stores(&store),
        &settings(),
        proof,
        Scope::Local,
        CLIENT,
        110,
    );
    assert_eq!(outcome.unwrap(), LoggedOut::Ended);
    assert!(!store.is_live(&session.session_id, 110).unwrap());
}

#[test]
fn only_a_sessions_own_user_can_revoke_it() {
    let (store, ada) = with_user("ada@example.com");
    let theirs = signed_in(&store, "ada@example.com", 100);
    let stranger = crate::random::uuid().to_string();
    for (user, session) in [
        (stranger.as_str(), theirs.session_id.as_str()),
        (ada.as_str(), "not-an-id"),
        (ada.as_str(), "00000000-0000-4000-8000-000000000000"),
    ] {
        let outcome = revoke_session(stores(&store), user, session, CLIENT, 110);
        assert!(
            matches!(outcome, Err(ApiError::NotFound("session_not_found"))),
            "{user} {session}: {outcome:?}"
        );
    }
    assert!(store.is_live(&theirs.session_id, 110).unwrap());
    let upper = theirs.session_id.to_uppercase();
    revoke_session(stores(&store), &ada, &upper, CLIENT, 110).unwrap();
    assert!(!store.is_live(&theirs.session_id, 110).unwrap());
    assert_eq!(audited(&store).last().unwrap(), "session_revoked");
    assert!(list_sessions(stores(&store), &ada, 110).unwrap().is_empty());
}
