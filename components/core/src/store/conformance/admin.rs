//! The conformance cases of the administration: the user listing, changes
//! guarded by the last-admin rule, deletion, and the audit listing.

use super::*;
use crate::domain::Role;
use crate::store::{AuditEvent, AuditQuery, Guarded, UserChange, UserPage};

pub(super) fn users_listed(subject: &Subject<'_>) -> CaseResult {
    let tag = &fresh_id()[..8];
    for name in ["b", "a", "c"] {
        new_user_named(subject, &format!("{tag}-{name}@conformance.example.com"))?;
    }
    let prefix = format!("{tag}-");
    let page = |after: Option<&str>| {
        let users = store(subject.directory.list_users(&UserPage {
            prefix: &prefix,
            after,
            limit: 2,
        }))?;
        Ok::<_, String>(
            users
                .into_iter()
                .map(|user| user.email.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
    };
    let first = page(None)?;
    let expected = [
        format!("{tag}-a@conformance.example.com"),
        format!("{tag}-b@conformance.example.com"),
    ];
    ensure(first == expected, || format!("first page: {first:?}"))?;
    let rest = page(Some(&expected[1]))?;
    ensure(rest == [format!("{tag}-c@conformance.example.com")], || {
        format!("second page: {rest:?}")
    })
}

fn change(roles: Option<Vec<Role>>, disabled: Option<bool>) -> UserChange {
    UserChange { roles, disabled }
}

/// Expects `outcome` to be [`Guarded::LastAdmin`] (`refused`) or done.
fn expect(outcome: Guarded<crate::domain::User>, refused: bool, what: &str) -> CaseResult {
    let was_refused = matches!(outcome, Guarded::LastAdmin);
    ensure(
        was_refused == refused && !matches!(outcome, Guarded::NotFound),
        || format!("{what}: {outcome:?}"),
    )
}

/// Needs a database without admins of its own (a fresh one), and leaves
/// it so.
pub(super) fn changes_keep_an_admin(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let directory = subject.directory;
    let none: &[Email] = &[];
    let (a, _) = new_user(subject)?;
    let (b, _) = new_user(subject)?;
    let admin = || change(Some(vec![Role::User, Role::Admin]), None);
    let user = || change(Some(vec![Role::User]), None);
    let granted = store(directory.change_user(&a, &admin(), none, now))?;
    ensure(
        matches!(&granted, Guarded::Done(u) if u.granted_roles == [Role::User, Role::Admin]),
        || format!("granting admin: {granted:?}"),
    )?;
    let demoted = store(directory.change_user(&a, &user(), none, now))?;
    expect(demoted, true, "demoting the only admin")?;
    let disabled = store(directory.change_user(&a, &change(None, Some(true)), none, now))?;
    expect(disabled, true, "disabling the only admin")?;
    let ended = std::cell::Cell::new(0);
    let end_sessions = || {
        ended.set(ended.get() + 1);
        Ok(())
    };
    let deleted = store(directory.delete_user(&a, none, &end_sessions))?;
    expect(deleted, true, "deleting the only admin")?;
    ensure(ended.get() == 0, || {
        "a refused deletion ended the admin's sessions".to_owned()
    })?;
    let deletable = store(directory.deletable(&a, none))?;
    expect(deletable, true, "the only admin as deletable")?;

    expect(
        store(directory.change_user(&b, &admin(), none, now))?,
        false,
        "a second admin",
    )?;
    let before = store(subject.users.credentials(&a))?.ok_or("no credentials")?;
    let disable = change(None, Some(true));
    let disabled = store(directory.change_user(&a, &disable, none, now))?;
    ensure(matches!(&disabled, Guarded::Done(u) if u.disabled), || {
        format!("disabling one of two admins: {disabled:?}")
    })?;
    let after = store(subject.users.credentials(&a))?.ok_or("no credentials")?;
    ensure(after.version == before.version + 1, || {
        format!(
            "disabling took the version from {} to {}",
            before.version, after.version
        )
    })?;
    let stored = store(subject.users.user_by_id(&a))?.ok_or("no user")?;
    ensure(stored.disabled, || "the user is not disabled".to_owned())?;
    // A disabled admin is no admin: the other is now the last.
    expect(
        store(directory.change_user(&b, &user(), none, now))?,
        true,
        "the last enabled admin",
    )?;
    let enabled = store(directory.change_user(&a, &change(None, Some(false)), none, now))?;
    ensure(matches!(&enabled, Guarded::Done(u) if !u.disabled), || {
        format!("enabling: {enabled:?}")
    })?;
    // Leave no admin behind: with a third user an admin by configuration,
    // both grants can go.
    let (c, c_email) = new_user(subject)?;
    store(subject.users.mark_email_verified(&c, now))?;
    let configured = std::slice::from_ref(&c_email);
    for id in [&a, &b] {
        let outcome = store(directory.change_user(id, &user(), configured, now))?;
        expect(outcome, false, "dropping a grant beside a configured admin")?;
    }
    // Taking `admin` from the configured admin withholds it (until a login).
    let withheld = store(directory.change_user(&c, &user(), configured, now))?;
    expect(
        withheld,
        true,
        "withholding admin from the only (configured) admin",
    )?;
    let unknown = store(directory.change_user(&fresh_id(), &user(), none, now))?;
    ensure(matches!(unknown, Guarded::NotFound), || {
        format!("an unknown user: {unknown:?}")
    })
}

pub(super) fn deletion(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (session, first) = new_session(subject, &user, now)?;
    let (_, current) = rotate(subject, &first.digest(), now)?;
    store(subject.sessions.forget_user(&user))?;
    ensure(!store(subject.sessions.is_live(&session, now))?, || {
        "a forgotten user's session is live".to_owned()
    })?;
    for token in [&first, &current] {
        let owner = store(subject.sessions.session_of_token(&token.digest(), now))?;
        ensure(owner.is_none(), || {
            format!("a forgotten token has an owner: {owner:?}")
        })?;
    }
    let (rotation, _) = rotate(subject, &current.digest(), now)?;
    ensure(matches!(rotation, Rotation::Invalid), || {
        format!("a forgotten token rotated: {rotation:?}")
    })?;
    let ended = std::cell::Cell::new(0);
    let end_sessions = || {
        ended.set(ended.get() + 1);
        Ok(())
    };
    let deleted = store(subject.directory.delete_user(&user, &[], &end_sessions))?;
    ensure(matches!(&deleted, Guarded::Done(u) if u.id == user), || {
        format!("deleting: {deleted:?}")
    })?;
    ensure(ended.get() == 1, || {
        format!("a deletion ended the sessions {} times", ended.get())
    })?;
    // Sessions that cannot be ended leave the user in place.
    let (kept, _) = new_user(subject)?;
    let refused = subject.directory.delete_user(&kept, &[], &|| {
        Err(crate::store::StoreError::Unavailable(
            crate::store::Store::Sessions,
            "down".into(),
        ))
    });
    ensure(refused.is_err(), || format!("deleted anyway: {refused:?}"))?;
    ensure(store(subject.users.user_by_id(&kept))?.is_some(), || {
        "a user whose sessions could not end was deleted".to_owned()
    })?;
    ensure(store(subject.users.user_by_id(&user))?.is_none(), || {
        "a deleted user is found".to_owned()
    })?;
    let again = store(subject.directory.delete_user(&user, &[], &|| Ok(())))?;
    ensure(matches!(again, Guarded::NotFound), || {
        format!("deleting twice: {again:?}")
    })
}

pub(super) fn audit_listing(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    for event in ["first", "second", "first"] {
        store(subject.audit.record(&AuditEvent {
            event,
            user_id: Some(&user),
            session_id: None,
            ip: "127.0.0.1",
            user_agent: "conformance",
            detail: Some("case"),
            at: now,
        }))?;
    }
    let list = |event: Option<&str>, before: Option<i64>| {
        store(subject.audit.list(&AuditQuery {
            user_id: Some(&user),
            event,
            before,
            limit: 10,
        }))
    };
    let all = list(None, None)?;
    let names: Vec<&str> = all.iter().map(|record| record.event.as_str()).collect();
    ensure(names == ["first", "second", "first"], || {
        format!("all: {names:?}")
    })?;
    ensure(all.windows(2).all(|pair| pair[0].id > pair[1].id), || {
        format!("not newest first: {all:?}")
    })?;
    let firsts = list(Some("first"), None)?;
    ensure(firsts.len() == 2, || format!("by event: {firsts:?}"))?;
    let older = list(None, Some(all[1].id))?;
    ensure(older.len() == 1 && older[0].id == all[2].id, || {
        format!("before a cursor: {older:?}")
    })
}

/// The events named `event` of `user_id`, newest first.
fn events_of(
    subject: &Subject<'_>,
    user_id: &str,
    event: &str,
) -> Result<Vec<crate::store::AuditRecord>, String> {
    store(subject.audit.list(&AuditQuery {
        user_id: Some(user_id),
        event: Some(event),
        before: None,
        limit: 10,
    }))
}

pub(super) fn read_with_event(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let none: &[Email] = &[];
    let (user, email) = new_user(subject)?;
    let event = |user_id| AuditEvent {
        event: "read_with_event",
        user_id: Some(user_id),
        session_id: Some("session"),
        ip: "127.0.0.1",
        user_agent: "conformance",
        detail: None,
        at: now,
    };
    let recorded = |user_id: &str| events_of(subject, user_id, "read_with_event");
    let read = in_one_statement(subject, "reading an account with an event", || {
        subject.users.user_by_id_audited(&user, &event(&user))
    })?;
    let read = store(read)?;
    ensure(
        read.as_ref().is_some_and(|read| read.email == email),
        || format!("enabled: read {read:?}"),
    )?;
    let events = recorded(&user)?;
    ensure(
        events.len() == 1 && events[0].session_id.as_deref() == Some("session"),
        || format!("enabled: recorded {events:?}"),
    )?;

    store(
        subject
            .directory
            .change_user(&user, &change(None, Some(true)), none, now),
    )?;
    let read = store(subject.users.user_by_id_audited(&user, &event(&user)))?;
    ensure(read.as_ref().is_some_and(|read| read.disabled), || {
        format!("disabled: read {read:?}")
    })?;
    let events = recorded(&user)?;
    ensure(events.len() == 1, || {
        format!("disabled: recorded {events:?}")
    })?;

    let gone = fresh_id();
    let read = store(subject.users.user_by_id_audited(&gone, &event(&gone)))?;
    ensure(read.is_none(), || format!("gone: read {read:?}"))?;
    let events = recorded(&gone)?;
    ensure(events.is_empty(), || format!("gone: recorded {events:?}"))
}

pub(super) fn login_recorded(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let checked = store(subject.users.credentials(&user))?
        .ok_or("no credentials")?
        .version;
    let event = |user_id, at| AuditEvent {
        event: "login_recorded",
        user_id: Some(user_id),
        session_id: Some("session"),
        ip: "192.0.2.7",
        user_agent: "conformance",
        detail: Some("amr=pwd"),
        at,
    };
    let recorded = |user_id: &str| events_of(subject, user_id, "login_recorded");
    let read = || store(subject.users.user_by_id(&user))?.ok_or("no user".to_owned());
    // A withholding of `admin` that the login is to end (set directly:
    // the directory withholds only beside another admin).
    if let Some(database) = subject.database {
        store(database.execute(
            "UPDATE users SET admin_withheld = 1 WHERE id = $1",
            &[user.as_str().into()],
        ))?;
    }

    let current = in_one_statement(subject, "recording a login", || {
        subject
            .users
            .record_login(&user, checked, &event(&user, now))
    })?;
    let current = store(current)?;
    ensure(current == Some(checked), || {
        format!("unchanged: version {current:?}, checked {checked}")
    })?;
    let after = read()?;
    ensure(
        after.last_login_at == Some(now) && !after.admin_withheld,
        || format!("unchanged: {after:?}"),
    )?;
    let events = recorded(&user)?;
    ensure(
        events.len() == 1
            && events[0].at == now
            && events[0].user_id.as_deref() == Some(user.as_str())
            && events[0].session_id.as_deref() == Some("session")
            && events[0].ip == "192.0.2.7"
            && events[0].user_agent == "conformance"
            && events[0].detail.as_deref() == Some("amr=pwd"),
        || format!("unchanged: recorded {events:?}"),
    )?;

    store(
        subject
            .users
            .change_password_hash(&user, None, "hash-2", now),
    )?;
    let later = now + 1_000;
    let current = store(
        subject
            .users
            .record_login(&user, checked, &event(&user, later)),
    )?;
    ensure(current == Some(checked + 1), || {
        format!("changed: version {current:?}, checked {checked}")
    })?;
    let after = read()?;
    ensure(after.last_login_at == Some(now), || {
        format!("changed: last login {:?}", after.last_login_at)
    })?;
    let events = recorded(&user)?;
    ensure(events.len() == 1, || {
        format!("changed: recorded {events:?}")
    })?;

    let gone = fresh_id();
    let current = store(subject.users.record_login(&gone, 0, &event(&gone, now)))?;
    ensure(current.is_none(), || format!("gone: version {current:?}"))?;
    let events = recorded(&gone)?;
    ensure(events.is_empty(), || format!("gone: recorded {events:?}"))
}
