//! The conformance cases of the second factor: `amr` through rotation,
//! TOTP enrolment and steps, recovery codes and pending logins.

use super::*;

pub(super) fn amr_survives_rotation(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (_, first) = new_session(subject, &user, now)?;
    let (rotation, _) = rotate(subject, &first.digest(), now)?;
    ensure(
        matches!(&rotation, Rotation::Rotated(s) if s.amr == "pwd,otp"),
        || format!("rotation: {rotation:?}"),
    )?;
    let (replayed, _) = rotate(subject, &first.digest(), now + 1)?;
    ensure(
        matches!(&replayed, Rotation::Replayed(s, _) if s.amr == "pwd,otp"),
        || format!("replay: {replayed:?}"),
    )
}

pub(super) fn totp_enrolment(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    ensure(store(subject.mfa.totp(&user))?.is_none(), || {
        "a new user has a TOTP enrolment".to_owned()
    })?;
    ensure(
        store(subject.mfa.begin_totp(&user, "sealed-1", now))?,
        || "a first enrolment was refused".to_owned(),
    )?;
    ensure(
        store(subject.mfa.begin_totp(&user, "sealed-2", now))?,
        || "a pending enrolment was not replaced".to_owned(),
    )?;
    ensure(
        !store(subject.mfa.enable_totp(&user, "sealed-1", 10, &[], now))?,
        || "a replaced secret was turned on".to_owned(),
    )?;
    let pending = store(subject.mfa.totp(&user))?.ok_or("no enrolment")?;
    ensure(
        pending.sealed_secret == "sealed-2" && !pending.enabled,
        || format!("pending: {pending:?}"),
    )?;
    let off = store(subject.users.user_by_id(&user))?.ok_or("no user")?;
    ensure(!off.mfa_enabled, || {
        "a pending enrolment shows as enabled".to_owned()
    })?;
    ensure(
        store(subject.mfa.enable_totp(&user, "sealed-2", 10, &[], now))?,
        || "the pending secret was not turned on".to_owned(),
    )?;
    ensure(
        !store(subject.mfa.enable_totp(&user, "sealed-2", 11, &[], now))?,
        || "an enabled secret was turned on twice".to_owned(),
    )?;
    ensure(
        !store(subject.mfa.begin_totp(&user, "sealed-3", now))?,
        || "an enabled secret was replaced".to_owned(),
    )?;
    let on = store(subject.users.user_by_id(&user))?.ok_or("no user")?;
    ensure(on.mfa_enabled, || {
        "TOTP is on but the user does not show it".to_owned()
    })?;
    let email = on.email.clone();
    let (by_email, _) = store(subject.users.user_by_email(&email))?.ok_or("no user")?;
    ensure(by_email.mfa_enabled, || {
        "the user found by email does not show mfa_enabled".to_owned()
    })
}

pub(super) fn totp_steps_once(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    ensure(!store(subject.mfa.use_totp_step(&user, 5))?, || {
        "a step was accepted without an enrolment".to_owned()
    })?;
    store(subject.mfa.begin_totp(&user, "sealed", now))?;
    store(subject.mfa.enable_totp(&user, "sealed", 100, &[], now))?;
    ensure(!store(subject.mfa.use_totp_step(&user, 100))?, || {
        "the confirming step was accepted again".to_owned()
    })?;
    ensure(store(subject.mfa.use_totp_step(&user, 101))?, || {
        "a later step was refused".to_owned()
    })?;
    ensure(!store(subject.mfa.use_totp_step(&user, 101))?, || {
        "a step was accepted twice".to_owned()
    })?;
    ensure(!store(subject.mfa.use_totp_step(&user, 99))?, || {
        "an earlier step was accepted".to_owned()
    })
}

