//! Access tokens (signed JWTs the client shows on every request) and
//! refresh tokens (random secrets the server remembers, by digest only).

mod access;
mod refresh;

pub use access::{AccessClaims, AccessKeys, TokenRejection};
pub use refresh::{RefreshToken, TokenDigest};
