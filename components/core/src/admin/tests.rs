use super::*;
use crate::auth::testing::{CLIENT, PASSWORD, log_in, settings, stores, with_user};
use crate::error::ApiError;
use crate::store::memory::MemoryStore;
use crate::store::{AuditLog, SessionStore, UserStore};

const ADMIN: &str = "root@example.com";

fn admin_emails() -> Vec<Email> {
    vec![Email::parse(ADMIN).unwrap()]
}

/// A store with a configured (verified) admin and a user; their ids.
fn with_admin_and_user() -> (MemoryStore, String, String) {
    let (store, user) = with_user("ada@example.com");
    let admin = crate::auth::testing::add_user(&store, ADMIN);
    store.mark_email_verified(&admin, 1).unwrap();
    (store, admin, user)
}

fn actor(admin_id: &str) -> Actor<'_> {
    Actor {
        admin_id,
        session_id: "admin-session",
        client: CLIENT,
    }
}

fn change(roles: Option<Vec<Role>>, disabled: Option<bool>) -> UserChange {
    UserChange { roles, disabled }
}

#[test]
fn only_an_active_admin_may_act() {
    let (store, admin, user) = with_admin_and_user();
    require_admin(stores(&store), &admin_emails(), &admin).unwrap();
    let refused = require_admin(stores(&store), &admin_emails(), &user);
    assert!(matches!(refused, Err(ApiError::Forbidden)));
    // Without the configuration, the same account is no admin.
    let refused = require_admin(stores(&store), &[], &admin);
    assert!(matches!(refused, Err(ApiError::Forbidden)));
}

