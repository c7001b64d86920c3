//! The service's settings, read from Spin application variables.
//!
//! A value that does not parse is never replaced by a default: the request
//! fails with `500 misconfigured` naming the variable, so a typo in
//! production shows at once instead of silently weakening something.
//!
//! Each component reads only what it uses, and spin.toml gives it only
//! those variables: [`Config`] is what every component needs (stores and
//! token verification); [`AuthSettings`] is the `auth` component's own
//! (sessions, throttling, roles, proxies).

use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::domain::Email;
use crate::store::StoreSettings;
use crate::tokens::{MIN_JWT_KEY_BYTES, SigningKey};

/// Most clock skew tolerated on `exp`/`nbf`.
pub const MAX_LEEWAY_SECONDS: u64 = 60;

/// A variable that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, as named in spin.toml.
    pub variable: &'static str,
    /// What is wrong with it, for the operator.
    pub reason: String,
    /// Its provider could not be asked (503, retried), rather than the
    /// value being wrong (500 `misconfigured`).
    pub unreadable: bool,
}

impl ConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
            unreadable: false,
        }
    }
}

/// What every component needs: where the stores are, and how to check an
/// access token.
pub struct Config {
    /// The stores' addresses.
    pub store: StoreSettings,
    /// The HMAC key; `None` when unset, which only the embedded database
    /// allows (a key is then generated and kept there).
    pub jwt_key: Option<Zeroizing<Vec<u8>>>,
    /// The key before the last rotation, still accepted (never used to
    /// sign) so that tokens signed with it live out their short lifetime.
    pub jwt_previous_key: Option<Zeroizing<Vec<u8>>>,
    /// How access tokens are signed.
    pub jwt_algorithm: JwtAlgorithm,
    /// The Ed25519 key that signs under EdDSA; `None` when unset, which
    /// only the embedded database allows (a key is then generated and kept
    /// there).
    pub jwt_private_key: Option<SigningKey>,
    /// The Ed25519 key before the last rotation: still published in the
    /// JWKS and accepted, never used to sign.
    pub jwt_previous_private_key: Option<SigningKey>,
    /// JWT `iss`.
    pub issuer: String,
    /// JWT `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub token_leeway: u64,
}

/// The JWS algorithm of access tokens (`jwt_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with the shared secret `jwt_key`: whoever verifies can
    /// also sign.
    Hs256,
    /// Ed25519 with `jwt_private_key`: anyone can verify with the public
    /// key from the JWKS; only this service signs.
    EdDsa,
}

/// The `auth` component's own settings.
pub struct AuthSettings {
    /// Access token lifetime, seconds.
    pub access_token_ttl: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_token_ttl: u64,
    /// Grace window for a retired refresh token, seconds.
    pub refresh_reuse_grace: u64,
    /// Absolute session lifetime, seconds.
    pub session_max_lifetime: u64,
    /// Accounts that get `admin`.
    pub admin_emails: Vec<Email>,
    /// Failed logins on one account before back-off starts.
    pub login_failures_per_account: u64,
    /// Failed logins from one IP per 15 minutes.
    pub login_failures_per_ip: u64,
    /// Registrations from one IP per hour.
    pub registrations_per_ip: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Refuse tokens to accounts whose address is not verified.
    pub require_verified_email: bool,
    /// Where mail goes, and the links in it.
    pub mail: MailSettings,
    /// The key TOTP secrets are sealed under (`mfa_encryption_key`);
    /// `None` when unset: the embedded database then generates and keeps
    /// one, and with `database_url` enrolment is refused as misconfigured
    /// until it is set.
    pub mfa_encryption_key: Option<Zeroizing<Vec<u8>>>,
}

/// Mail delivery and the links in messages.
pub struct MailSettings {
    /// Base of the links in messages (`https://app.example.com`).
    pub app_url: String,
    /// The HTTP mail API; `None` keeps messages in the outbox and the log.
    pub mail_url: Option<String>,
    /// Bearer token for the mail API.
    pub mail_api_key: Option<Zeroizing<String>>,
    /// The sender.
    pub mail_from: String,
}

/// Why a variable has no value.
enum Missing {
    /// The component does not declare it.
    Undeclared,
    /// Its provider (Vault, say) could not be asked: a retry may work.
    Unreadable(String),
    /// Spin could not resolve it otherwise.
    Unresolved(String),
}

/// A variable's value, or why there is none.
type Lookup = Result<String, Missing>;

