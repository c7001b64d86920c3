//! What the use cases' native tests share: settings, a client, a session
//! policy, and an in-memory store with one account.

use super::AuthStores;
use super::login::{Client, Login, SignedIn, sign_in};
use crate::clock::Timestamp;
use crate::config::{AuthSettings, MailSettings};
use crate::domain::{Email, Password, User};
use crate::error::ApiError;
use crate::password::hash_password;
use crate::store::memory::MemoryStore;
use crate::store::{AuditEvent, Credentials, NewUser, SessionPolicy, StoreResult, UserStore};

pub const PASSWORD: &str = "correct horse battery staple";
pub const CLIENT: Client<'static> = Client {
    ip: "203.0.113.7",
    user_agent: "tests",
};
pub const POLICY: SessionPolicy = SessionPolicy {
    refresh_ttl: 3_600,
    reuse_grace: 30,
    max_lifetime: 86_400,
};

/// Three free login failures; `root@example.com` is in `admin_emails`.
pub fn settings() -> AuthSettings {
    AuthSettings {
        access_token_ttl: 900,
        refresh_token_ttl: POLICY.refresh_ttl,
        refresh_reuse_grace: POLICY.reuse_grace,
        session_max_lifetime: POLICY.max_lifetime,
        admin_emails: vec![Email::parse("root@example.com").unwrap()],
        login_failures_per_account: 3,
        login_failures_per_ip: 100,
        registrations_per_ip: 20,
        trusted_proxies: Vec::new(),
        require_verified_email: false,
        mail: MailSettings {
            app_url: "http://127.0.0.1:3000".to_owned(),
            mail_url: None,
            mail_api_key: None,
            mail_from: "no-reply@localhost".to_owned(),
        },
        mfa_encryption_key: None,
    }
}

/// Every store trait on one in-memory store.
pub fn stores(store: &MemoryStore) -> AuthStores<'_> {
    AuthStores {
        users: store,
        sessions: store,
        counters: store,
        audit: store,
        links: store,
        outbox: store,
        mfa: store,
        directory: store,
    }
}

/// A store holding one account with [`PASSWORD`]; and its id.
pub fn with_user(email: &str) -> (MemoryStore, String) {
    let store = MemoryStore::default();
    let id = add_user(&store, email);
    (store, id)
}

/// Adds an account with [`PASSWORD`] (hashed once per test run); its id.
pub fn add_user(store: &MemoryStore, email: &str) -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash =
        HASH.get_or_init(|| hash_password(&Password::parse(PASSWORD, &[]).unwrap()).unwrap());
    let id = crate::random::uuid().to_string();
    store
        .insert_user(&NewUser {
            id: &id,
            email: &Email::parse(email).unwrap(),
            password_hash: hash,
            first_name: None,
            last_name: None,
            created_at: 0,
        })
        .unwrap();
    id
}

/// The events audited so far, by name.
pub fn audited(store: &MemoryStore) -> Vec<String> {
    store
        .audited
        .borrow()
        .iter()
        .map(|(event, _)| event.clone())
        .collect()
}

/// Signs in with `password` (an account without a second factor).
pub fn log_in(
    store: &MemoryStore,
    email: &str,
    password: &str,
    now: Timestamp,
) -> Result<SignedIn, ApiError> {
    let login = Login {
        email,
        password: Password::for_login(password).unwrap(),
        client: CLIENT,
    };
    let outcome = sign_in(stores(store).sign_in(), &settings(), &POLICY, login, now)?;
    Ok(outcome.into_signed_in().expect("no second factor"))
}

/// A user store whose password changes just before a login is recorded:
/// after every check of the login, where a concurrent change can land.
pub struct ChangedBeforeRecord<'a>(pub &'a MemoryStore);

impl UserStore for ChangedBeforeRecord<'_> {
    fn insert_user(&self, user: &NewUser<'_>) -> StoreResult<bool> {
        self.0.insert_user(user)
    }
    fn user_by_email(&self, email: &Email) -> StoreResult<Option<(User, Credentials)>> {
        self.0.user_by_email(email)
    }
    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.0.user_by_id(id)
    }
    fn user_by_id_audited(&self, id: &str, event: &AuditEvent<'_>) -> StoreResult<Option<User>> {
        self.0.user_by_id_audited(id, event)
    }
    fn credentials(&self, id: &str) -> StoreResult<Option<Credentials>> {
        self.0.credentials(id)
    }
    fn upgrade_password_hash(&self, id: &str, old: &Credentials, hash: &str) -> StoreResult<()> {
        self.0.upgrade_password_hash(id, old, hash)
    }
    fn change_password_hash(
        &self,
        id: &str,
        checked: Option<i64>,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.0.change_password_hash(id, checked, hash, now)
    }
    fn mark_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        self.0.mark_email_verified(id, now)
    }
    fn record_login(
        &self,
        id: &str,
        checked: i64,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Option<i64>> {
        self.0.change_password_hash(id, None, "changed", 0)?;
        self.0.record_login(id, checked, event)
    }
}
