//! What every component needs for a request: its configuration, its
//! stores (opened lazily) and the access token keys; and [`authenticate`],
//! which checks a Bearer token and its session.

use std::cell::OnceCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use zeroize::Zeroizing;

use crate::clock;
use crate::config::{Config, JwtAlgorithm};
use crate::error::ApiError;
use crate::http::Request;
use crate::store::Stores;
use crate::tokens::{AccessClaims, AccessKeys, SigningKey, TokenRejection};

/// Settings key of the signing key generated for the embedded setup.
const GENERATED_KEY_SETTING: &str = "generated_jwt_key";
/// Settings key of the Ed25519 key generated for the embedded setup (PEM).
const GENERATED_PRIVATE_KEY_SETTING: &str = "generated_jwt_private_key";

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

    /// The access token keys: `jwt_key` (HS256) or `jwt_private_key`
    /// (EdDSA), or on the embedded database without one, a key generated
    /// once and kept in that database.
    pub fn keys(&self) -> Result<&AccessKeys, ApiError> {
        if let Some(keys) = self.keys.get() {
            return Ok(keys);
        }
        let config = &self.config;
        let keys = match config.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = match &config.jwt_key {
                    Some(key) => key.to_vec(),
                    None => self.generated_key()?,
                };
                AccessKeys::new(
                    &secret,
                    &config.issuer,
                    &config.audience,
                    config.token_leeway,
                )
                .with_previous(config.jwt_previous_key.as_deref().map(Vec::as_slice))
            }
            JwtAlgorithm::EdDsa => {
                let current = match &config.jwt_private_key {
                    Some(key) => key.clone(),
                    None => self.generated_private_key()?,
                };
                AccessKeys::ed25519(
                    current,
                    config.jwt_previous_private_key.clone(),
                    &config.issuer,
                    &config.audience,
                    config.token_leeway,
                )
            }
        };
        Ok(self.keys.get_or_init(|| keys))
    }

    /// The embedded setup's Ed25519 key (see [`Service::generated_secret`]).
    fn generated_private_key(&self) -> Result<SigningKey, ApiError> {
        let stored =
            self.generated_secret(GENERATED_PRIVATE_KEY_SETTING, "jwt_private_key", || {
                SigningKey::generate().to_pem()
            })?;
        SigningKey::from_pem(&stored)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored Ed25519 signing key {e}")))
    }

    /// The embedded setup's HS256 key (see [`Service::generated_secret`]).
    fn generated_key(&self) -> Result<Vec<u8>, ApiError> {
        let stored = self.generated_secret(GENERATED_KEY_SETTING, "jwt_key", random_secret)?;
        URL_SAFE_NO_PAD
            .decode(stored.as_bytes())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored signing key: {e}")))
    }

    /// A secret the embedded setup uses when `variable` is not set: made by
    /// `generate` in the first instance that needs it and kept in the
    /// database as setting `name`, so a concurrent first request gets the
    /// same one. Config only allows this without a `database_url`, so the
    /// secret lives beside the data it protects.
    pub(crate) fn generated_secret(
        &self,
        name: &str,
        variable: &str,
        generate: impl FnOnce() -> Zeroizing<String>,
    ) -> Result<Zeroizing<String>, ApiError> {
        let database = &self.stores.database;
        if let Some(stored) = database.setting(name)? {
            return Ok(Zeroizing::new(stored));
        }
        let fresh = generate();
        let stored = Zeroizing::new(database.setting_or_insert(name, &fresh)?);
        if stored == fresh {
            eprintln!(
                "warning: {variable} is not set; generated one and stored it in the embedded \
                 database. Set {variable} in production."
            );
        }
        Ok(stored)
    }
}

/// 32 random bytes, URL-safe base64: a generated symmetric key as kept.
pub(crate) fn random_secret() -> Zeroizing<String> {
    Zeroizing::new(URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>()))
}

/// Checks the Bearer token, that its session is live (so a logout takes
/// effect at once, not when the token expires) and that the session is
/// the token's subject's.
pub fn authenticate(service: &Service, request: &Request) -> Result<AccessClaims, ApiError> {
    let token = request.bearer_token()?;
    let claims = service
        .keys()?
        .verify(token)
        .map_err(|rejection| match rejection {
            TokenRejection::Expired => ApiError::TokenExpired,
            TokenRejection::Invalid(why) => ApiError::InvalidToken(why),
        })?;
    subjects_live_session(service, claims)
}

/// The claims of a Bearer token that is correctly signed but expired (up
/// to `max_age` seconds ago), if its session is still live and its
/// subject's: which session a client means when it logs out after idling
/// past its token's lifetime. `None` for any other token.
pub(crate) fn authenticate_expired(
    service: &Service,
    request: &Request,
    max_age: u64,
) -> Result<Option<AccessClaims>, ApiError> {
    let Ok(claims) = service
        .keys()?
        .verify_expired(request.bearer_token()?, max_age)
    else {
        return Ok(None);
    };
    match subjects_live_session(service, claims) {
        Ok(claims) => Ok(Some(claims)),
        Err(ApiError::InvalidToken(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// `claims` when their session is live and the token's subject's own.
fn subjects_live_session(
    service: &Service,
    claims: AccessClaims,
) -> Result<AccessClaims, ApiError> {
    // The session must be live and the token's subject's own: a token
    // naming someone else's session is not theirs to use.
    let owner = service
        .stores
        .sessions()
        .session_owner(&claims.session_id, clock::now())?;
    match owner {
        Some(owner) if owner == claims.user_id => {}
        Some(_) => {
            // Only a leaked signing key (or a bug) makes such a token:
            // the one place the service can see that, so it says so.
            eprintln!(
                "refused a correctly signed access token whose session {} is not its subject {}'s: \
                 has a signing key leaked?",
                claims.session_id, claims.user_id
            );
            return Err(ApiError::InvalidToken("the session is not the subject's"));
        }
        None => return Err(ApiError::InvalidToken("the session has ended")),
    }
    Ok(claims)
}
