//! Registration as a use case: a [`Registration`] of values already valid
//! by construction in, the new account out; throttled per client address.

use super::AuthStores;
use super::login::{Client, audit};
use super::recovery::send_verification_link;
use super::throttling::throttle_address;
use crate::clock::Timestamp;
use crate::config::AuthSettings;
use crate::domain::{Email, Password, Role, User, roles_for};
use crate::error::ApiError;
use crate::password::hash_password;
use crate::store::NewUser;
use crate::throttle;

/// `POST /auth/register`'s command, validated.
pub struct Registration<'a> {
    /// The address, in canonical form.
    pub email: Email,
    /// A password the policy accepts.
    pub password: Password,
    /// Trimmed; `None` when empty.
    pub first_name: Option<String>,
    /// Trimmed; `None` when empty.
    pub last_name: Option<String>,
    /// Who asks.
    pub client: Client<'a>,
}

/// Creates an account and sends it a verification link.
///
/// Rules: every attempt counts against the client's address, taken or not
/// (it is also how one would probe which emails have accounts); a taken
/// address is a conflict whatever its case; the account starts unverified,
/// so `admin_emails` gives it nothing until the address is proven.
pub fn register(
    stores: AuthStores<'_>,
    settings: &AuthSettings,
    command: Registration<'_>,
    now: Timestamp,
) -> Result<(User, Vec<Role>), ApiError> {
    let Registration {
        email,
        password,
        first_name,
        last_name,
        client,
    } = command;
    let key = format!("register:{}", throttle_address(client.ip));
    let window = throttle::REGISTRATION_WINDOW;
    let (count, window_left) = stores
        .counters
        .hit(&key, window, crate::clock::now_millis())?;
    let limit = settings.registrations_per_ip + 1;
    if let Some(retry_after) = throttle::exhausted(count, limit, window_left) {
        return Err(ApiError::RateLimited { retry_after });
    }

    let hash = hash_password(&password)?;
    let id = crate::random::uuid().to_string();
    let created = stores.users.insert_user(&NewUser {
        id: &id,
        email: &email,
        password_hash: &hash,
        first_name: first_name.as_deref(),
        last_name: last_name.as_deref(),
        created_at: now,
    })?;
    if !created {
        return Err(ApiError::Conflict("email_taken"));
    }
    let user = User {
        id,
        email,
        first_name,
        last_name,
        created_at: now,
        email_verified: false,
        mfa_enabled: false,
        granted_roles: vec![Role::User],
        admin_withheld: false,
        disabled: false,
        last_login_at: None,
    };
    send_verification_link(stores, &settings.mail, &user, now)?;
    audit(
        stores.audit,
        "register",
        Some(&user.id),
        None,
        client,
        None,
        now,
    );
    let roles = roles_for(&user, &settings.admin_emails);
    Ok((user, roles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{CLIENT, PASSWORD, audited, settings, stores};
    use crate::store::UserStore;
    use crate::store::memory::MemoryStore;

    fn registration(email: &str, client: Client<'static>) -> Registration<'static> {
        Registration {
            email: Email::parse(email).unwrap(),
            password: Password::parse(PASSWORD, &[]).unwrap(),
            first_name: Some("Ada".to_owned()),
            last_name: None,
            client,
        }
    }

    #[test]
    fn a_new_account_is_unverified_and_gets_a_verification_link() {
        let store = MemoryStore::default();
        let command = registration("root@example.com", CLIENT);
        let (user, roles) = register(stores(&store), &settings(), command, 100).unwrap();
        assert!(!user.email_verified);
        // In admin_emails, but not proven: no admin.
        assert_eq!(roles, vec![Role::User]);
        let stored = store.user_by_id(&user.id).unwrap().unwrap();
        assert_eq!(stored.first_name.as_deref(), Some("Ada"));
        let outbox = store.outbox.borrow();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].to, "root@example.com");
        assert!(outbox[0].text.contains("/verify-email?token="));
        assert_eq!(audited(&store), vec!["register"]);
    }

    #[test]
    fn a_taken_address_conflicts_and_sends_nothing() {
        let store = MemoryStore::default();
        register(
            stores(&store),
            &settings(),
            registration("ada@example.com", CLIENT),
            100,
        )
        .unwrap();
        let again = registration("ADA@example.com", CLIENT);
        let outcome = register(stores(&store), &settings(), again, 101);
        assert!(matches!(outcome, Err(ApiError::Conflict("email_taken"))));
        assert_eq!(store.outbox.borrow().len(), 1);
    }

    #[test]
    fn every_attempt_counts_against_the_clients_address() {
        let store = MemoryStore::default();
        let settings = AuthSettings {
            registrations_per_ip: 2,
            ..settings()
        };
        // IPv6 clients are counted by their /64.
        let [a, b, c] = ["2001:db8::1", "2001:db8::2", "2001:db8::3"].map(|ip| Client {
            ip,
            user_agent: "tests",
        });
        register(
            stores(&store),
            &settings,
            registration("a@example.com", a),
            100,
        )
        .unwrap();
        // A taken address still counts.
        let taken = register(
            stores(&store),
            &settings,
            registration("a@example.com", b),
            100,
        );
        assert!(matches!(taken, Err(ApiError::Conflict(_))));
        let throttled = register(
            stores(&store),
            &settings,
            registration("c@example.com", c),
            100,
        );
        assert!(
            matches!(throttled, Err(ApiError::RateLimited { .. })),
            "{throttled:?}"
        );
        let elsewhere = Client {
            ip: "198.51.100.1",
            user_agent: "tests",
        };
        register(
            stores(&store),
            &settings,
            registration("c@example.com", elsewhere),
            100,
        )
        .unwrap();
    }
}
