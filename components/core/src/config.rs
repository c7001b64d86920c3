//! The service's settings, read from Spin application variables.
//!
//! A value that does not parse is never replaced by a default: the request
//! fails with `500 misconfigured` naming the variable, so a typo in
//! production shows at once instead of silently weakening something.

use zeroize::Zeroizing;

use crate::domain::Email;
use crate::error::ApiError;
use crate::http::Cidr;

/// Shortest acceptable HMAC key: 256 bits, the output size of SHA-256
/// (RFC 7518 section 3.2 requires at least that for HS256).
pub const MIN_JWT_KEY_BYTES: usize = 32;
/// Most clock skew tolerated on `exp`/`nbf`.
pub const MAX_LEEWAY_SECONDS: u64 = 60;

/// Every setting, checked.
pub struct Config {
    /// `postgres://...`, or `None` for the embedded SQLite database.
    pub database_url: Option<String>,
    /// `redis://...`, or `None` to keep sessions in the SQL database.
    pub redis_url: Option<String>,
    /// Prepended to every Redis key.
    pub redis_key_prefix: String,
    /// The HMAC key; `None` when unset, which only the embedded database
    /// allows (a key is then generated and kept there).
    pub jwt_key: Option<Zeroizing<Vec<u8>>>,
    /// The key before the last rotation, still accepted (never used to
    /// sign) so that tokens signed with it live out their short lifetime.
    pub jwt_previous_key: Option<Zeroizing<Vec<u8>>>,
    /// JWT `iss`.
    pub issuer: String,
    /// JWT `aud`.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_token_ttl: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_token_ttl: u64,
    /// Grace window for a retired refresh token, seconds.
    pub refresh_reuse_grace: u64,
    /// Absolute session lifetime, seconds.
    pub session_max_lifetime: u64,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub token_leeway: u64,
    /// Accounts that get `admin`.
    pub admin_emails: Vec<Email>,
    /// Failed logins on one account before back-off starts.
    pub login_failures_per_account: u64,
    /// Failed logins from one IP per 15 minutes.
    pub login_failures_per_ip: u64,
    /// Registrations from one IP per hour.
    pub registrations_per_ip: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

impl Config {
    /// Reads the component's Spin variables.
    pub fn from_spin() -> Result<Self, ApiError> {
        Self::from_source(|name| spin_sdk::variables::get(name).ok())
    }

    /// Reads settings from `lookup` (a variable name to its value; `None`
    /// when the component does not declare it).
    pub fn from_source(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ApiError> {
        let get = |name: &'static str| -> Result<String, ApiError> {
            lookup(name).ok_or(ApiError::Misconfigured {
                variable: name,
                reason: "is not declared for this component in spin.toml".to_owned(),
            })
        };
        let optional_url =
            |name: &'static str, schemes: &[&str]| -> Result<Option<String>, ApiError> {
                let value = get(name)?.trim().to_owned();
                if value.is_empty() {
                    return Ok(None);
                }
                if !schemes
                    .iter()
                    .any(|scheme| value.starts_with(&format!("{scheme}://")))
                {
                    return Err(ApiError::Misconfigured {
                        variable: name,
                        reason: format!("must start with {}://", schemes.join(":// or ")),
                    });
                }
                Ok(Some(value))
            };
        let seconds =
            |name: &'static str, range: std::ops::RangeInclusive<u64>| -> Result<u64, ApiError> {
                let value = get(name)?;
                value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| ApiError::Misconfigured {
                        variable: name,
                        reason: format!(
                            "must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    })
            };
        let text = |name: &'static str| -> Result<String, ApiError> {
            let value = get(name)?.trim().to_owned();
            if value.is_empty() {
                return Err(ApiError::Misconfigured {
                    variable: name,
                    reason: "must not be empty".to_owned(),
                });
            }
            Ok(value)
        };

