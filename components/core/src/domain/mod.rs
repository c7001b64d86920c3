//! Values that are valid by construction: each has one constructor,
//! `parse`, that checks it. Holding one means it was checked.

mod email;
mod id;
mod password;
mod slug;
mod user;

pub use email::Email;
pub use id::parse_id;
pub use password::Password;
pub use slug::TopicSlug;
pub use user::{
    Role, User, UserId, granted, is_active_admin, leaves_an_admin, parse_role_list, role_list,
    roles_for,
};
