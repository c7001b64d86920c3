//! The signed-in user's own account, as use cases: changing the password,
//! and deleting the account.

use super::AuthStores;
use super::login::{Client, audit};
use super::throttling::{Attempt, password_account};
use crate::clock::Timestamp;
use crate::config::AuthSettings;
use crate::domain::Password;
use crate::error::ApiError;
use crate::password::{hash_password, verify_password};

/// `POST /auth/password`'s command, from a signed-in session.
pub struct ChangePassword<'a> {
    /// `sub` of the access token.
    pub user_id: &'a str,
    /// `sid`: the session that stays signed in.
    pub session_id: &'a str,
    /// As typed (checked for length only).
    pub current: Password,
    /// As typed; checked against the policy here, where the account's
    /// email and name are known.
    pub new: &'a str,
    /// Who asks.
    pub client: Client<'a>,
}

/// Changes the password and ends every other session of the user.
///
/// Rules: whoever holds a token gets no more guesses at the password
/// behind it than a login would (throttled per account); a wrong current
/// password is audited and refused; and the same change retried after a
/// failure to end the other sessions (a 503) is recognised by the new
/// password now in force, and finished, so a 503 is never the last word on
/// a change that half happened.
pub fn change_password(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    command: ChangePassword<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let ChangePassword {
        user_id,
        session_id,
        current,
        new,
        client,
    } = command;
    let gone = || ApiError::InvalidToken("the account no longer exists");
    let user = stores.users.user_by_id(user_id)?.ok_or_else(gone)?;
    let stored = stores.users.credentials(&user.id)?.ok_or_else(gone)?;
    let context = [
        user.email.as_str(),
        user.first_name.as_deref().unwrap_or_default(),
    ];
    let new = Password::parse(new, &context)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    let account = password_account(&user.id);
    let attempt = Attempt::begin(stores.counters, settings, account, None)?;
    let (user_ref, sid) = (Some(user_id), Some(session_id));
    let failed = |detail| {
        audit(
            stores.audit,
            "password_change_failed",
            user_ref,
            sid,
            client,
            detail,
            now,
        );
        Err(ApiError::InvalidCredentials)
    };
    if verify_password(&current, &stored.hash).matches {
        attempt.succeeded()?;
        let hash = hash_password(&new)?;
        // Only over the password just checked: of two concurrent changes
        // one wins, and the other is refused as if it had come after it.
        let checked = Some(stored.version);
        if !stores
            .users
            .change_password_hash(&user.id, checked, &hash, now)?
        {
            return failed(Some("a concurrent change came first"));
        }
    } else if verify_password(&new, &stored.hash).matches {
        attempt.succeeded()?;
    } else {
        return failed(None);
    }
    let revoked = stores
        .sessions
        .revoke_all_sessions(&user.id, Some(session_id))?;
    let detail = format!("other sessions revoked: {revoked}");
    audit(
        stores.audit,
        "password_changed",
        user_ref,
        sid,
        client,
        Some(&detail),
        now,
    );
    Ok(())
}

/// `DELETE /auth/me`'s command, from a signed-in session.
pub struct DeleteAccount<'a> {
    /// `sub` of the access token.
    pub user_id: &'a str,
    /// `sid`: the session asking.
    pub session_id: &'a str,
    /// As typed (checked for length only).
    pub current: Password,
    /// Who asks.
    pub client: Client<'a>,
}

