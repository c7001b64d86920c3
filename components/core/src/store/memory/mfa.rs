//! Second-factor enrolments, recovery codes and pending logins, in memory,
//! with the semantics the conformance suite states for every backend.

use super::MemoryStore;
use crate::clock::Timestamp;
use crate::store::{MfaChallenge, MfaStore, StoreResult, StoredTotp};

pub(super) struct MemoryTotp {
    sealed_secret: String,
    pub(super) enabled: bool,
    last_used_step: i64,
}

impl MfaStore for MemoryStore {
    fn begin_totp(&self, user_id: &str, sealed_secret: &str, _now: Timestamp) -> StoreResult<bool> {
        self.gone_unless_user(user_id)?;
        let mut totp = self.totp.borrow_mut();
        if totp.get(user_id).is_some_and(|t| t.enabled) {
            return Ok(false);
        }
        totp.insert(
            user_id.to_owned(),
            MemoryTotp {
                sealed_secret: sealed_secret.to_owned(),
                enabled: false,
                last_used_step: 0,
            },
        );
        Ok(true)
    }

    fn totp(&self, user_id: &str) -> StoreResult<Option<StoredTotp>> {
        Ok(self.totp.borrow().get(user_id).map(|t| StoredTotp {
            sealed_secret: t.sealed_secret.clone(),
            enabled: t.enabled,
        }))
    }

    fn enable_totp(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: i64,
        recovery_digests: &[String],
        _now: Timestamp,
    ) -> StoreResult<bool> {
        self.gone_unless_user(user_id)?;
        let mut totp = self.totp.borrow_mut();
        match totp.get_mut(user_id) {
            Some(t) if !t.enabled && t.sealed_secret == sealed_secret => {
                t.enabled = true;
                t.last_used_step = step;
            }
            _ => return Ok(false),
        }
        self.recovery.borrow_mut().insert(
            user_id.to_owned(),
            recovery_digests
                .iter()
                .map(|d| (d.clone(), false))
                .collect(),
        );
        Ok(true)
    }

    fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        match self.totp.borrow_mut().get_mut(user_id) {
            Some(t) if t.enabled && t.last_used_step < step => {
                t.last_used_step = step;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn use_recovery_code(&self, user_id: &str, digest: &str, _now: Timestamp) -> StoreResult<bool> {
        let mut recovery = self.recovery.borrow_mut();
        let Some(codes) = recovery.get_mut(user_id) else {
            return Ok(false);
        };
        match codes.iter_mut().find(|(d, used)| d == digest && !*used) {
            Some(code) => {
                code.1 = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u64> {
        Ok(self.recovery.borrow().get(user_id).map_or(0, |codes| {
            codes.iter().filter(|(_, used)| !used).count() as u64
        }))
    }

    fn disable_totp(&self, user_id: &str) -> StoreResult<bool> {
        self.recovery.borrow_mut().remove(user_id);
        self.challenges
            .borrow_mut()
            .retain(|_, (challenge, _)| challenge.user_id != user_id);
        Ok(self.totp.borrow_mut().remove(user_id).is_some())
    }

    fn create_challenge(
        &self,
        digest: &str,
        challenge: &MfaChallenge,
        _now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        self.gone_unless_user(&challenge.user_id)?;
        self.challenges
            .borrow_mut()
            .insert(digest.to_owned(), (challenge.clone(), expires_at));
        Ok(())
    }

    fn challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>> {
        Ok(self
            .challenges
            .borrow()
            .get(digest)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(challenge, _)| challenge.clone()))
    }

    fn take_challenge(&self, digest: &str, now: Timestamp) -> StoreResult<Option<MfaChallenge>> {
        let found = self.challenge(digest, now)?;
        self.challenges.borrow_mut().remove(digest);
        Ok(found)
    }
}
