//! Users and the audit trail in the SQL database.

use crate::clock::Timestamp;
use crate::domain::{Email, User, parse_role_list};
use crate::store::sql::{Dialect, RELAXED_CTE, Row, SqlStore, SqlValue, schema_is_current};
use crate::store::{
    AuditEvent, AuditLog, AuditQuery, AuditRecord, Credentials, NewUser, StoreError, StoreResult,
    UserStore, record_or_log, user_by_id_then_record,
};

pub(super) fn user_from_row(row: &Row) -> anyhow::Result<User> {
    let email = row.text(1)?;
    Ok(User {
        id: row.text(0)?,
        email: Email::parse(&email).map_err(|e| anyhow::anyhow!("stored email {e}"))?,
        first_name: row.optional_text(2)?,
        last_name: row.optional_text(3)?,
        created_at: row.int(4)?,
        email_verified: row.optional_int(5)?.is_some(),
        mfa_enabled: row.optional_int(6)?.is_some(),
        granted_roles: parse_role_list(&row.text(7)?),
        disabled: row.optional_int(8)?.is_some(),
        last_login_at: row.optional_int(9)?,
        admin_withheld: row.int(10)? != 0,
    })
}

/// The user's columns, read by [`user_from_row`]; the seventh is when TOTP
/// was turned on (null when it is off or still pending).
pub(super) const USER_COLUMNS: &str = "id, email, first_name, last_name, created_at, \
     email_verified_at, (SELECT enabled_at FROM user_totp WHERE user_totp.user_id = users.id), \
     roles, disabled_at, last_login_at, admin_withheld";
/// How many columns [`USER_COLUMNS`] has.
pub(super) const USER_COLUMN_COUNT: usize = 11;

