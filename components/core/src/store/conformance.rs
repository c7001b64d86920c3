//! One conformance suite for the store traits: the same cases, run against
//! every backend through the real host interfaces (a test component calls
//! [`run`] on PostgreSQL, SQLite and Redis under the local host), so a new
//! backend or a new method is proven the same way.
//!
//! Each case starts from fresh ids and states what every backend must do.
//! Times are passed in, so grace windows are crossed without waiting.

mod admin;
mod mail;
mod mfa;

use crate::clock::{self, Timestamp};
use crate::domain::Email;
use crate::store::sql::{Dialect, SqlStore};
use crate::store::{
    AuditLog, CounterStore, Credentials, MfaChallenge, MfaStore, NewSession, NewUser, Outbox,
    Rotation, SessionPolicy, SessionStore, UserDirectory, UserStore,
};
use crate::tokens::{RefreshToken, TokenDigest};

/// The stores under test.
pub struct Subject<'a> {
    /// Users (always the SQL database).
    pub users: &'a dyn UserStore,
    /// Sessions and refresh tokens.
    pub sessions: &'a dyn SessionStore,
    /// Throttling counters.
    pub counters: &'a dyn CounterStore,
    /// Second-factor data (always the SQL database).
    pub mfa: &'a dyn MfaStore,
    /// The administration's view of the users (always the SQL database).
    pub directory: &'a dyn UserDirectory,
    /// The audit trail (always the SQL database).
    pub audit: &'a dyn AuditLog,
    /// The mail outbox (always the SQL database).
    pub outbox: &'a dyn Outbox,
    /// The SQL database behind the stores above, where there is one: the
    /// cases count its round trips where a path promises one statement.
    pub database: Option<&'a SqlStore>,
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The rule, as a sentence.
    pub case: &'static str,
    /// Why it failed; `None` when it held.
    pub failure: Option<String>,
}

type CaseResult = Result<(), String>;

/// A rule and the check that it holds.
type Case = (&'static str, fn(&Subject<'_>) -> CaseResult);

/// Every case, in order.
const CASES: &[Case] = &[
    (
        "a user is found by email and id, and a taken email is refused",
        users_are_found,
    ),
    (
        "a password change bumps the credentials' version; an upgrade does not, and loses to a change",
        credentials_version,
    ),
    (
        "a new session is live and listed",
        sessions_are_live_and_listed,
    ),
    (
        "rotation makes the replacement current and retires the presented token",
        rotation,
    ),
    (
        "a retired token within the grace window leads to the current token",
        replay_within_grace,
    ),
    (
        "a retired token after the grace window revokes the whole session",
        reuse_after_grace,
    ),
    ("an unknown token is invalid", unknown_token),
    ("only a session's own user can revoke it, once", revoke_one),
    (
        "revoking all but one session leaves exactly that one",
        revoke_all_but_one,
    ),
    (
        "counters count within a window, forgive, clear and settle only their own keys",
        counters,
    ),
    (
        "a session's amr survives rotation and replay",
        mfa::amr_survives_rotation,
    ),
    (
        "a pending TOTP secret is replaced until it is turned on, then kept; the user shows mfa_enabled",
        mfa::totp_enrolment,
    ),
    (
        "a TOTP step is accepted once, and no earlier step after it",
        mfa::totp_steps_once,
    ),
    (
        "a recovery code is used once, and disabling TOTP voids the rest",
        mfa::recovery_codes_once,
    ),
    (
        "a second-factor challenge is taken once, and not after it expires",
        mfa::challenges_once,
    ),
    (
        "second-factor rows for a deleted user are refused as gone",
        mfa::writes_for_a_deleted_user_are_gone,
    ),
    (
        "users are listed by email prefix in byte order, page after page",
        admin::users_listed,
    ),
    (
        "a change sets roles and disabled, disabling bumps the credentials' version, and the last admin stays",
        admin::changes_keep_an_admin,
    ),
    (
        "forgetting a user ends their sessions and tokens; deleting removes the user once",
        admin::deletion,
    ),
    (
        "the audit trail is listed newest first, by user and event, before a cursor",
        admin::audit_listing,
    ),
    (
        "an account read with an event records it for an enabled account only",
        admin::read_with_event,
    ),
    (
        "a login is recorded, with its event, only while the password is the one checked",
        admin::login_recorded,
    ),
    (
        "an outbox message is claimed by one instance at a time, not again before its retry time, and never once delivered",
        mail::outbox_claims,
    ),
];

/// Runs every case against `subject`.
pub fn run(subject: &Subject<'_>) -> Vec<Outcome> {
    CASES
        .iter()
        .map(|(case, check)| Outcome {
            case,
            failure: check(subject).err(),
        })
        .collect()
}

