//! Every store trait in memory, for the use cases' native unit tests: no
//! Wasm, no server. It passes the same conformance suite as the real
//! backends (see the test at the end), so a rule a use case relies on holds
//! here as it does on PostgreSQL, SQLite and Redis.

mod admin;
mod mail;
mod mfa;

use std::cell::RefCell;
use std::collections::HashMap;

use crate::clock::{Millis, Timestamp};
use crate::domain::{Email, User};
use crate::store::{
    AuditEvent, AuditLog, AuditQuery, AuditRecord, CounterStore, Credentials, MAX_CHAIN,
    MfaChallenge, NewSession, NewUser, RotatedSession, Rotation, SessionInfo, SessionPolicy,
    SessionStore, StoreResult, TokenOwner, UserStore,
};
use crate::tokens::TokenDigest;

struct StoredSession {
    user_id: String,
    roles: String,
    created_at: Timestamp,
    last_used_at: Timestamp,
    expires_at: Timestamp,
    idle_expires_at: Timestamp,
    user_agent: String,
    ip: String,
    current: String,
    amr: String,
}

struct StoredToken {
    session_id: String,
    expires_at: Timestamp,
    retired_at: Option<Timestamp>,
    next: Option<(String, String)>,
}

/// Users, sessions, tokens, counters and the audit trail, in memory.
#[derive(Default)]
pub struct MemoryStore {
    users: RefCell<HashMap<String, (User, Credentials)>>,
    sessions: RefCell<HashMap<String, StoredSession>>,
    tokens: RefCell<HashMap<String, StoredToken>>,
    counters: RefCell<HashMap<String, (u64, Millis)>>,
    totp: RefCell<HashMap<String, mfa::MemoryTotp>>,
    /// Recovery code digests by user, with whether each was used.
    recovery: RefCell<HashMap<String, Vec<(String, bool)>>>,
    challenges: RefCell<HashMap<String, (MfaChallenge, Timestamp)>>,
    /// Every audited event's name and user, in order.
    pub audited: RefCell<Vec<(String, Option<String>)>>,
    audit_records: RefCell<Vec<AuditRecord>>,
    links: RefCell<HashMap<String, mail::StoredLink>>,
    /// Messages queued and not yet delivered, oldest first.
    pub outbox: RefCell<Vec<crate::store::QueuedMail>>,
    outbox_times: RefCell<HashMap<String, mail::OutboxTimes>>,
}

impl UserStore for MemoryStore {
    fn insert_user(&self, user: &NewUser<'_>) -> StoreResult<bool> {
        let mut users = self.users.borrow_mut();
        if users
            .values()
            .any(|(stored, _)| &stored.email == user.email)
        {
            return Ok(false);
        }
        let stored = User {
            id: user.id.to_owned(),
            email: user.email.clone(),
            first_name: user.first_name.map(str::to_owned),
            last_name: user.last_name.map(str::to_owned),
            created_at: user.created_at,
            email_verified: false,
            mfa_enabled: false,
            granted_roles: vec![crate::domain::Role::User],
            admin_withheld: false,
            disabled: false,
            last_login_at: None,
        };
        let credentials = Credentials {
            hash: user.password_hash.to_owned(),
            version: 0,
        };
        users.insert(user.id.to_owned(), (stored, credentials));
        Ok(true)
    }

    fn user_by_email(&self, email: &Email) -> StoreResult<Option<(User, Credentials)>> {
        Ok(self
            .users
            .borrow()
            .values()
            .find(|(user, _)| &user.email == email)
            .cloned()
            .map(|(user, credentials)| (self.with_mfa(user), credentials)))
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self
            .users
            .borrow()
            .get(id)
            .map(|(user, _)| self.with_mfa(user.clone())))
    }

    fn user_by_id_audited(&self, id: &str, event: &AuditEvent<'_>) -> StoreResult<Option<User>> {
        super::user_by_id_then_record(self, self, id, event)
    }

    fn credentials(&self, id: &str) -> StoreResult<Option<Credentials>> {
        Ok(self
            .users
            .borrow()
            .get(id)
            .map(|(_, credentials)| credentials.clone()))
    }

    fn upgrade_password_hash(&self, id: &str, old: &Credentials, hash: &str) -> StoreResult<()> {
        if let Some((_, credentials)) = self.users.borrow_mut().get_mut(id)
            && credentials.version == old.version
        {
            credentials.hash = hash.to_owned();
        }
        Ok(())
    }

    fn change_password_hash(
        &self,
        id: &str,
        checked: Option<i64>,
        hash: &str,
        _now: Timestamp,
    ) -> StoreResult<bool> {
        let mut users = self.users.borrow_mut();
        let Some((_, credentials)) = users.get_mut(id) else {
            return Ok(false);
        };
        if checked.is_some_and(|version| version != credentials.version) {
            return Ok(false);
        }
        credentials.hash = hash.to_owned();
        credentials.version += 1;
        Ok(true)
    }

    fn mark_email_verified(&self, id: &str, _now: Timestamp) -> StoreResult<()> {
        if let Some((user, _)) = self.users.borrow_mut().get_mut(id) {
            user.email_verified = true;
        }
        Ok(())
    }

    fn record_login(
        &self,
        id: &str,
        checked: i64,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Option<i64>> {
        let mut users = self.users.borrow_mut();
        let Some((user, credentials)) = users.get_mut(id) else {
            return Ok(None);
        };
        if credentials.version == checked {
            user.last_login_at = Some(event.at);
            user.admin_withheld = false;
            drop(users);
            super::record_or_log(self, event);
            return Ok(Some(checked));
        }
        Ok(Some(credentials.version))
    }
}

