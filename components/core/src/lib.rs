//! The library shared by spin-auth's components (auth, questions, admin).
//!
//! - [`domain`]: values that are valid by construction (`Email`,
//!   `Password`, `TopicSlug`, ...), each with a `parse` that checks it once.
//! - [`password`]: Argon2id hashing, verification and re-hash decisions.
//! - [`tokens`]: access JWTs and refresh tokens.
//! - [`store`]: storage traits and their PostgreSQL, SQLite and Redis
//!   backends, chosen from the configuration.
//! - [`auth`], [`questions`]: the use cases, one function per route.
//! - [`error`] and [`problem`]: one error type, rendered as problem+json.
//! - [`http`]: the request and response shapes the components map to.
//!
//! Components only read the request, call a use case and write the
//! response; they hold no SQL and no cryptography.

pub mod admin;
pub mod api_types;
pub mod auth;
pub mod clock;
pub mod component;
pub mod config;
pub mod docs;
pub mod domain;
pub mod error;
pub mod http;
pub mod mail;
pub mod password;
pub mod problem;
pub mod questions;
pub mod random;
pub mod routing;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod totp;

pub use error::ApiError;