/// A variable from Spin.
fn spin_variable(name: &str) -> Lookup {
    use spin_sdk::variables::Error;
    spin_sdk::variables::get(name).map_err(|error| match error {
        Error::Provider(cause) => Missing::Unreadable(cause),
        Error::Other(cause) => Missing::Unresolved(cause),
        Error::InvalidName(_) | Error::Undefined(_) => Missing::Undeclared,
    })
}

/// A lookup that knows only values and undeclared names (tests, tools).
fn declared(lookup: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Lookup {
    move |name| lookup(name).ok_or(Missing::Undeclared)
}

/// Reads variables from a lookup, each checked.
struct Variables<F: Fn(&str) -> Lookup>(F);

impl<F: Fn(&str) -> Lookup> Variables<F> {
    fn get(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name).map_err(|missing| match missing {
            Missing::Undeclared => {
                ConfigError::new(name, "is not declared for this component in spin.toml")
            }
            Missing::Unreadable(cause) => ConfigError {
                unreadable: true,
                ..ConfigError::new(name, format!("cannot be read from its provider: {cause}"))
            },
            Missing::Unresolved(cause) => {
                // Spin's words stay in the log; the client gets the name.
                eprintln!("variable {name} cannot be resolved: {cause}");
                ConfigError::new(name, "cannot be resolved (the cause is in the log)")
            }
        })
    }

    fn optional_url(
        &self,
        name: &'static str,
        schemes: &[&str],
    ) -> Result<Option<String>, ConfigError> {
        let value = self.get(name)?.trim().to_owned();
        if value.is_empty() {
            return Ok(None);
        }
        if !schemes
            .iter()
            .any(|scheme| value.starts_with(&format!("{scheme}://")))
        {
            return Err(ConfigError::new(
                name,
                format!("must start with {}://", schemes.join(":// or ")),
            ));
        }
        Ok(Some(value))
    }

    fn number(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        self.get(name)?
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name)?.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::new(name, "must be true or false")),
        }
    }

    fn text(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.get(name)?.trim().to_owned();
        if value.is_empty() {
            return Err(ConfigError::new(name, "must not be empty"));
        }
        Ok(value)
    }

    fn key(&self, name: &'static str) -> Result<Option<Zeroizing<Vec<u8>>>, ConfigError> {
        let value = Zeroizing::new(self.get(name)?);
        if value.is_empty() {
            Ok(None)
        } else if value.len() < MIN_JWT_KEY_BYTES {
            Err(ConfigError::new(
                name,
                format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
            ))
        } else {
            Ok(Some(Zeroizing::new(value.as_bytes().to_vec())))
        }
    }

    fn signing_key(&self, name: &'static str) -> Result<Option<SigningKey>, ConfigError> {
        let value = Zeroizing::new(self.get(name)?);
        if value.trim().is_empty() {
            return Ok(None);
        }
        SigningKey::from_pem(&value)
            .map(Some)
            .map_err(|reason| ConfigError::new(name, reason))
    }

    fn algorithm(&self, name: &'static str) -> Result<JwtAlgorithm, ConfigError> {
        match self.get(name)?.trim() {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "EdDSA" => Ok(JwtAlgorithm::EdDsa),
            _ => Err(ConfigError::new(name, "must be HS256 or EdDSA")),
        }
    }

    fn list<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        self.get(name)?
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse(entry).map_err(|reason| ConfigError::new(name, reason)))
            .collect()
    }
}

const DAY: u64 = 86_400;

/// Where the stores are, from the component's Spin variables.
pub fn store_settings_from_spin() -> Result<StoreSettings, ConfigError> {
    store_settings(&Variables(spin_variable))
}

fn store_settings<F: Fn(&str) -> Lookup>(
    variables: &Variables<F>,
) -> Result<StoreSettings, ConfigError> {
    Ok(StoreSettings {
        database_url: variables.optional_url("database_url", &["postgres", "postgresql"])?,
        redis_url: variables.optional_url("redis_url", &["redis", "rediss"])?,
        redis_key_prefix: variables.get("redis_key_prefix")?,
    })
}

impl Config {
    /// Reads the component's Spin variables.
    pub fn from_spin() -> Result<Self, ConfigError> {
        Self::read(&Variables(spin_variable))
    }

