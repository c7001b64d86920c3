//! Users and their roles.

use serde::Serialize;

use crate::domain::Email;

/// A user's id: a UUID in its hyphenated lower-case text form.
pub type UserId = String;

/// What a user may do. Every user has `User`; `Admin` is granted by an
/// admin (kept with the user) or by the `admin_emails` variable (the
/// bootstrap: at every login, for as long as the address is listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and answers questions.
    User,
    /// Also writes topics and questions.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 2] = [Role::User, Role::Admin];

    /// The role named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role's name in tokens and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// The roles of `user`: those granted to them, and `admin` if the address
/// is in `admin_emails` and verified (so registering a listed address
/// before its owner does grants nothing), unless an admin took it away
/// since the last login. Always `user`; in [`Role::ALL`]'s order.
pub fn roles_for(user: &User, admin_emails: &[Email]) -> Vec<Role> {
    let configured =
        user.email_verified && !user.admin_withheld && admin_emails.contains(&user.email);
    Role::ALL
        .into_iter()
        .filter(|role| {
            *role == Role::User
                || user.granted_roles.contains(role)
                || (*role == Role::Admin && configured)
        })
        .collect()
}

/// Whether `user` is an admin who can act as one: granted or configured,
/// and not disabled.
pub fn is_active_admin(user: &User, admin_emails: &[Email]) -> bool {
    !user.disabled && roles_for(user, admin_emails).contains(&Role::Admin)
}

/// Whether a change to user `target_id` leaves an active admin, given the
/// active admins before it (see [`is_active_admin`]) and the user after
/// it (`None`: deleted). A change to someone who was not an admin always
/// does; so does any change when there was no admin to begin with.
pub fn leaves_an_admin(
    admins_before: &[User],
    target_id: &str,
    after: Option<&User>,
    admin_emails: &[Email],
) -> bool {
    if !admins_before.iter().any(|admin| admin.id == target_id) {
        return true;
    }
    admins_before.iter().any(|admin| admin.id != target_id)
        || after.is_some_and(|user| is_active_admin(user, admin_emails))
}

/// `roles` as kept with a user: comma-separated, see [`granted`].
pub fn role_list(roles: &[Role]) -> String {
    granted(roles)
        .into_iter()
        .map(Role::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The roles kept as `list` (see [`role_list`]); unknown names are
/// skipped.
pub fn parse_role_list(list: &str) -> Vec<Role> {
    granted(&list.split(',').filter_map(Role::parse).collect::<Vec<_>>())
}

/// `roles` as granted: `user` always, each once, in [`Role::ALL`]'s order.
pub fn granted(roles: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|role| *role == Role::User || roles.contains(role))
        .collect()
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
    /// The roles an admin granted (always with `user`); see [`roles_for`]
    /// for the roles in force.
    pub granted_roles: Vec<Role>,
    /// Whether an admin took `admin` away since the last login: until the
    /// next one, `admin_emails` does not grant it.
    pub admin_withheld: bool,
    /// Whether an admin disabled the account: no login, no session.
    pub disabled: bool,
    /// The last successful login, if any.
    pub last_login_at: Option<crate::clock::Timestamp>,
}
