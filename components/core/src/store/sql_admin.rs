//! The administration's queries in the SQL database: the user listing,
//! changes and deletion guarded by the last-admin rule, and the audit
//! listing.

use crate::clock::Timestamp;
use crate::domain::{Email, User, is_active_admin, leaves_an_admin, role_list};
use crate::store::sql::{Dialect, Row, SqlStore, SqlValue};
use crate::store::sql_users::{USER_COLUMNS, user_from_row};
use crate::store::{
    AuditQuery, AuditRecord, Guarded, StoreError, StoreResult, UserChange, UserDirectory, UserPage,
};

/// Sorts after every character an email can hold: the end of a prefix's
/// range of emails.
const LAST_CHAR: char = '\u{10FFFF}';

/// The tables whose rows name a user by `user_id`, children first.
const USER_TABLES: &[&str] = &[
    "answers",
    "email_tokens",
    "user_totp",
    "recovery_codes",
    "mfa_challenges",
];

fn users_from(rows: &[Row]) -> StoreResult<Vec<User>> {
    rows.iter()
        .map(user_from_row)
        .collect::<anyhow::Result<_>>()
        .map_err(StoreError::Other)
}

impl SqlStore {
    /// How emails compare in listings: byte order on both databases, so a
    /// page never depends on PostgreSQL's collation.
    fn email_order(&self) -> &'static str {
        match self.dialect() {
            Dialect::Postgres => "email COLLATE \"C\"",
            Dialect::Sqlite => "email",
        }
    }

    /// The active admins and the user `id`, locked until the transaction
    /// ends, in one statement and in id order (so two changes never lock
    /// the same rows in opposite orders): a concurrent change to any of
    /// them waits, then sees this one's outcome.
    fn locked_admins_and(
        &self,
        id: &str,
        admin_emails: &[Email],
    ) -> StoreResult<(Vec<User>, Option<User>)> {
        let mut params: Vec<SqlValue> = vec![id.into()];
        let mut condition = "roles LIKE '%admin%'".to_owned();
        if !admin_emails.is_empty() {
            let placeholders: Vec<String> = (2..=admin_emails.len() + 1)
                .map(|n| format!("${n}"))
                .collect();
            condition = format!("{condition} OR email IN ({})", placeholders.join(", "));
            params.extend(admin_emails.iter().map(|email| email.as_str().into()));
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE id = $1 OR (disabled_at IS NULL AND ({condition})) ORDER BY id{}",
            self.dialect().for_update()
        );
        let rows = users_from(&self.query(&sql, &params)?)?;
        let target = rows.iter().find(|user| user.id == id).cloned();
        let admins = rows
            .into_iter()
            .filter(|user| is_active_admin(user, admin_emails))
            .collect();
        Ok((admins, target))
    }

    /// The audit listing (see [`crate::store::AuditLog::list`]).
    pub(super) fn list_audit(&self, query: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>> {
        let mut conditions = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        let mut bind = |column: &str, value: SqlValue, conditions: &mut Vec<String>| {
            params.push(value);
            conditions.push(format!("{column} ${}", params.len()));
        };
        if let Some(user_id) = query.user_id {
            bind("user_id =", user_id.into(), &mut conditions);
        }
        if let Some(event) = query.event {
            bind("event =", event.into(), &mut conditions);
        }
        if let Some(before) = query.before {
            bind("id <", before.into(), &mut conditions);
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        params.push((query.limit as i64).into());
        let sql = format!(
            "SELECT id, at, event, user_id, session_id, ip, user_agent, detail \
             FROM audit_events {filter} ORDER BY id DESC LIMIT ${}",
            params.len()
        );
        self.read(&sql, &params)?
            .iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.int(0)?,
                    at: row.int(1)?,
                    event: row.text(2)?,
                    user_id: row.optional_text(3)?,
                    session_id: row.optional_text(4)?,
                    ip: row.text(5)?,
                    user_agent: row.text(6)?,
                    detail: row.optional_text(7)?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Other)
    }
}

impl UserDirectory for SqlStore {
    fn list_users(&self, page: &UserPage<'_>) -> StoreResult<Vec<User>> {
        let order = self.email_order();
        let end = format!("{}{LAST_CHAR}", page.prefix);
        let mut params: Vec<SqlValue> = vec![page.prefix.into(), end.as_str().into()];
        let mut after = String::new();
        if let Some(last) = page.after {
            params.push(last.into());
            after = format!(" AND {order} > ${}", params.len());
        }
        params.push((page.limit as i64).into());
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {order} >= $1 AND {order} < $2{after} \
             ORDER BY {order} LIMIT ${}",
            params.len()
        );
        users_from(&self.read(&sql, &params)?)
    }

    fn change_user(
        &self,
        id: &str,
        change: &UserChange,
        admin_emails: &[Email],
        now: Timestamp,
    ) -> StoreResult<Guarded<User>> {
        self.transaction(|store| {
            let (admins, user) = store.locked_admins_and(id, admin_emails)?;
            let Some(before) = user else {
                return Ok(Guarded::NotFound);
            };
            let was_disabled = before.disabled;
            let user = change.apply(before);
            if !leaves_an_admin(&admins, id, Some(&user), admin_emails) {
                return Ok(Guarded::LastAdmin);
            }
            // Disabling stamps the time and bumps the credentials' version;
            // enabling clears the stamp; otherwise it is kept.
            let params: Vec<SqlValue> = vec![
                id.into(),
                role_list(&user.granted_roles).as_str().into(),
                now.into(),
                i64::from(user.admin_withheld).into(),
            ];
            let disabling = match (was_disabled, user.disabled) {
                (false, true) => ", disabled_at = $3, credential_version = credential_version + 1",
                (true, false) => ", disabled_at = NULL",
                _ => "",
            };
            store.execute(
                &format!(
                    "UPDATE users SET roles = $2, updated_at = $3, admin_withheld = $4{disabling} \
                     WHERE id = $1"
                ),
                &params,
            )?;
            Ok(Guarded::Done(user))
        })
    }

    fn deletable(&self, id: &str, admin_emails: &[Email]) -> StoreResult<Guarded<User>> {
        let (admins, user) = self.locked_admins_and(id, admin_emails)?;
        let Some(user) = user else {
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
        self.transaction(|store| {
            let user = match store.deletable(id, admin_emails)? {
                Guarded::Done(user) => user,
                refused => return Ok(refused),
            };
            // Under the admins' row locks: a deletion that a concurrent one
            // makes the last admin's waits here and is refused above, not
            // after it has ended that admin's sessions.
            end_sessions()?;
            // Explicitly, child tables first, not left to ON DELETE CASCADE:
            // SQLite enforces foreign keys only where it was built or told
            // to (Spin's and the local host's are).
            store.execute(
                "DELETE FROM refresh_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE user_id = $1)",
                &[id.into()],
            )?;
            store.execute("DELETE FROM sessions WHERE user_id = $1", &[id.into()])?;
            for table in USER_TABLES {
                store.execute(
                    &format!("DELETE FROM {table} WHERE user_id = $1"),
                    &[id.into()],
                )?;
            }
            store.execute(
                "DELETE FROM outbox WHERE recipient = $1",
                &[user.email.as_str().into()],
            )?;
            store.execute("DELETE FROM users WHERE id = $1", &[id.into()])?;
            Ok(Guarded::Done(user))
        })
    }
}