    /// Reads settings from `lookup`.
    pub fn from_source(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Variables(declared(lookup)))
    }

    fn read<F: Fn(&str) -> Lookup>(variables: &Variables<F>) -> Result<Self, ConfigError> {
        let store = store_settings(variables)?;
        let jwt_algorithm = variables.algorithm("jwt_algorithm")?;
        let jwt_key = variables.key("jwt_key")?;
        let jwt_private_key = variables.signing_key("jwt_private_key")?;
        // Only the embedded database may keep a generated key: beside a
        // server, every instance must sign with the same configured key.
        let missing = match jwt_algorithm {
            JwtAlgorithm::Hs256 => jwt_key.is_none().then_some("jwt_key"),
            JwtAlgorithm::EdDsa => jwt_private_key.is_none().then_some("jwt_private_key"),
        };
        if let (Some(variable), Some(_)) = (missing, &store.database_url) {
            return Err(ConfigError::new(
                variable,
                "is required when database_url is set",
            ));
        }
        Ok(Self {
            store,
            jwt_algorithm,
            jwt_key,
            jwt_previous_key: variables.key("jwt_previous_key")?,
            jwt_private_key,
            jwt_previous_private_key: variables.signing_key("jwt_previous_private_key")?,
            issuer: variables.text("issuer")?,
            audience: variables.text("audience")?,
            token_leeway: variables.number("token_leeway", 0..=MAX_LEEWAY_SECONDS)?,
        })
    }
}

impl AuthSettings {
    /// Reads the `auth` component's Spin variables.
    pub fn from_spin() -> Result<Self, ConfigError> {
        Self::read(&Variables(spin_variable))
    }

    /// Reads settings from `lookup`.
    pub fn from_source(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Variables(declared(lookup)))
    }

    fn read<F: Fn(&str) -> Lookup>(variables: &Variables<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            access_token_ttl: variables.number("access_token_ttl", 1..=DAY)?,
            refresh_token_ttl: variables.number("refresh_token_ttl", 60..=365 * DAY)?,
            refresh_reuse_grace: variables.number("refresh_reuse_grace", 0..=300)?,
            session_max_lifetime: variables.number("session_max_lifetime", 60..=3650 * DAY)?,
            admin_emails: admin_emails(variables)?,
            login_failures_per_account: variables
                .number("login_failures_per_account", 1..=1_000)?,
            login_failures_per_ip: variables.number("login_failures_per_ip", 1..=1_000_000)?,
            registrations_per_ip: variables.number("registrations_per_ip", 1..=1_000_000)?,
            trusted_proxies: trusted_proxies(variables)?,
            require_verified_email: variables.flag("require_verified_email")?,
            mail: MailSettings {
                app_url: variables
                    .optional_url("app_url", &["http", "https"])?
                    .ok_or_else(|| ConfigError::new("app_url", "must not be empty"))?
                    .trim_end_matches('/')
                    .to_owned(),
                mail_url: variables.optional_url("mail_url", &["http", "https"])?,
                mail_api_key: Some(Zeroizing::new(variables.get("mail_api_key")?))
                    .filter(|key| !key.trim().is_empty()),
                mail_from: variables.text("mail_from")?,
            },
            mfa_encryption_key: variables.key("mfa_encryption_key")?,
        })
    }
}

/// What the `admin` component reads besides [`Config`].
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Addresses that are admins by configuration (see
    /// [`crate::domain::roles_for`]).
    pub admin_emails: Vec<Email>,
    /// Proxies whose `X-Forwarded-For` is believed (for the audit trail).
    pub trusted_proxies: Vec<IpNet>,
}

impl AdminSettings {
    /// Reads the `admin` component's Spin variables.
    pub fn from_spin() -> Result<Self, ConfigError> {
        Self::read(&Variables(spin_variable))
    }

    /// Reads settings from `lookup`.
    pub fn from_source(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Variables(declared(lookup)))
    }

    fn read<F: Fn(&str) -> Lookup>(variables: &Variables<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            admin_emails: admin_emails(variables)?,
            trusted_proxies: trusted_proxies(variables)?,
        })
    }
}

fn admin_emails<F: Fn(&str) -> Lookup>(
    variables: &Variables<F>,
) -> Result<Vec<Email>, ConfigError> {
    variables.list("admin_emails", |entry| {
        Email::parse(entry).map_err(|reason| format!("has an entry that {reason}"))
    })
}

fn trusted_proxies<F: Fn(&str) -> Lookup>(
    variables: &Variables<F>,
) -> Result<Vec<IpNet>, ConfigError> {
    variables.list("trusted_proxies", |entry| {
        parse_network(entry)
            .ok_or_else(|| format!("has {entry:?}, which is not an address or CIDR"))
    })
}

/// `address[/prefix]`; a bare address is a network of one (/32 or /128).
fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
