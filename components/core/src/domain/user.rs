//! Users and their roles.

use serde::Serialize;

use crate::domain::Email;

/// A user's id: a UUID in its hyphenated lower-case text form.
pub type UserId = String;

/// What a user may do. Every user has `User`; `Admin` comes from the
/// `admin_emails` variable, so granting or removing it is configuration,
/// effective at the next login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and answers questions.
    User,
    /// Also writes topics and questions.
    Admin,
}

impl Role {
    /// The role's name in tokens and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// The roles of `user`, given the configured admins: `admin` only once the
/// address is verified, so registering an address listed in `admin_emails`
/// before its owner does grants nothing.
pub fn roles_for(user: &User, admin_emails: &[Email]) -> Vec<Role> {
    let mut roles = vec![Role::User];
    if user.email_verified && admin_emails.contains(&user.email) {
        roles.push(Role::Admin);
    }
    roles
}

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Canonical email.
    pub email: Email,
    /// Given name, if told.
    pub first_name: Option<String>,
    /// Family name, if told.
    pub last_name: Option<String>,
    /// Creation time.
    pub created_at: crate::clock::Timestamp,
    /// Whether the owner proved the address.
    pub email_verified: bool,
    /// Whether sign-in needs a second factor (TOTP is on).
    pub mfa_enabled: bool,
}