/// Deletes the caller's account (see [`super::erasure::erase`]) once the
/// current password is proven, with the same throttling as a password
/// change; the audit trail keeps the event under the user id.
pub fn delete_account(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    command: DeleteAccount<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let DeleteAccount {
        user_id,
        session_id,
        current,
        client,
    } = command;
    let gone = || ApiError::InvalidToken("the account no longer exists");
    let stored = stores.users.credentials(user_id)?.ok_or_else(gone)?;
    let attempt = Attempt::begin(stores.counters, settings, password_account(user_id), None)?;
    let (user_ref, sid) = (Some(user_id), Some(session_id));
    if !verify_password(&current, &stored.hash).matches {
        let event = "account_deletion_failed";
        audit(stores.audit, event, user_ref, sid, client, None, now);
        return Err(ApiError::InvalidCredentials);
    }
    attempt.succeeded()?;
    super::erasure::erase(stores, &settings.admin_emails, user_id)?;
    audit(
        stores.audit,
        "account_deleted",
        user_ref,
        sid,
        client,
        None,
        now,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::SignedIn;
    use crate::auth::testing::{CLIENT, PASSWORD, audited, log_in, settings, stores, with_user};
    use crate::store::SessionStore;
    use crate::store::memory::MemoryStore;

    const NEW: &str = "a brand new passphrase";

    fn session(store: &MemoryStore, password: &str) -> Result<SignedIn, ApiError> {
        log_in(store, "ada@example.com", password, 100)
    }

    fn change<'a>(id: &'a str, sid: &'a str, current: &str) -> ChangePassword<'a> {
        ChangePassword {
            user_id: id,
            session_id: sid,
            current: Password::for_login(current).unwrap(),
            new: NEW,
            client: CLIENT,
        }
    }

    #[test]
    fn a_change_keeps_this_session_and_ends_the_others() {
        let (store, id) = with_user("ada@example.com");
        let this = session(&store, PASSWORD).unwrap();
        let other = session(&store, PASSWORD).unwrap();
        let command = change(&id, &this.session_id, PASSWORD);
        change_password(stores(&store), &settings(), command, 110).unwrap();
        assert!(store.is_live(&this.session_id, 110).unwrap());
        assert!(!store.is_live(&other.session_id, 110).unwrap());
        assert!(matches!(
            session(&store, PASSWORD),
            Err(ApiError::InvalidCredentials)
        ));
        session(&store, NEW).unwrap();
        assert!(audited(&store).contains(&"password_changed".to_owned()));
    }

    #[test]
    fn a_wrong_current_password_changes_nothing_and_is_throttled() {
        let (store, id) = with_user("ada@example.com");
        let this = session(&store, PASSWORD).unwrap();
        for _ in 0..3 {
            let command = change(&id, &this.session_id, "a wrong guess");
            let outcome = change_password(stores(&store), &settings(), command, 110);
            assert!(matches!(outcome, Err(ApiError::InvalidCredentials)));
        }
        let command = change(&id, &this.session_id, PASSWORD);
        let outcome = change_password(stores(&store), &settings(), command, 110);
        assert!(
            matches!(outcome, Err(ApiError::RateLimited { .. })),
            "{outcome:?}"
        );
        session(&store, PASSWORD).unwrap();
        assert!(audited(&store).contains(&"password_change_failed".to_owned()));
    }

    #[test]
    fn the_same_change_retried_finishes_ending_the_other_sessions() {
        let (store, id) = with_user("ada@example.com");
        let this = session(&store, PASSWORD).unwrap();
        let other = session(&store, PASSWORD).unwrap();
        // The first try stored the new password, then failed (say Redis went
        // away) before the other sessions ended.
        let hash = hash_password(&Password::for_login(NEW).unwrap()).unwrap();
        crate::store::UserStore::change_password_hash(&store, &id, None, &hash, 105).unwrap();
        assert!(store.is_live(&other.session_id, 110).unwrap());
        let retried = change(&id, &this.session_id, PASSWORD);
        change_password(stores(&store), &settings(), retried, 110).unwrap();
        assert!(!store.is_live(&other.session_id, 110).unwrap());
    }

    #[test]
    fn a_new_password_the_policy_refuses_names_the_field() {
        let (store, id) = with_user("ada@example.com");
        let this = session(&store, PASSWORD).unwrap();
        let command = ChangePassword {
            new: "ada@example.com",
            ..change(&id, &this.session_id, PASSWORD)
        };
        let outcome = change_password(stores(&store), &settings(), command, 110);
        let Err(ApiError::Validation(errors)) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(errors[0].field, "new_password");
    }
}