impl MemoryStore {
    /// `Gone` unless `user_id` exists, as the SQL stores answer a row
    /// written for a user deleted meanwhile.
    pub(super) fn gone_unless_user(&self, user_id: &str) -> StoreResult<()> {
        if self.users.borrow().contains_key(user_id) {
            Ok(())
        } else {
            Err(crate::store::StoreError::Gone(format!("no user {user_id}")))
        }
    }

    /// `user` with `mfa_enabled` as the TOTP table says.
    fn with_mfa(&self, mut user: User) -> User {
        user.mfa_enabled = self
            .totp
            .borrow()
            .get(&user.id)
            .is_some_and(|totp| totp.enabled);
        user
    }

    /// The owner of `session_id` while it is live.
    fn live_owner(&self, session_id: &str, now: Timestamp) -> Option<String> {
        self.sessions
            .borrow()
            .get(session_id)
            .filter(|s| s.expires_at > now && s.idle_expires_at > now)
            .map(|s| s.user_id.clone())
    }

    /// Removes `user` and every entry that names them (what deleting an
    /// account does in SQL); sessions are [`SessionStore::forget_user`]'s.
    fn forget_user_data(&self, id: &str, user: &User) {
        self.users.borrow_mut().remove(id);
        self.totp.borrow_mut().remove(id);
        self.recovery.borrow_mut().remove(id);
        self.challenges
            .borrow_mut()
            .retain(|_, (challenge, _)| challenge.user_id != id);
        self.forget_links(id);
        self.outbox
            .borrow_mut()
            .retain(|mail| mail.to != user.email.as_str());
    }

    fn remove_session(&self, session_id: &str) -> bool {
        self.tokens
            .borrow_mut()
            .retain(|_, token| token.session_id != session_id);
        self.sessions.borrow_mut().remove(session_id).is_some()
    }
}

impl SessionStore for MemoryStore {
    fn create_session(
        &self,
        session: &NewSession<'_>,
        token: &TokenDigest,
        policy: &SessionPolicy,
    ) -> StoreResult<()> {
        let now = session.created_at;
        let expires_at = now + policy.max_lifetime as i64;
        let idle_expires_at = expires_at.min(now + policy.refresh_ttl as i64);
        self.sessions.borrow_mut().insert(
            session.id.to_owned(),
            StoredSession {
                user_id: session.user_id.to_owned(),
                roles: session.roles.to_owned(),
                created_at: now,
                last_used_at: now,
                expires_at,
                idle_expires_at,
                user_agent: session.user_agent.to_owned(),
                ip: session.ip.to_owned(),
                current: token.as_str().to_owned(),
                amr: session.amr.to_owned(),
            },
        );
        self.tokens.borrow_mut().insert(
            token.as_str().to_owned(),
            StoredToken {
                session_id: session.id.to_owned(),
                expires_at: idle_expires_at,
                retired_at: None,
                next: None,
            },
        );
        Ok(())
    }

    fn rotate(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        sealed: &str,
        now: Timestamp,
        policy: &SessionPolicy,
    ) -> StoreResult<Rotation> {
        let (session_id, retired_at, next) = match self.tokens.borrow().get(presented.as_str()) {
            Some(token) if token.expires_at > now => (
                token.session_id.clone(),
                token.retired_at,
                token.next.clone(),
            ),
            _ => return Ok(Rotation::Invalid),
        };
        if self.live_owner(&session_id, now).is_none() {
            return Ok(Rotation::Invalid);
        }
        let (found, current, session_expires) = {
            let sessions = self.sessions.borrow();
            let session = &sessions[&session_id];
            let found = RotatedSession {
                session_id: session_id.clone(),
                user_id: session.user_id.clone(),
                roles: session.roles.clone(),
                amr: session.amr.clone(),
                expires_at: session.expires_at,
            };
            (found, session.current.clone(), session.expires_at)
        };
        match retired_at {
            None => {
                let expires_at = session_expires.min(now + policy.refresh_ttl as i64);
                let mut tokens = self.tokens.borrow_mut();
                if let Some(token) = tokens.get_mut(presented.as_str()) {
                    token.retired_at = Some(now);
                    token.next = Some((replacement.as_str().to_owned(), sealed.to_owned()));
                }
                tokens.insert(
                    replacement.as_str().to_owned(),
                    StoredToken {
                        session_id: session_id.clone(),
                        expires_at,
                        retired_at: None,
                        next: None,
                    },
                );
                if let Some(session) = self.sessions.borrow_mut().get_mut(&session_id) {
                    session.current = replacement.as_str().to_owned();
                    session.last_used_at = now;
                    session.idle_expires_at = expires_at;
                }
                Ok(Rotation::Rotated(found))
            }
            Some(at) if now - at <= policy.reuse_grace as i64 => {
                let tokens = self.tokens.borrow();
                let mut chain = Vec::new();
                let mut link = next;
                while let Some((digest, sealed)) = link {
                    chain.push(sealed);
                    if digest == current {
                        return Ok(Rotation::Replayed(found, chain));
                    }
                    if chain.len() >= MAX_CHAIN {
                        break;
                    }
                    link = tokens.get(&digest).and_then(|token| token.next.clone());
                }
                Ok(Rotation::Invalid)
            }
            Some(_) => {
                self.remove_session(&session_id);
                Ok(Rotation::Reused(found))
            }
        }
    }