#[test]
fn a_granted_role_is_in_force_and_persists() {
    let (store, admin, user) = with_admin_and_user();
    let emails = admin_emails();
    let granted = change(Some(vec![Role::Admin]), None);
    let changed = change_user(stores(&store), &emails, actor(&admin), &user, &granted, 5).unwrap();
    assert_eq!(roles_for(&changed, &emails), vec![Role::User, Role::Admin]);
    require_admin(stores(&store), &emails, &user).unwrap();
    let signed_in = log_in(&store, "ada@example.com", PASSWORD, 10).unwrap();
    assert_eq!(signed_in.roles, vec![Role::User, Role::Admin]);
    let event = &store.audited.borrow().last().cloned().unwrap();
    assert_eq!(event.0, "login_succeeded");
    let updates = store
        .list(&AuditQuery {
            user_id: Some(&user),
            event: Some("admin_user_updated"),
            before: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(updates.len(), 1);
    assert!(updates[0].detail.as_deref().unwrap().contains(&admin));
}

#[test]
fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let (store, admin, user) = with_admin_and_user();
    let emails = admin_emails();
    for refused in [
        change(Some(vec![Role::User]), None),
        change(None, Some(true)),
    ] {
        let outcome = change_user(stores(&store), &emails, actor(&admin), &admin, &refused, 3);
        assert!(
            matches!(outcome, Err(ApiError::Conflict("last_admin"))),
            "{refused:?}"
        );
    }
    let outcome = delete_user(stores(&store), &emails, actor(&admin), &admin, 3);
    assert!(matches!(outcome, Err(ApiError::Conflict("last_admin"))));
    require_admin(stores(&store), &emails, &admin).unwrap();
    // With a second admin, the first may lose the role, even though the
    // configuration lists the address: until the next login.
    let grant = change(Some(vec![Role::Admin]), None);
    change_user(stores(&store), &emails, actor(&admin), &user, &grant, 4).unwrap();
    let demote = change(Some(vec![Role::User]), None);
    let demoted = change_user(stores(&store), &emails, actor(&user), &admin, &demote, 5).unwrap();
    assert_eq!(roles_for(&demoted, &emails), vec![Role::User]);
    let refused = require_admin(stores(&store), &emails, &admin);
    assert!(matches!(refused, Err(ApiError::Forbidden)));
    let signed_in = log_in(&store, ADMIN, PASSWORD, 6).unwrap();
    assert_eq!(signed_in.roles, vec![Role::User, Role::Admin]);
    require_admin(stores(&store), &emails, &admin).unwrap();
}

#[test]
fn disabling_ends_every_session_and_refuses_the_next_login() {
    let (store, admin, user) = with_admin_and_user();
    let emails = admin_emails();
    let first = log_in(&store, "ada@example.com", PASSWORD, 10).unwrap();
    let second = log_in(&store, "ada@example.com", PASSWORD, 11).unwrap();
    let disable = change(None, Some(true));
    let changed = change_user(stores(&store), &emails, actor(&admin), &user, &disable, 12).unwrap();
    assert!(changed.disabled);
    for session in [&first, &second] {
        assert!(!store.is_live(&session.session_id, 13).unwrap());
    }
    let refused = log_in(&store, "ada@example.com", PASSWORD, 14);
    assert!(matches!(refused, Err(ApiError::AccountDisabled)));
    let wrong = log_in(&store, "ada@example.com", "not the password", 14);
    assert!(matches!(wrong, Err(ApiError::InvalidCredentials)));
    let enable = change(None, Some(false));
    change_user(stores(&store), &emails, actor(&admin), &user, &enable, 15).unwrap();
    log_in(&store, "ada@example.com", PASSWORD, 16).unwrap();
}

#[test]
fn a_login_checked_before_the_account_was_disabled_starts_no_session() {
    let (store, admin, user) = with_admin_and_user();
    let before = store.credentials(&user).unwrap().unwrap();
    let disable = change(None, Some(true));
    change_user(
        stores(&store),
        &admin_emails(),
        actor(&admin),
        &user,
        &disable,
        12,
    )
    .unwrap();
    let after = store.credentials(&user).unwrap().unwrap();
    assert_ne!(before.version, after.version);
}

#[test]
fn deletion_removes_the_account_and_its_sessions_and_keeps_the_audit_trail() {
    let (store, admin, user) = with_admin_and_user();
    let signed_in = log_in(&store, "ada@example.com", PASSWORD, 10).unwrap();
    delete_user(stores(&store), &admin_emails(), actor(&admin), &user, 11).unwrap();
    assert!(store.user_by_id(&user).unwrap().is_none());
    assert!(!store.is_live(&signed_in.session_id, 12).unwrap());
    assert!(store.list_sessions(&user, 12).unwrap().is_empty());
    let again = delete_user(stores(&store), &admin_emails(), actor(&admin), &user, 13);
    assert!(matches!(again, Err(ApiError::NotFound("not_found"))));
    let trail = store
        .list(&AuditQuery {
            user_id: Some(&user),
            event: None,
            before: None,
            limit: 100,
        })
        .unwrap();
    assert_eq!(trail[0].event, "admin_user_deleted");
    assert!(trail.iter().any(|event| event.event == "login_succeeded"));
}

#[test]
fn user_pages_follow_email_order_and_say_when_more_follow() {
    let (store, _, _) = with_admin_and_user();
    for name in ["page-c", "page-a", "page-b", "other"] {
        crate::auth::testing::add_user(&store, &format!("{name}@example.com"));
    }
    let (first, more) = list_users(stores(&store), "page-", None, 2).unwrap();
    let emails: Vec<&str> = first.iter().map(|user| user.email.as_str()).collect();
    assert_eq!(emails, ["page-a@example.com", "page-b@example.com"]);
    assert!(more);
    let (rest, more) = list_users(stores(&store), "page-", Some(emails[1]), 2).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].email.as_str(), "page-c@example.com");
    assert!(!more);
}

#[test]
fn audit_pages_are_newest_first_and_stable_under_inserts() {
    let (store, _, user) = with_admin_and_user();
    for at in 0..5 {
        log_in(&store, "ada@example.com", PASSWORD, 100 + at).unwrap();
    }
    let query = |before| AuditQuery {
        user_id: Some(&user),
        event: Some("login_succeeded"),
        before,
        limit: 2,
    };
    let (first, more) = list_audit(stores(&store), &query(None)).unwrap();
    assert!(more);
    assert!(first[0].id > first[1].id);
    log_in(&store, "ada@example.com", PASSWORD, 200).unwrap();
    let mut seen: Vec<i64> = first.iter().map(|event| event.id).collect();
    let mut before = seen.last().copied();
    loop {
        let (page, more) = list_audit(stores(&store), &query(before)).unwrap();
        seen.extend(page.iter().map(|event| event.id));
        before = page.last().map(|event| event.id);
        if !more {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let _ = settings();
}
