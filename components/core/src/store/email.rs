//! Single-use email links (verification and password reset) and the mail
//! outbox, in the SQL database.

use crate::clock::Timestamp;
use crate::store::sql::SqlStore;
use crate::store::{StoreError, StoreResult};
use crate::tokens::TokenDigest;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Proves the account owns its address.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
}

impl LinkPurpose {
    /// Whether only the newest of a user's links for this purpose works: a
    /// new reset link voids the older ones, even when two are requested at
    /// once. Verification links all stay valid until used or expired.
    pub fn newest_only(self) -> bool {
        self == LinkPurpose::ResetPassword
    }

    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ResetPassword => "reset_password",
        }
    }
}

/// Single-use links, stored by digest.
pub trait LinkStore {
    /// Stores a link for `user_id`, valid until `expires_at`; for a purpose
    /// whose [newest link only](LinkPurpose::newest_only) works, the user's
    /// older links of this purpose stop working, and two concurrent calls
    /// leave one link working, not two.
    fn issue_link(
        &self,
        digest: &TokenDigest,
        user_id: &str,
        purpose: LinkPurpose,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The user an unused, live link is for, without using it.
    fn link_user(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
    /// Uses a link up: the user it was for, if it was unused and live.
    fn use_link(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
}

/// A message to store for delivery.
#[derive(Debug, Clone, Copy)]
pub struct NewMail<'a> {
    /// Recipient.
    pub to: &'a str,
    /// Subject line.
    pub subject: &'a str,
    /// Plain-text body.
    pub text: &'a str,
    /// HTML body.
    pub html: &'a str,
}

/// A stored message waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Its id (also the delivery's idempotency key).
    pub id: String,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Delivery attempts so far, this one included.
    pub attempts: i64,
}

/// The mail outbox: every message is stored before it is sent.
pub trait Outbox {
    /// Stores a message for delivery; returns its id.
    fn enqueue(&self, message: &NewMail<'_>, now: Timestamp) -> StoreResult<String>;
    /// The ids of up to `limit` messages due at `now`, oldest first (to the
    /// second).
    fn due(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<String>>;
    /// Takes message `id` until `lease_until`, counting an attempt, if it
    /// is still due and nobody holds it: no other instance sends it
    /// meanwhile, nor after another instance's attempt rescheduled it
    /// since [`Outbox::due`] listed it.
    fn claim(
        &self,
        id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<QueuedMail>>;
    /// A message was accepted by the mail service; its body (with its
    /// link's token) is not kept.
    fn delivered(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// The delivery attempt that claimed `mail` failed; try again at
    /// `retry_at`. Ignored when that claim is no longer the newest (its
    /// lease ran out and another instance took the message over): the
    /// newer attempt's outcome is the one that counts.
    fn failed(&self, mail: &QueuedMail, error: &str, retry_at: Timestamp) -> StoreResult<()>;
}

impl LinkStore for SqlStore {
    fn issue_link(
        &self,
        digest: &TokenDigest,
        user_id: &str,
        purpose: LinkPurpose,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        // Only while the user is there: a request racing the account's
        // deletion is told from a bug without reading a foreign-key error,
        // which SQLite does not name.
        let insert = |store: &SqlStore| {
            store.execute(
                "INSERT INTO email_tokens (digest, user_id, purpose, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
                &[
                    digest.as_str().into(),
                    user_id.into(),
                    purpose.as_str().into(),
                    now.into(),
                    expires_at.into(),
                ],
            )
        };
        let gone = || StoreError::Gone(format!("no user {user_id}"));
        if !purpose.newest_only() {
            return match insert(self)? {
                0 => Err(gone()),
                _ => Ok(()),
            };
        }
        // Voiding and inserting are two statements: under the user's row
        // lock (SQLite: the write lock), so that of two concurrent requests
        // the second voids the first's link instead of both missing the
        // other's. The lock does not hold up inserts that refer to the user
        // (its sessions), only other writers of the row.
        self.transaction(|tx| {
            tx.lock_user(user_id)?;
            tx.execute(
                "UPDATE email_tokens SET used_at = $3 \
                 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
                &[user_id.into(), purpose.as_str().into(), now.into()],
            )?;
            insert(tx)?;
            Ok(())
        })
    }

    fn link_user(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        let rows = self.read(
            "SELECT user_id FROM email_tokens \
             WHERE digest = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
            &[digest.as_str().into(), purpose.as_str().into(), now.into()],
        )?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }

    fn use_link(
        &self,
        digest: &TokenDigest,
        purpose: LinkPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        // One statement: of two requests with the same link, one wins.
        let rows = self.query(
            "UPDATE email_tokens SET used_at = $3 \
             WHERE digest = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
             RETURNING user_id",
            &[digest.as_str().into(), purpose.as_str().into(), now.into()],
        )?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }
}

impl Outbox for SqlStore {
    fn enqueue(&self, message: &NewMail<'_>, now: Timestamp) -> StoreResult<String> {
        let id = crate::random::uuid().to_string();
        self.execute(
            "INSERT INTO outbox (id, created_at, recipient, subject, text_body, html_body, \
             attempts, next_attempt_at, claimed_until) VALUES ($1, $2, $3, $4, $5, $6, 0, $2, 0)",
            &[
                id.as_str().into(),
                now.into(),
                message.to.into(),
                message.subject.into(),
                message.text.into(),
                message.html.into(),
            ],
        )?;
        Ok(id)
    }

    fn due(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<String>> {
        let rows = self.read(
            "SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
             AND claimed_until <= $1 ORDER BY created_at, id LIMIT $2",
            &[now.into(), limit.into()],
        )?;
        rows.iter()
            .map(|row| row.text(0).map_err(StoreError::Other))
            .collect()
    }

    fn claim(
        &self,
        id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<QueuedMail>> {
        // A compare-and-set on the conditions `due` listed it by: whoever
        // sets the lease first sends it, and an attempt that failed since
        // (lease cleared, retry later) is not repeated at once.
        let rows = self.query(
            "UPDATE outbox SET claimed_until = $3, attempts = attempts + 1 \
             WHERE id = $1 AND delivered_at IS NULL AND next_attempt_at <= $2 \
             AND claimed_until <= $2 \
             RETURNING id, recipient, subject, text_body, html_body, attempts",
            &[id.into(), now.into(), lease_until.into()],
        )?;
        rows.first()
            .map(queued_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }

    fn delivered(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        // The body goes: its link's token is otherwise kept only as a
        // digest, and a delivered message is never sent again.
        self.execute(
            "UPDATE outbox SET delivered_at = $2, last_error = NULL, text_body = '', \
             html_body = '' WHERE id = $1",
            &[id.into(), now.into()],
        )?;
        Ok(())
    }

    fn failed(&self, mail: &QueuedMail, error: &str, retry_at: Timestamp) -> StoreResult<()> {
        let error: String = error.chars().filter(|c| *c != '\0').take(500).collect();
        self.execute(
            "UPDATE outbox SET last_error = $2, next_attempt_at = $3, claimed_until = 0 \
             WHERE id = $1 AND attempts = $4 AND delivered_at IS NULL",
            &[
                mail.id.as_str().into(),
                error.as_str().into(),
                retry_at.into(),
                mail.attempts.into(),
            ],
        )?;
        Ok(())
    }
}

fn queued_from_row(row: &crate::store::sql::Row) -> anyhow::Result<QueuedMail> {
    Ok(QueuedMail {
        id: row.text(0)?,
        to: row.text(1)?,
        subject: row.text(2)?,
        text: row.text(3)?,
        html: row.text(4)?,
        attempts: row.int(5)?,
    })
}