pub(super) fn recovery_codes_once(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let (other, _) = new_user(subject)?;
    let digests = vec!["digest-a".to_owned(), "digest-b".to_owned()];
    store(subject.mfa.begin_totp(&user, "sealed", now))?;
    store(subject.mfa.enable_totp(&user, "sealed", 1, &digests, now))?;
    ensure(store(subject.mfa.recovery_codes_left(&user))? == 2, || {
        "two codes were stored".to_owned()
    })?;
    ensure(
        !store(subject.mfa.use_recovery_code(&other, "digest-a", now))?,
        || "another user's code was accepted".to_owned(),
    )?;
    ensure(
        store(subject.mfa.use_recovery_code(&user, "digest-a", now))?,
        || "an unused code was refused".to_owned(),
    )?;
    ensure(
        !store(subject.mfa.use_recovery_code(&user, "digest-a", now))?,
        || "a code was used twice".to_owned(),
    )?;
    ensure(store(subject.mfa.recovery_codes_left(&user))? == 1, || {
        "a used code still counts".to_owned()
    })?;
    ensure(store(subject.mfa.disable_totp(&user))?, || {
        "disabling found nothing".to_owned()
    })?;
    ensure(
        !store(subject.mfa.use_recovery_code(&user, "digest-b", now))?,
        || "a code outlived disabling".to_owned(),
    )?;
    ensure(store(subject.mfa.totp(&user))?.is_none(), || {
        "the enrolment outlived disabling".to_owned()
    })?;
    ensure(!store(subject.mfa.disable_totp(&user))?, || {
        "disabling twice found something".to_owned()
    })
}

pub(super) fn challenges_once(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let challenge = MfaChallenge {
        user_id: user.clone(),
        credential_version: 3,
    };
    let digest = RefreshToken::generate().digest();
    let digest = digest.as_str();
    store(
        subject
            .mfa
            .create_challenge(digest, &challenge, now, now + 300),
    )?;
    ensure(
        store(subject.mfa.challenge(digest, now))?.as_ref() == Some(&challenge),
        || "a live challenge was not found".to_owned(),
    )?;
    ensure(
        store(subject.mfa.challenge(digest, now + 300))?.is_none(),
        || "an expired challenge was found".to_owned(),
    )?;
    ensure(
        store(subject.mfa.take_challenge(digest, now))?.as_ref() == Some(&challenge),
        || "a live challenge was not taken".to_owned(),
    )?;
    ensure(
        store(subject.mfa.take_challenge(digest, now))?.is_none(),
        || "a challenge was taken twice".to_owned(),
    )?;
    let late = RefreshToken::generate().digest();
    store(
        subject
            .mfa
            .create_challenge(late.as_str(), &challenge, now, now + 300),
    )?;
    ensure(
        store(subject.mfa.take_challenge(late.as_str(), now + 301))?.is_none(),
        || "an expired challenge was taken".to_owned(),
    )
}

/// Rows that name a user deleted meanwhile (a request racing the account's
/// deletion) are refused as `Gone`, never as a foreign-key failure.
pub(super) fn writes_for_a_deleted_user_are_gone(subject: &Subject<'_>) -> CaseResult {
    let now = clock::now();
    let (user, _) = new_user(subject)?;
    let deleted = store(subject.directory.delete_user(&user, &[], &|| Ok(())))?;
    ensure(matches!(deleted, crate::store::Guarded::Done(_)), || {
        format!("deleting: {deleted:?}")
    })?;
    let gone = |what: &str, outcome: Result<(), crate::store::StoreError>| {
        ensure(
            matches!(outcome, Err(crate::store::StoreError::Gone(_))),
            || format!("{what} for a deleted user: {outcome:?}"),
        )
    };
    gone(
        "an enrolment",
        subject.mfa.begin_totp(&user, "sealed", now).map(|_| ()),
    )?;
    gone(
        "turning TOTP on",
        subject
            .mfa
            .enable_totp(&user, "sealed", 1, &["digest".to_owned()], now)
            .map(|_| ()),
    )?;
    let challenge = MfaChallenge {
        user_id: user.clone(),
        credential_version: 0,
    };
    gone(
        "a pending login",
        subject
            .mfa
            .create_challenge(&fresh_id(), &challenge, now, now + 300),
    )
}
