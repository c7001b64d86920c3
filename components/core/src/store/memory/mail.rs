//! Single-use links and the mail outbox, in memory, with the semantics of
//! the SQL implementation in [`crate::store::email`].

use super::MemoryStore;
use crate::clock::Timestamp;
use crate::store::{LinkPurpose, LinkStore, NewMail, Outbox, QueuedMail, StoreResult};
use crate::tokens::TokenDigest;

/// A link as the SQL table keeps it.
pub(super) struct StoredLink {
    user_id: String,
    purpose: LinkPurpose,
    expires_at: Timestamp,
    used: bool,
}

/// When a queued message may be tried, as the SQL table keeps it.
#[derive(Clone, Copy)]
pub(super) struct OutboxTimes {
    next_attempt_at: Timestamp,
    claimed_until: Timestamp,
}

impl OutboxTimes {
    fn is_due(self, now: Timestamp) -> bool {
        self.next_attempt_at <= now && self.claimed_until <= now
    }
}

impl MemoryStore {
    /// Drops every link of `user_id`.
    pub(super) fn forget_links(&self, user_id: &str) {
        self.links
            .borrow_mut()
            .retain(|_, link| link.user_id != user_id);
    }
}

impl LinkStore for MemoryStore {
    fn issue_link(
        &self,
        digest: &TokenDigest,
        user_id: &str,
        purpose: LinkPurpose,
        _now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        self.gone_unless_user(user_id)?;
        let mut links = self.links.borrow_mut();
        if purpose.newest_only() {
            links
                .values_mut()
                .filter(|link| link.user_id == user_id && link.purpose == purpose)
                .for_each(|link| link.used = true);
        }
        links.insert(
            digest.as_str().to_owned(),
            StoredLink {
                user_id: user_id.to_owned(),
                purpose,
                expires_at,
                used: false,
            },
        );
        Ok(())
    }

    fn link_user(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        Ok(self
            .links
            .borrow()
            .get(digest.as_str())
            .filter(|link| link.purpose == purpose && !link.used && link.expires_at > now)
            .map(|link| link.user_id.clone()))
    }

    fn use_link(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        let user_id = self.link_user(digest, purpose, now)?;
        if user_id.is_some()
            && let Some(link) = self.links.borrow_mut().get_mut(digest.as_str())
        {
            link.used = true;
        }
        Ok(user_id)
    }
}

impl Outbox for MemoryStore {
    fn enqueue(&self, message: &NewMail<'_>, now: Timestamp) -> StoreResult<String> {
        let id = crate::random::uuid().to_string();
        self.outbox_times.borrow_mut().insert(
            id.clone(),
            OutboxTimes {
                next_attempt_at: now,
                claimed_until: 0,
            },
        );
        self.outbox.borrow_mut().push(QueuedMail {
            id: id.clone(),
            to: message.to.to_owned(),
            subject: message.subject.to_owned(),
            text: message.text.to_owned(),
            html: message.html.to_owned(),
            attempts: 0,
        });
        Ok(id)
    }

    fn due(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<String>> {
        let times = self.outbox_times.borrow();
        Ok(self
            .outbox
            .borrow()
            .iter()
            .filter(|mail| times.get(&mail.id).is_some_and(|t| t.is_due(now)))
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|mail| mail.id.clone())
            .collect())
    }

    fn claim(
        &self,
        id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<QueuedMail>> {
        let mut times = self.outbox_times.borrow_mut();
        let Some(time) = times.get_mut(id).filter(|t| t.is_due(now)) else {
            return Ok(None);
        };
        let mut outbox = self.outbox.borrow_mut();
        let Some(mail) = outbox.iter_mut().find(|mail| mail.id == id) else {
            return Ok(None);
        };
        time.claimed_until = lease_until;
        mail.attempts += 1;
        Ok(Some(mail.clone()))
    }

    fn delivered(&self, id: &str, _now: Timestamp) -> StoreResult<()> {
        self.outbox.borrow_mut().retain(|mail| mail.id != id);
        self.outbox_times.borrow_mut().remove(id);
        Ok(())
    }

    fn failed(&self, mail: &QueuedMail, _error: &str, retry_at: Timestamp) -> StoreResult<()> {
        let newest_claim = self
            .outbox
            .borrow()
            .iter()
            .any(|queued| queued.id == mail.id && queued.attempts == mail.attempts);
        if !newest_claim {
            return Ok(());
        }
        if let Some(time) = self.outbox_times.borrow_mut().get_mut(&mail.id) {
            *time = OutboxTimes {
                next_attempt_at: retry_at,
                claimed_until: 0,
            };
        }
        Ok(())
    }
}