    fn session_owner(&self, session_id: &str, now: Timestamp) -> StoreResult<Option<String>> {
        Ok(self.live_owner(session_id, now))
    }

    fn session_of_token(
        &self,
        token: &TokenDigest,
        now: Timestamp,
    ) -> StoreResult<Option<TokenOwner>> {
        let tokens = self.tokens.borrow();
        let Some(stored) = tokens.get(token.as_str()).filter(|t| t.expires_at > now) else {
            return Ok(None);
        };
        let Some(user_id) = self.live_owner(&stored.session_id, now) else {
            return Ok(None);
        };
        Ok(Some(TokenOwner {
            session_id: stored.session_id.clone(),
            user_id,
            retired_at: stored.retired_at,
        }))
    }

    fn list_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<SessionInfo>> {
        let mut listed: Vec<SessionInfo> = self
            .sessions
            .borrow()
            .iter()
            .filter(|(_, s)| s.user_id == user_id && s.expires_at > now && s.idle_expires_at > now)
            .map(|(id, s)| SessionInfo {
                id: id.clone(),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                user_agent: s.user_agent.clone(),
                ip: s.ip.clone(),
            })
            .collect();
        listed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(listed)
    }

    fn revoke_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool> {
        let owned = self
            .sessions
            .borrow()
            .get(session_id)
            .is_some_and(|s| s.user_id == user_id);
        Ok(owned && self.remove_session(session_id))
    }

    fn revoke_all_sessions(&self, user_id: &str, except: Option<&str>) -> StoreResult<u64> {
        let doomed: Vec<String> = self
            .sessions
            .borrow()
            .iter()
            .filter(|(id, s)| s.user_id == user_id && Some(id.as_str()) != except)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.remove_session(id);
        }
        Ok(doomed.len() as u64)
    }

    fn forget_user(&self, user_id: &str) -> StoreResult<()> {
        self.revoke_all_sessions(user_id, None).map(|_| ())
    }
}

impl CounterStore for MemoryStore {
    fn hit(&self, key: &str, window: u64, now: Millis) -> StoreResult<(u64, u64)> {
        let mut counters = self.counters.borrow_mut();
        let entry = counters
            .entry(key.to_owned())
            .or_insert((0, now.plus_seconds(window)));
        if entry.1 <= now {
            *entry = (0, now.plus_seconds(window));
        }
        entry.0 += 1;
        Ok((entry.0, now.seconds_until(entry.1)))
    }

    fn clear(&self, key: &str) -> StoreResult<()> {
        self.counters.borrow_mut().remove(key);
        Ok(())
    }

    fn forgive(&self, key: &str) -> StoreResult<()> {
        if let Some(entry) = self.counters.borrow_mut().get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
        Ok(())
    }
}

impl AuditLog for MemoryStore {
    fn record(&self, event: &AuditEvent<'_>) -> StoreResult<()> {
        self.audited
            .borrow_mut()
            .push((event.event.to_owned(), event.user_id.map(str::to_owned)));
        let mut records = self.audit_records.borrow_mut();
        let id = records.len() as i64 + 1;
        records.push(AuditRecord {
            id,
            at: event.at,
            event: event.event.to_owned(),
            user_id: event.user_id.map(str::to_owned),
            session_id: event.session_id.map(str::to_owned),
            ip: event.ip.to_owned(),
            user_agent: event.user_agent.to_owned(),
            detail: event.detail.map(str::to_owned),
        });
        Ok(())
    }

    fn list(&self, query: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>> {
        Ok(self
            .audit_records
            .borrow()
            .iter()
            .rev()
            .filter(|record| {
                query
                    .user_id
                    .is_none_or(|id| record.user_id.as_deref() == Some(id))
            })
            .filter(|record| query.event.is_none_or(|event| record.event == event))
            .filter(|record| query.before.is_none_or(|before| record.id < before))
            .take(query.limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;
    use crate::store::conformance::{Subject, run};

    #[test]
    fn the_memory_store_passes_the_conformance_suite() {
        let store = MemoryStore::default();
        let outcomes = run(&Subject {
            users: &store,
            sessions: &store,
            counters: &store,
            mfa: &store,
            directory: &store,
            audit: &store,
            outbox: &store,
            database: None,
        });
        let failures: Vec<_> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(outcomes.len() >= 10);
    }
}