        let database_url = optional_url("database_url", &["postgres", "postgresql"])?;
        let jwt_key = {
            let value = Zeroizing::new(get("jwt_key")?);
            if value.is_empty() {
                if database_url.is_some() {
                    return Err(ApiError::Misconfigured {
                        variable: "jwt_key",
                        reason: "is required when database_url is set".to_owned(),
                    });
                }
                None
            } else if value.len() < MIN_JWT_KEY_BYTES {
                return Err(ApiError::Misconfigured {
                    variable: "jwt_key",
                    reason: format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
                });
            } else {
                Some(Zeroizing::new(value.as_bytes().to_vec()))
            }
        };
        let jwt_previous_key = {
            let value = Zeroizing::new(get("jwt_previous_key")?);
            if value.is_empty() {
                None
            } else if value.len() < MIN_JWT_KEY_BYTES {
                return Err(ApiError::Misconfigured {
                    variable: "jwt_previous_key",
                    reason: format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
                });
            } else {
                Some(Zeroizing::new(value.as_bytes().to_vec()))
            }
        };
        let admin_emails = get("admin_emails")?
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                Email::parse(entry).map_err(|reason| ApiError::Misconfigured {
                    variable: "admin_emails",
                    reason: format!("has an entry that {reason}"),
                })
            })
            .collect::<Result<_, _>>()?;
        let trusted_proxies = get("trusted_proxies")?
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                Cidr::parse(entry).ok_or_else(|| ApiError::Misconfigured {
                    variable: "trusted_proxies",
                    reason: format!("has {entry:?}, which is not an address or CIDR"),
                })
            })
            .collect::<Result<_, _>>()?;
        const DAY: u64 = 86_400;
        Ok(Self {
            database_url,
            redis_url: optional_url("redis_url", &["redis", "rediss"])?,
            redis_key_prefix: get("redis_key_prefix")?,
            jwt_key,
            jwt_previous_key,
            issuer: text("issuer")?,
            audience: text("audience")?,
            access_token_ttl: seconds("access_token_ttl", 1..=DAY)?,
            refresh_token_ttl: seconds("refresh_token_ttl", 60..=365 * DAY)?,
            refresh_reuse_grace: seconds("refresh_reuse_grace", 0..=300)?,
            session_max_lifetime: seconds("session_max_lifetime", 60..=3650 * DAY)?,
            token_leeway: seconds("token_leeway", 0..=MAX_LEEWAY_SECONDS)?,
            admin_emails,
            login_failures_per_account: seconds("login_failures_per_account", 1..=1_000)?,
            login_failures_per_ip: seconds("login_failures_per_ip", 1..=1_000_000)?,
            registrations_per_ip: seconds("registrations_per_ip", 1..=1_000_000)?,
            trusted_proxies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn defaults() -> HashMap<&'static str, String> {
        [
            ("database_url", ""),
            ("redis_url", ""),
            ("redis_key_prefix", ""),
            ("jwt_key", ""),
            ("jwt_previous_key", ""),
            ("issuer", "spin-auth"),
            ("audience", "spin-auth"),
            ("access_token_ttl", "900"),
            ("refresh_token_ttl", "1209600"),
            ("refresh_reuse_grace", "30"),
            ("session_max_lifetime", "2592000"),
            ("token_leeway", "60"),
            ("admin_emails", ""),
            ("login_failures_per_account", "5"),
            ("login_failures_per_ip", "100"),
            ("registrations_per_ip", "20"),
            ("trusted_proxies", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
    }

    fn load(overrides: &[(&'static str, &str)]) -> Result<Config, ApiError> {
        let mut values = defaults();
        for (k, v) in overrides {
            values.insert(k, v.to_string());
        }
        Config::from_source(|name| values.get(name).cloned())
    }

    fn misconfigured(result: Result<Config, ApiError>) -> &'static str {
        match result {
            Err(ApiError::Misconfigured { variable, .. }) => variable,
            Err(other) => panic!("unexpected {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn the_defaults_give_the_embedded_setup() {
        let config = load(&[]).unwrap();
        assert!(config.database_url.is_none() && config.redis_url.is_none());
        assert!(config.jwt_key.is_none());
        assert_eq!(config.access_token_ttl, 900);
    }

    #[test]
    fn a_short_key_is_refused_not_padded() {
        assert_eq!(misconfigured(load(&[("jwt_key", "short")])), "jwt_key");
        assert_eq!(
            misconfigured(load(&[("jwt_previous_key", "short")])),
            "jwt_previous_key"
        );
    }

    #[test]
    fn postgres_requires_a_key() {
        assert_eq!(
            misconfigured(load(&[("database_url", "postgres://db/app")])),
            "jwt_key"
        );
        let key = "k".repeat(32);
        assert!(load(&[("database_url", "postgres://db/app"), ("jwt_key", &key)]).is_ok());
    }

    #[test]
    fn values_that_do_not_parse_name_their_variable() {
        assert_eq!(
            misconfigured(load(&[("access_token_ttl", "15m")])),
            "access_token_ttl"
        );
        assert_eq!(
            misconfigured(load(&[("token_leeway", "61")])),
            "token_leeway"
        );
        assert_eq!(
            misconfigured(load(&[("database_url", "mysql://x")])),
            "database_url"
        );
        assert_eq!(
            misconfigured(load(&[("admin_emails", "a@b.co, nope")])),
            "admin_emails"
        );
        assert_eq!(
            misconfigured(load(&[("trusted_proxies", "10.0.0.0/99")])),
            "trusted_proxies"
        );
        let undeclared = Config::from_source(|_| None);
        assert_eq!(misconfigured(undeclared), "database_url");
    }

    #[test]
    fn admin_emails_are_canonical() {
        let config = load(&[("admin_emails", " Root@Example.com ,b@c.de")]).unwrap();
        assert_eq!(config.admin_emails[0].as_str(), "root@example.com");
        assert_eq!(config.admin_emails.len(), 2);
    }
}
