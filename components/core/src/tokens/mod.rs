//! Access tokens (signed JWTs the client shows on every request) and
//! refresh tokens (random secrets the server remembers, by digest only).

mod access;
mod refresh;
pub mod sealed;
mod signing_key;

pub use access::{AccessClaims, AccessKeys, TokenRejection};

/// Shortest acceptable HMAC key: 256 bits, the output size of SHA-256
/// (RFC 7518 section 3.2 requires at least that for HS256).
pub const MIN_JWT_KEY_BYTES: usize = 32;
pub use refresh::{RefreshToken, TokenDigest};
pub use signing_key::SigningKey;
