//! Checks spin-auth access tokens in another Spin component, without the
//! signing secret: spin-auth (with `jwt_algorithm = EdDSA`) publishes its
//! public keys at `/.well-known/jwks.json`, and this crate fetches them over
//! Spin's outbound HTTP, keeps them in Spin's key-value store, and checks
//! each token's signature, `alg`, `kid`, `typ`, `iss`, `aud`, `exp` and `nbf`.
//!
//! ```no_run
//! # async fn handler(authorization: Option<&str>) -> Result<(), spin_auth_verifier::Error> {
//! use spin_auth_verifier::Verifier;
//!
//! let verifier = Verifier::new("https://auth.example.com/.well-known/jwks.json")
//!     .with_issuer("spin-auth")
//!     .with_audience("spin-auth");
//! let claims = verifier.verify_authorization(authorization).await?;
//! println!("user {}", claims.subject);
//! # Ok(()) }
//! ```
//!
//! The component needs the service's address in `allowed_outbound_hosts`
//! and, for the cache, `key_value_stores = ["default"]` (or another store
//! named with [`Verifier::with_key_value_store`]; without any store, every
//! request fetches the keys).
//!
//! **Caching and rotation.** Spin starts a fresh instance for each request,
//! so memory holds nothing between requests: the key set is kept in the
//! key-value store with the time it was fetched, and refetched when older
//! than [`Verifier::with_max_age`] (default 300 s, the service's own
//! `Cache-Control`). A token whose `kid` is not in the kept set triggers one
//! refetch (a rotation's new key), at most once per
//! [`MIN_REFETCH_INTERVAL`] seconds, so a stream of tokens with made-up
//! `kid`s cannot turn into a stream of requests to the service.
//!
//! **What it does not check.** A token says nothing of its session after it
//! is signed: a logout is seen by spin-auth's own routes at once, but by a
//! verifier only when the token expires (`access_token_ttl`, 15 minutes by
//! default). Keep that lifetime short where it matters.

#![deny(missing_docs)]

mod keys;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use keys::{Expectations, KeySet};

/// Fewest seconds between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH_INTERVAL: u64 = 30;
/// How long a fetched key set is used before it is fetched again, by
/// default (seconds); spin-auth sends `Cache-Control: max-age=300`.
pub const DEFAULT_MAX_AGE: u64 = 300;
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: the user id.
    pub subject: String,
    /// `sid`: the session the token was issued in.
    pub session_id: Option<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// `jti`.
    pub token_id: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl TokenClaims {
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// Authentic, but past `exp` (and the leeway).
    Expired,
    /// Anything else wrong with the token; the text is safe to show.
    InvalidToken(&'static str),
    /// The keys could not be fetched: the fault is not the client's.
    KeysUnavailable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingToken => f.write_str("no Bearer token"),
            Self::Expired => f.write_str("access token expired"),
            Self::InvalidToken(why) => write!(f, "invalid token: {why}"),
            Self::KeysUnavailable(why) => write!(f, "the signing keys are unavailable: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The HTTP status to answer with: 401 for the client's token, 503
    /// when the keys could not be had.
    pub fn status(&self) -> u16 {
        match self {
            Self::KeysUnavailable(_) => 503,
            _ => 401,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` value for a 401.
    pub fn www_authenticate(&self) -> String {
        match self {
            Self::MissingToken => "Bearer".to_owned(),
            other => format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                other.to_string().replace('"', "'")
            ),
        }
    }
}

/// Checks tokens against one spin-auth deployment's keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    jwks_url: String,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    max_age: u64,
    store: Option<String>,
}

/// A key set as kept in the key-value store.
#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_at: u64,
    jwks: String,
}

impl Verifier {
    /// Keys from `jwks_url` (the service's `/.well-known/jwks.json`);
    /// tokens must have `iss` and `aud` `spin-auth` (the service's
    /// defaults), 60 s leeway, and the key set is cached in the key-value
    /// store `default`.
    pub fn new(jwks_url: impl Into<String>) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: "spin-auth".to_owned(),
            audience: "spin-auth".to_owned(),
            leeway_seconds: 60,
            max_age: DEFAULT_MAX_AGE,
            store: Some("default".to_owned()),
        }
    }

    /// The `iss` tokens must carry (spin-auth's `issuer`).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` tokens must carry (spin-auth's `audience`).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }

    /// How long a fetched key set is used, seconds.
    pub fn with_max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// Cache the key set in this key-value store; `None`: no cache (every
    /// verification fetches the keys).
    pub fn with_key_value_store(mut self, label: Option<&str>) -> Self {
        self.store = label.map(str::to_owned);
        self
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub async fn verify_authorization(
        &self,
        authorization: Option<&str>,
    ) -> Result<TokenClaims, Error> {
        let value = authorization.ok_or(Error::MissingToken)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(Error::MissingToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::MissingToken);
        }
        self.verify(token.trim()).await
    }

    /// Checks `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, Error> {
        let kid = keys::key_id(token)?;
        let expect = Expectations {
            issuer: &self.issuer,
            audience: &self.audience,
            leeway_seconds: self.leeway_seconds,
        };
        let now = now();
        let kept = self.kept();
        let (set, fetched_at) = match kept {
            Some(cached) if now.saturating_sub(cached.fetched_at) < self.max_age => {
                match KeySet::parse(cached.jwks.as_bytes()) {
                    Ok(set) => (set, cached.fetched_at),
                    Err(_) => (self.refetch(now).await?, now),
                }
            }
            _ => (self.refetch(now).await?, now),
        };
        if !set.contains(&kid) && now.saturating_sub(fetched_at) >= MIN_REFETCH_INTERVAL {
            // A key newer than the kept set: the service may have rotated.
            return self.refetch(now).await?.verify(token, &expect);
        }
        set.verify(token, &expect)
    }

    /// The kept key set, if there is a store and it has one. A store that
    /// cannot be read is treated as empty: the keys are then fetched.
    fn kept(&self) -> Option<Cached> {
        let store = spin_sdk::key_value::Store::open(self.store.as_deref()?).ok()?;
        let bytes = store.get(&self.cache_key()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    fn cache_key(&self) -> String {
        format!("spin-auth-verifier:jwks:{}", self.jwks_url)
    }

    /// Fetches the key set and keeps it.
    async fn refetch(&self, now: u64) -> Result<KeySet, Error> {
        let jwks = fetch(&self.jwks_url).await?;
        let set = KeySet::parse(jwks.as_bytes()).map_err(Error::KeysUnavailable)?;
        if let Some(store) = self
            .store
            .as_deref()
            .and_then(|label| spin_sdk::key_value::Store::open(label).ok())
        {
            let cached = Cached {
                fetched_at: now,
                jwks,
            };
            // A failed write only costs a fetch next time.
            let _ = serde_json::to_vec(&cached).map(|bytes| store.set(&self.cache_key(), &bytes));
        }
        Ok(set)
    }
}

async fn fetch(url: &str) -> Result<String, Error> {
    let request = spin_sdk::http::Request::get(url)
        .header("accept", "application/json")
        .build();
    let response: spin_sdk::http::Response = spin_sdk::http::send(request)
        .await
        .map_err(|e| Error::KeysUnavailable(format!("fetching {url}: {e}")))?;
    if *response.status() != 200 {
        return Err(Error::KeysUnavailable(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    if response.body().len() > MAX_JWKS_BYTES {
        return Err(Error::KeysUnavailable(format!(
            "{url}: the key set is too large"
        )));
    }
    String::from_utf8(response.into_body())
        .map_err(|_| Error::KeysUnavailable(format!("{url}: the key set is not UTF-8")))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