impl UserStore for SqlStore {
    fn insert_user(&self, user: &NewUser<'_>) -> StoreResult<bool> {
        self.insert_unique(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                user.id.into(),
                user.email.as_str().into(),
                user.password_hash.into(),
                user.first_name.into(),
                user.last_name.into(),
                user.created_at.into(),
            ],
        )
    }

    fn user_by_email(&self, email: &Email) -> StoreResult<Option<(User, Credentials)>> {
        let rows = self.read(
            &format!(
                "SELECT {USER_COLUMNS}, password_hash, credential_version FROM users WHERE email = $1"
            ),
            &[email.as_str().into()],
        )?;
        rows.first()
            .map(|row| {
                let credentials = Credentials {
                    hash: row.text(USER_COLUMN_COUNT)?,
                    version: row.int(USER_COLUMN_COUNT + 1)?,
                };
                Ok((user_from_row(row)?, credentials))
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn credentials(&self, id: &str) -> StoreResult<Option<Credentials>> {
        let rows = self.read(
            "SELECT password_hash, credential_version FROM users WHERE id = $1",
            &[id.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(Credentials {
                    hash: row.text(0)?,
                    version: row.int(1)?,
                })
            })
            .transpose()
            .map_err(StoreError::Other)
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let rows = self.read(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[id.into()],
        )?;
        rows.first()
            .map(user_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }

    fn user_by_id_audited(&self, id: &str, event: &AuditEvent<'_>) -> StoreResult<Option<User>> {
        // SQLite has no INSERT inside WITH.
        if self.dialect() != Dialect::Postgres {
            return user_by_id_then_record(self, self, id, event);
        }
        // The read and the event's insert in one statement: the insert is a
        // data-modifying CTE, for an enabled account only, and like any
        // audit write it commits without waiting for the disk.
        let record = format!(
            "{RELAXED_CTE}, recorded AS (INSERT INTO audit_events \
             (at, event, user_id, session_id, ip, user_agent, detail) \
             SELECT $2, $3, $4, $5, $6, $7, $8 FROM relaxed, users \
             WHERE users.id = $1 AND users.disabled_at IS NULL AND {})",
            schema_is_current()
        );
        let read = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let params: Vec<SqlValue> = std::iter::once(id.into())
            .chain(event_values(event))
            .collect();
        match self.read_writing(&record, &read, &params) {
            Ok(rows) => rows
                .first()
                .map(user_from_row)
                .transpose()
                .map_err(StoreError::Other),
            Err(error @ (StoreError::Unavailable(..) | StoreError::Refused(_))) => Err(error),
            // The read may not fail for the sake of the trail: without it.
            Err(error) => {
                eprintln!(
                    "cannot read an account with its {} event, reading it alone: {error:?}",
                    event.event
                );
                self.user_by_id(id)
            }
        }
    }

    fn upgrade_password_hash(&self, id: &str, old: &Credentials, hash: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND credential_version = $2",
            &[id.into(), old.version.into(), hash.into()],
        )?;
        Ok(())
    }

    fn mark_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1",
            &[id.into(), now.into()],
        )?;
        Ok(())
    }

    fn record_login(
        &self,
        id: &str,
        checked: i64,
        event: &AuditEvent<'_>,
    ) -> StoreResult<Option<i64>> {
        let version = |rows: Vec<Row>| -> StoreResult<Option<i64>> {
            rows.first()
                .map(|row| row.int(0))
                .transpose()
                .map_err(StoreError::Other)
        };
        if self.dialect() == Dialect::Postgres {
            // One statement. The version is read under the row's lock, so
            // it is the newest committed one, and the time and the event
            // (data-modifying CTEs, the event only beside the time) are
            // written only while it is the one checked; like any audit
            // write they commit without waiting for the disk.
            let current = schema_is_current();
            let writes = format!(
                "{RELAXED_CTE}, credentials AS (SELECT credential_version FROM users \
                 WHERE id = $1 FOR UPDATE), \
                 login AS (UPDATE users SET last_login_at = $2, admin_withheld = 0 \
                 FROM relaxed, credentials \
                 WHERE users.id = $1 AND credentials.credential_version = $9 AND {current} \
                 RETURNING users.id), \
                 recorded AS (INSERT INTO audit_events \
                 (at, event, user_id, session_id, ip, user_agent, detail) \
                 SELECT $2, $3, $4, $5, $6, $7, $8 FROM login WHERE {current})"
            );
            let params: Vec<SqlValue> = std::iter::once(id.into())
                .chain(event_values(event))
                .chain(std::iter::once(checked.into()))
                .collect();
            let read = "SELECT credential_version FROM credentials";
            match self.read_writing(&writes, read, &params) {
                Ok(rows) => return version(rows),
                Err(error @ (StoreError::Unavailable(..) | StoreError::Refused(_))) => {
                    return Err(error);
                }
                // The login may not fail for the sake of its record: in steps.
                Err(error) => eprintln!(
                    "cannot record a login in one statement, recording it in steps: {error:?}"
                ),
            }
        }
        let read = "SELECT credential_version FROM users WHERE id = $1";
        let current = version(self.read(read, &[id.into()])?)?;
        if current != Some(checked) {
            return Ok(current);
        }
        // The time of a login may be lost in a crash; the login may not
        // wait for the disk for it.
        let (relaxed, from) = self.dialect().relaxed_commit();
        let recorded = self.execute(
            &format!(
                "{relaxed}UPDATE users SET last_login_at = $2, admin_withheld = 0{from} \
                 WHERE id = $1 AND credential_version = $3"
            ),
            &[id.into(), event.at.into(), checked.into()],
        );
        match recorded {
            // The password changed since the read: as if read after it.
            Ok(0) => return version(self.read(read, &[id.into()])?),
            Ok(_) => {}
            // The login stands; only the listing's "last login" lags.
            Err(error) => eprintln!("cannot record the time of a login: {error:?}"),
        }
        record_or_log(self, event);
        Ok(current)
    }

    fn change_password_hash(
        &self,
        id: &str,
        checked: Option<i64>,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let set = "UPDATE users SET password_hash = $2, updated_at = $3, \
                   credential_version = credential_version + 1 WHERE id = $1";
        let changed = match checked {
            Some(version) => self.execute(
                &format!("{set} AND credential_version = $4"),
                &[id.into(), hash.into(), now.into(), version.into()],
            )?,
            None => self.execute(set, &[id.into(), hash.into(), now.into()])?,
        };
        Ok(changed > 0)
    }
}

/// An event's columns, in the order `audit_events` inserts name them.
fn event_values(event: &AuditEvent<'_>) -> [SqlValue; 7] {
    [
        event.at.into(),
        event.event.into(),
        event.user_id.into(),
        event.session_id.into(),
        event.ip.into(),
        event.user_agent.into(),
        event.detail.into(),
    ]
}

impl AuditLog for SqlStore {
    fn record(&self, event: &AuditEvent<'_>) -> StoreResult<()> {
        // An event may be lost in a crash (the last fraction of a second's);
        // the request it records may not wait for the disk for it.
        let (relaxed, from) = self.dialect().relaxed_commit();
        self.execute(
            &format!(
                "{relaxed}INSERT INTO audit_events \
                 (at, event, user_id, session_id, ip, user_agent, detail) \
                 SELECT $1, $2, $3, $4, $5, $6, $7{from}"
            ),
            &event_values(event),
        )?;
        Ok(())
    }

    fn list(&self, query: &AuditQuery<'_>) -> StoreResult<Vec<AuditRecord>> {
        self.list_audit(query)
    }
}