const POLICY: SessionPolicy = SessionPolicy {
    refresh_ttl: 3_600,
    reuse_grace: 30,
    max_lifetime: 86_400,
};

fn fresh_id() -> String {
    crate::random::uuid().to_string()
}

/// Runs `operation` and, on PostgreSQL, checks that it made exactly one
/// round trip (`what` names it); elsewhere it only runs it.
fn in_one_statement<T>(
    subject: &Subject<'_>,
    what: &str,
    operation: impl FnOnce() -> T,
) -> Result<T, String> {
    let Some(database) = subject
        .database
        .filter(|database| database.dialect() == Dialect::Postgres)
    else {
        return Ok(operation());
    };
    let before = database.calls();
    let value = operation();
    let calls = database.calls() - before;
    ensure(calls == 1, || {
        format!("{what}: {calls} statements on PostgreSQL, not one")
    })?;
    Ok(value)
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> CaseResult {
    if condition { Ok(()) } else { Err(what()) }
}

fn store<T>(result: crate::store::StoreResult<T>) -> Result<T, String> {
    result.map_err(|error| format!("store error: {error:?}"))
}

/// A new user; returns its id and email.
fn new_user(subject: &Subject<'_>) -> Result<(String, Email), String> {
    let id = fresh_id();
    new_user_named(subject, &format!("{}@conformance.example.com", &id[..8]))
}

/// A new user with this email; returns its id and email.
fn new_user_named(subject: &Subject<'_>, email: &str) -> Result<(String, Email), String> {
    let id = fresh_id();
    let email = Email::parse(email).map_err(|e| e.to_owned())?;
    let created = store(subject.users.insert_user(&NewUser {
        id: &id,
        email: &email,
        password_hash: "hash-0",
        first_name: None,
        last_name: None,
        created_at: clock::now(),
    }))?;
    ensure(created, || "a fresh user was not created".to_owned())?;
    Ok((id, email))
}

/// A new session for `user` whose current token is returned.
fn new_session(
    subject: &Subject<'_>,
    user: &str,
    now: Timestamp,
) -> Result<(String, RefreshToken), String> {
    let id = fresh_id();
    let token = RefreshToken::generate();
    store(subject.sessions.create_session(
        &NewSession {
            id: &id,
            user_id: user,
            roles: "user",
            created_at: now,
            user_agent: "conformance",
            ip: "127.0.0.1",
            amr: "pwd,otp",
        },
        &token.digest(),
        &POLICY,
    ))?;
    Ok((id, token))
}

fn rotate(
    subject: &Subject<'_>,
    presented: &TokenDigest,
    now: Timestamp,
) -> Result<(Rotation, RefreshToken), String> {
    let replacement = RefreshToken::generate();
    let sealed = format!("sealed-{}", &replacement.digest().as_str()[..8]);
    let rotation =
        store(
            subject
                .sessions
                .rotate(presented, &replacement.digest(), &sealed, now, &POLICY),
        )?;
    Ok((rotation, replacement))
}

fn users_are_found(subject: &Subject<'_>) -> CaseResult {
    let (id, email) = new_user(subject)?;
    let again = store(subject.users.insert_user(&NewUser {
        id: &fresh_id(),
        email: &email,
        password_hash: "other",
        first_name: None,
        last_name: None,
        created_at: clock::now(),
    }))?;
    ensure(!again, || "a taken email was accepted".to_owned())?;
    let (user, credentials) =
        store(subject.users.user_by_email(&email))?.ok_or("not found by email")?;
    ensure(user.id == id, || {
        format!("by email: {} is not {id}", user.id)
    })?;
    ensure(
        credentials
            == Credentials {
                hash: "hash-0".to_owned(),
                version: 0,
            },
        || format!("credentials {credentials:?}"),
    )?;
    let by_id = store(subject.users.user_by_id(&id))?.ok_or("not found by id")?;
    ensure(by_id.email == email, || format!("by id: {:?}", by_id.email))?;
    ensure(
        store(subject.users.user_by_id(&fresh_id()))?.is_none(),
        || "an unknown id was found".to_owned(),
    )
}

fn credentials_version(subject: &Subject<'_>) -> CaseResult {
    let (id, _) = new_user(subject)?;
    let before = store(subject.users.credentials(&id))?.ok_or("no credentials")?;
    let set = store(subject.users.change_password_hash(
        &id,
        Some(before.version),
        "hash-1",
        clock::now(),
    ))?;
    let changed = store(subject.users.credentials(&id))?.ok_or("no credentials")?;
    ensure(
        set && changed
            == Credentials {
                hash: "hash-1".to_owned(),
                version: before.version + 1,
            },
        || format!("after a change ({set}): {changed:?}"),
    )?;
    // A change checked against the old version lost the race to the one
    // above: it sets nothing.
    let stale = store(subject.users.change_password_hash(
        &id,
        Some(before.version),
        "stale-change",
        clock::now(),
    ))?;
    let kept = store(subject.users.credentials(&id))?.ok_or("no credentials")?;
    ensure(!stale && kept == changed, || {
        format!("a change checked against an old version landed ({stale}): {kept:?}")
    })?;
    let gone = store(
        subject
            .users
            .change_password_hash(&fresh_id(), None, "hash", clock::now()),
    )?;
    ensure(!gone, || "a change to an unknown user was set".to_owned())?;
    // An upgrade computed from the old credentials must not undo the change.
    store(
        subject
            .users
            .upgrade_password_hash(&id, &before, "stale-upgrade"),
    )?;
    let kept = store(subject.users.credentials(&id))?.ok_or("no credentials")?;
    ensure(kept == changed, || {
        format!("a stale upgrade landed: {kept:?}")
    })?;
    store(
        subject
            .users
            .upgrade_password_hash(&id, &changed, "hash-1-stronger"),
    )?;
    let upgraded = store(subject.users.credentials(&id))?.ok_or("no credentials")?;
    ensure(
        upgraded
            == Credentials {
                hash: "hash-1-stronger".to_owned(),
                version: changed.version,
            },
        || format!("after an upgrade: {upgraded:?}"),
    )
}

fn sessions_are_live_and_listed(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (first, _) = new_session(subject, &user, now)?;
    let (second, _) = new_session(subject, &user, now)?;
    ensure(store(subject.sessions.is_live(&first, now))?, || {
        "a new session is not live".to_owned()
    })?;
    ensure(!store(subject.sessions.is_live(&fresh_id(), now))?, || {
        "an unknown session is live".to_owned()
    })?;
    let owner = store(subject.sessions.session_owner(&first, now))?;
    ensure(owner.as_deref() == Some(user.as_str()), || {
        format!("a new session's owner is {owner:?}, not {user}")
    })?;
    let owner = store(subject.sessions.session_owner(&fresh_id(), now))?;
    ensure(owner.is_none(), || {
        format!("an unknown session has an owner: {owner:?}")
    })?;
    let mut listed: Vec<String> = store(subject.sessions.list_sessions(&user, now))?
        .into_iter()
        .map(|session| session.id)
        .collect();
    listed.sort();
    let mut expected = vec![first, second];
    expected.sort();
    ensure(listed == expected, || {
        format!("listed {listed:?}, expected {expected:?}")
    })
}

fn rotation(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (session, first) = new_session(subject, &user, now)?;
    let (rotation, second) = rotate(subject, &first.digest(), now)?;
    // The session's end is its login plus the policy's lifetime.
    let end = now + POLICY.max_lifetime as i64;
    ensure(
        matches!(&rotation, Rotation::Rotated(s)
            if s.session_id == session && s.user_id == user && s.expires_at == end),
        || format!("first rotation: {rotation:?}"),
    )?;
    let owner = store(subject.sessions.session_of_token(&second.digest(), now))?
        .ok_or("the replacement has no session")?;
    ensure(
        owner.session_id == session && owner.retired_at.is_none(),
        || format!("replacement: {owner:?}"),
    )?;
    let retired = store(subject.sessions.session_of_token(&first.digest(), now))?
        .ok_or("the retired token has no session")?;
    ensure(retired.retired_at.is_some(), || {
        "the presented token was not retired".to_owned()
    })?;
    let (again, _) = rotate(subject, &second.digest(), now)?;
    ensure(matches!(again, Rotation::Rotated(_)), || {
        format!("second rotation: {again:?}")
    })
}

fn replay_within_grace(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (_, first) = new_session(subject, &user, now)?;
    let (_, second) = rotate(subject, &first.digest(), now)?;
    let (_, _third) = rotate(subject, &second.digest(), now)?;
    let (replay, _) = rotate(subject, &first.digest(), now + POLICY.reuse_grace as i64)?;
    let end = now + POLICY.max_lifetime as i64;
    match replay {
        Rotation::Replayed(session, chain) => {
            ensure(chain.len() == 2 && session.expires_at == end, || {
                format!(
                    "chain of {} links (expected 2), session ends at {} (expected {end})",
                    chain.len(),
                    session.expires_at
                )
            })
        }
        other => Err(format!("replay within the window: {other:?}")),
    }
}

fn reuse_after_grace(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (session, first) = new_session(subject, &user, now)?;
    let (_, second) = rotate(subject, &first.digest(), now)?;
    let later = now + POLICY.reuse_grace as i64 + 1;
    let (reuse, _) = rotate(subject, &first.digest(), later)?;
    ensure(matches!(reuse, Rotation::Reused(_)), || {
        format!("reuse: {reuse:?}")
    })?;
    ensure(!store(subject.sessions.is_live(&session, now))?, || {
        "the session outlived reuse".to_owned()
    })?;
    let (current, _) = rotate(subject, &second.digest(), later)?;
    ensure(current == Rotation::Invalid, || {
        format!("the current token after reuse: {current:?}")
    })
}

fn unknown_token(subject: &Subject<'_>) -> CaseResult {
    let (rotation, _) = rotate(subject, &RefreshToken::generate().digest(), clock::now())?;
    ensure(rotation == Rotation::Invalid, || format!("{rotation:?}"))?;
    let owner = store(
        subject
            .sessions
            .session_of_token(&RefreshToken::generate().digest(), clock::now()),
    )?;
    ensure(owner.is_none(), || format!("{owner:?}"))
}

fn revoke_one(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (other, _) = new_user(subject)?;
    let (session, token) = new_session(subject, &user, now)?;
    ensure(
        !store(subject.sessions.revoke_session(&other, &session))?,
        || "another user revoked it".to_owned(),
    )?;
    ensure(store(subject.sessions.is_live(&session, now))?, || {
        "it died at another's hand".to_owned()
    })?;
    ensure(
        store(subject.sessions.revoke_session(&user, &session))?,
        || "its user could not revoke it".to_owned(),
    )?;
    ensure(
        !store(subject.sessions.revoke_session(&user, &session))?,
        || "it was revoked twice".to_owned(),
    )?;
    ensure(!store(subject.sessions.is_live(&session, now))?, || {
        "a revoked session is live".to_owned()
    })?;
    let (rotation, _) = rotate(subject, &token.digest(), now)?;
    ensure(rotation == Rotation::Invalid, || {
        format!("a revoked session's token: {rotation:?}")
    })
}

fn revoke_all_but_one(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (keep, _) = new_session(subject, &user, now)?;
    let (gone, _) = new_session(subject, &user, now)?;
    let (also_gone, _) = new_session(subject, &user, now)?;
    let revoked = store(subject.sessions.revoke_all_sessions(&user, Some(&keep)))?;
    ensure(revoked == 2, || format!("revoked {revoked}, expected 2"))?;
    ensure(store(subject.sessions.is_live(&keep, now))?, || {
        "the kept session died".to_owned()
    })?;
    for id in [gone, also_gone] {
        ensure(!store(subject.sessions.is_live(&id, now))?, || {
            "a revoked session lives".to_owned()
        })?;
    }
    Ok(())
}

fn counters(subject: &Subject<'_>) -> CaseResult {
    let key = format!("conformance:{}", fresh_id());
    let other = format!("conformance:{}", fresh_id());
    let now = clock::now_millis();
    for expected in 1..=3 {
        let (count, left) = store(subject.counters.hit(&key, 60, now))?;
        ensure(count == expected, || {
            format!("count {count}, expected {expected}")
        })?;
        ensure((1..=60).contains(&left), || {
            format!("{left} seconds left of a 60-second window")
        })?;
    }
    store(subject.counters.forgive(&key))?;
    let (count, _) = store(subject.counters.hit(&key, 60, now))?;
    ensure(count == 3, || {
        format!("after forgiving one: {count}, expected 3")
    })?;
    store(subject.counters.hit(&other, 60, now))?;
    store(subject.counters.clear(&key))?;
    let (count, _) = store(subject.counters.hit(&key, 60, now))?;
    ensure(count == 1, || {
        format!("after clearing: {count}, expected 1")
    })?;
    let (count, _) = store(subject.counters.hit(&other, 60, now))?;
    ensure(count == 2, || {
        format!("another key after clearing: {count}, expected 2")
    })?;

    // Settling clears some keys and forgives one, and touches no other.
    let (failures, block) = (format!("{key}:f"), format!("{key}:b"));
    for counter in [&failures, &block, &failures] {
        store(subject.counters.hit(counter, 60, now))?;
    }
    store(subject.counters.settle(&[&failures, &block], Some(&other)))?;
    for (counter, expected) in [(&failures, 1), (&block, 1), (&other, 2), (&key, 2)] {
        let (count, _) = store(subject.counters.hit(counter, 60, now))?;
        ensure(count == expected, || {
            format!("{counter} after settling: {count}, expected {expected}")
        })?;
    }
    store(subject.counters.settle(&[&failures], None))?;
    let (count, _) = store(subject.counters.hit(&failures, 60, now))?;
    ensure(count == 1, || {
        format!("after settling without forgiving: {count}, expected 1")
    })
}
