//! What every component needs for a request: its configuration, its
//! stores (opened lazily) and the access token keys; and [`authenticate`],
//! which checks a Bearer token and its session.

use std::cell::OnceCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::http::Request;
use crate::store::Stores;
use crate::tokens::{AccessClaims, AccessKeys, TokenRejection};

/// Settings key of the signing key generated for the embedded setup.
const GENERATED_KEY_SETTING: &str = "generated_jwt_key";

/// One request's configuration and stores.
pub struct Service {
    /// Settings.
    pub config: Config,
    /// Backends.
    pub stores: Stores,
    keys: OnceCell<AccessKeys>,
}
impl Service {
    /// Reads the variables and prepares (but does not connect) the stores.
    pub fn from_spin() -> Result<Self, ApiError> {
        Ok(Self::new(Config::from_spin()?))
    }

    /// A service on `config`.
    pub fn new(config: Config) -> Self {
        let stores = Stores::open(&config.store);
        Self {
            config,
            stores,
            keys: OnceCell::new(),
        }
    }

    /// The access token keys: `jwt_key`, or on the embedded database
    /// without one, a key generated once and kept in that database.
    pub fn keys(&self) -> Result<&AccessKeys, ApiError> {
        if let Some(keys) = self.keys.get() {
            return Ok(keys);
        }
        let secret = match &self.config.jwt_key {
            Some(key) => key.to_vec(),
            None => self.generated_key()?,
        };
        let keys = AccessKeys::new(
            &secret,
            &self.config.issuer,
            &self.config.audience,
            self.config.token_leeway,
        )
        .with_previous(self.config.jwt_previous_key.as_deref().map(Vec::as_slice));
        Ok(self.keys.get_or_init(|| keys))
    }

    /// The embedded setup's signing key. Config only allows this without a
    /// `database_url`, so it lives beside the data it protects.
    fn generated_key(&self) -> Result<Vec<u8>, ApiError> {
        let database = &self.stores.database;
        let stored = match database.setting(GENERATED_KEY_SETTING)? {
            Some(stored) => stored,
            None => {
                let fresh = URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>());
                let stored = database.setting_or_insert(GENERATED_KEY_SETTING, &fresh)?;
                if stored == fresh {
                    eprintln!(
                        "warning: jwt_key is not set; generated a signing key and stored it in the \
                         embedded database. Set jwt_key (32+ bytes) in production."
                    );
                }
                stored
            }
        };
        URL_SAFE_NO_PAD
            .decode(stored)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored signing key: {e}")))
    }
}

/// Checks the Bearer token and that its session is live (so a logout
/// takes effect at once, not when the token expires).
pub fn authenticate(service: &Service, request: &Request) -> Result<AccessClaims, ApiError> {
    let token = request.bearer_token()?;
    let claims = service
        .keys()?
        .verify(token)
        .map_err(|rejection| match rejection {
            TokenRejection::Expired => ApiError::TokenExpired,
            TokenRejection::Invalid(why) => ApiError::InvalidToken(why),
        })?;
    if !service
        .stores
        .sessions()
        .is_live(&claims.session_id, clock::now())?
    {
        return Err(ApiError::InvalidToken("the session has ended"));
    }
    Ok(claims)
}
