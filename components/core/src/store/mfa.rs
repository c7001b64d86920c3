//! The second factor's storage: each user's TOTP secret (sealed), the
//! last step a code was accepted at, recovery code digests, and the logins
//! that wait for a second factor. All of it lives in the SQL database with
//! the user it belongs to (deleted with the account).

use crate::clock::Timestamp;
use crate::store::sql::SqlStore;
use crate::store::{StoreError, StoreResult};

/// A user's TOTP enrolment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTotp {
    /// The secret, sealed (see [`crate::totp::TotpSecret::seal`]).
    pub sealed_secret: String,
    /// Whether the enrolment was confirmed (sign-in needs a code).
    pub enabled: bool,
}

/// A login waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// The user whose password was right.
    pub user_id: String,
    /// The credentials' version the password was checked against.
    pub credential_version: i64,
}

/// TOTP enrolments, recovery codes and pending second-factor logins.
pub trait MfaStore {
    /// Stores a pending (unconfirmed) secret, replacing a pending one;
    /// `false` when TOTP is already on.
    fn begin_totp(&self, user_id: &str, sealed_secret: &str, now: Timestamp) -> StoreResult<bool>;
    /// The user's enrolment, pending or on.
    fn totp(&self, user_id: &str) -> StoreResult<Option<StoredTotp>>;
    /// Turns on the pending secret `sealed_secret` (the one the code was
    /// checked against), records `step` as used and replaces the recovery
    /// codes, in one step; `false` when that secret is no longer pending.
    fn enable_totp(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: i64,
        recovery_digests: &[String],
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records `step` as used if it is later than the last one used;
    /// `false` otherwise (a code replayed within its window).
    fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Uses up an unused recovery code; `false` if there is none.
    fn use_recovery_code(&self, user_id: &str, digest: &str, now: Timestamp) -> StoreResult<bool>;
    /// Unused recovery codes left.
    fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u64>;
    /// Removes the enrolment and every recovery code and pending login;
    /// `false` when there was no enrolment.
    fn disable_totp(&self, user_id: &str) -> StoreResult<bool>;
    /// Stores a login waiting for its second factor, by token digest.
    fn create_challenge(
        &self,
        digest: &str,
        challenge: &MfaChallenge,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The live challenge with `digest`, left in place.
    fn challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>>;
    /// Takes the live challenge with `digest` away: of two requests with
    /// the same token, one gets it.
    fn take_challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>>;
}

fn challenge_from_row(row: &crate::store::sql::Row) -> anyhow::Result<MfaChallenge> {
    Ok(MfaChallenge {
        user_id: row.text(0)?,
        credential_version: row.int(1)?,
    })
}

impl MfaStore for SqlStore {
    fn begin_totp(&self, user_id: &str, sealed_secret: &str, now: Timestamp) -> StoreResult<bool> {
        // One statement: inserts, or replaces a pending secret, and leaves
        // an enabled one alone (then no row changes).
        // Only while the user is there (see `create_challenge`).
        let changed = self.execute(
            "INSERT INTO user_totp (user_id, sealed_secret, created_at) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             created_at = excluded.created_at WHERE user_totp.enabled_at IS NULL",
            &[user_id.into(), sealed_secret.into(), now.into()],
        )?;
        if changed == 0
            && self
                .read("SELECT 1 FROM users WHERE id = $1", &[user_id.into()])?
                .is_empty()
        {
            return Err(StoreError::Gone(format!("no user {user_id}")));
        }
        Ok(changed == 1)
    }

    fn totp(&self, user_id: &str) -> StoreResult<Option<StoredTotp>> {
        let rows = self.read(
            "SELECT sealed_secret, enabled_at FROM user_totp WHERE user_id = $1",
            &[user_id.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(StoredTotp {
                    sealed_secret: row.text(0)?,
                    enabled: row.optional_int(1)?.is_some(),
                })
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn enable_totp(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: i64,
        recovery_digests: &[String],
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.transaction(|tx| {
            // The user's row first, as a deletion locks it: taken in the
            // other order, the two would wait on each other (PostgreSQL),
            // and the recovery codes' foreign key would need reading
            // (SQLite does not name it).
            tx.lock_user(user_id)?;
            let changed = tx.execute(
                "UPDATE user_totp SET enabled_at = $3, last_used_step = $4 \
                 WHERE user_id = $1 AND sealed_secret = $2 AND enabled_at IS NULL",
                &[
                    user_id.into(),
                    sealed_secret.into(),
                    now.into(),
                    step.into(),
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM recovery_codes WHERE user_id = $1",
                &[user_id.into()],
            )?;
            for digest in recovery_digests {
                tx.execute(
                    "INSERT INTO recovery_codes (user_id, digest) VALUES ($1, $2)",
                    &[user_id.into(), digest.as_str().into()],
                )?;
            }
            Ok(true)
        })
    }

    fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        // One compare-and-set: of two requests with the same code, one
        // wins.
        let changed = self.execute(
            "UPDATE user_totp SET last_used_step = $2 \
             WHERE user_id = $1 AND enabled_at IS NOT NULL AND last_used_step < $2",
            &[user_id.into(), step.into()],
        )?;
        Ok(changed == 1)
    }

    fn use_recovery_code(&self, user_id: &str, digest: &str, now: Timestamp) -> StoreResult<bool> {
        let changed = self.execute(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE user_id = $1 AND digest = $2 AND used_at IS NULL",
            &[user_id.into(), digest.into(), now.into()],
        )?;
        Ok(changed == 1)
    }

    fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u64> {
        let rows = self.read(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            &[user_id.into()],
        )?;
        let count = rows
            .first()
            .map(|row| row.int(0))
            .transpose()
            .map_err(StoreError::Other)?
            .unwrap_or(0);
        Ok(count.max(0) as u64)
    }

    fn disable_totp(&self, user_id: &str) -> StoreResult<bool> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM recovery_codes WHERE user_id = $1",
                &[user_id.into()],
            )?;
            tx.execute(
                "DELETE FROM mfa_challenges WHERE user_id = $1",
                &[user_id.into()],
            )?;
            let removed = tx.execute(
                "DELETE FROM user_totp WHERE user_id = $1",
                &[user_id.into()],
            )?;
            Ok(removed > 0)
        })
    }

    fn create_challenge(
        &self,
        digest: &str,
        challenge: &MfaChallenge,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        // Challenges of this user that expired are met here, and removed.
        self.execute(
            "DELETE FROM mfa_challenges WHERE user_id = $1 AND expires_at <= $2",
            &[challenge.user_id.as_str().into(), now.into()],
        )?;
        // Only while the user is there: a login racing its account's
        // deletion is told from a bug without reading a foreign-key error,
        // which SQLite does not name.
        let inserted = self.execute(
            "INSERT INTO mfa_challenges (digest, user_id, credential_version, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
            &[
                digest.into(),
                challenge.user_id.as_str().into(),
                challenge.credential_version.into(),
                now.into(),
                expires_at.into(),
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Gone(format!("no user {}", challenge.user_id)));
        }
        Ok(())
    }

    fn challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>> {
        let rows = self.read(
            "SELECT user_id, credential_version FROM mfa_challenges \
             WHERE digest = $1 AND expires_at > $2",
            &[digest.into(), now.into()],
        )?;
        rows.first()
            .map(challenge_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }

    fn take_challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>> {
        let rows = self.query(
            "DELETE FROM mfa_challenges WHERE digest = $1 AND expires_at > $2 \
             RETURNING user_id, credential_version",
            &[digest.into(), now.into()],
        )?;
        rows.first()
            .map(challenge_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }
}
