//! The administration's view of the users, in memory, with the semantics
//! of the SQL implementation: byte-ordered listing, and changes guarded by
//! the last-admin rule.

use super::MemoryStore;
use crate::clock::Timestamp;
use crate::domain::{Email, User, is_active_admin, leaves_an_admin};
use crate::store::{Guarded, StoreResult, UserChange, UserDirectory, UserPage};

impl MemoryStore {
    fn active_admins(&self, admin_emails: &[Email]) -> Vec<User> {
        self.users
            .borrow()
            .values()
            .map(|(user, _)| user.clone())
            .filter(|user| is_active_admin(user, admin_emails))
            .collect()
    }
}

impl UserDirectory for MemoryStore {
    fn list_users(&self, page: &UserPage<'_>) -> StoreResult<Vec<User>> {
        let mut users: Vec<User> = self
            .users
            .borrow()
            .values()
            .map(|(user, _)| self.with_mfa(user.clone()))
            .filter(|user| user.email.as_str().starts_with(page.prefix))
            .filter(|user| page.after.is_none_or(|after| user.email.as_str() > after))
            .collect();
        users.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
        users.truncate(page.limit);
        Ok(users)
    }

    fn change_user(
        &self,
        id: &str,
        change: &UserChange,
        admin_emails: &[Email],
        _now: Timestamp,
    ) -> StoreResult<Guarded<User>> {
        let admins = self.active_admins(admin_emails);
        let Some((before, _)) = self.users.borrow().get(id).cloned() else {
            return Ok(Guarded::NotFound);
        };
        let was_disabled = before.disabled;
        let user = change.apply(before);
        if !leaves_an_admin(&admins, id, Some(&user), admin_emails) {
            return Ok(Guarded::LastAdmin);
        }
        if let Some((stored, credentials)) = self.users.borrow_mut().get_mut(id) {
            if !was_disabled && user.disabled {
                credentials.version += 1;
            }
            *stored = user.clone();
        }
        Ok(Guarded::Done(self.with_mfa(user)))
    }

    fn deletable(&self, id: &str, admin_emails: &[Email]) -> StoreResult<Guarded<User>> {
        let admins = self.active_admins(admin_emails);
        let Some((user, _)) = self.users.borrow().get(id).cloned() else {
            return Ok(Guarded::NotFound);
        };
        if !leaves_an_admin(&admins, id, None, admin_emails) {
            return Ok(Guarded::LastAdmin);
        }
        Ok(Guarded::Done(user))
    }

    fn delete_user(
        &self,
        id: &str,
        admin_emails: &[Email],
        end_sessions: &dyn Fn() -> StoreResult<()>,
    ) -> StoreResult<Guarded<User>> {
        let outcome = self.deletable(id, admin_emails)?;
        if let Guarded::Done(user) = &outcome {
            end_sessions()?;
            self.forget_user_data(id, user);
        }
        Ok(outcome)
    }
}
