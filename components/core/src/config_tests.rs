//! Reading the variables: defaults, refusals that name the variable.

use super::*;
use crate::error::ApiError;
use std::collections::HashMap;

fn defaults() -> HashMap<&'static str, String> {
    [
        ("database_url", ""),
        ("redis_url", ""),
        ("redis_key_prefix", ""),
        ("jwt_key", ""),
        ("jwt_previous_key", ""),
        ("jwt_algorithm", "HS256"),
        ("jwt_private_key", ""),
        ("jwt_previous_private_key", ""),
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
        ("require_verified_email", "false"),
        ("app_url", "http://127.0.0.1:3000"),
        ("mail_url", ""),
        ("mail_api_key", ""),
        ("mail_from", "no-reply@localhost"),
        ("mfa_encryption_key", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// Both halves of the settings, as the `auth` component reads them.
fn load(overrides: &[(&'static str, &str)]) -> Result<(Config, AuthSettings), ConfigError> {
    let mut values = defaults();
    for (k, v) in overrides {
        values.insert(k, v.to_string());
    }
    let lookup = |name: &str| values.get(name).cloned();
    Ok((
        Config::from_source(lookup)?,
        AuthSettings::from_source(lookup)?,
    ))
}

fn misconfigured<T>(result: Result<T, ConfigError>) -> &'static str {
    match result {
        Err(error) => error.variable,
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn the_defaults_give_the_embedded_setup() {
    let (config, auth) = load(&[]).unwrap();
    assert!(config.store.database_url.is_none() && config.store.redis_url.is_none());
    assert!(config.jwt_key.is_none());
    assert_eq!(auth.access_token_ttl, 900);
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
fn a_short_mfa_encryption_key_is_refused() {
    assert_eq!(
        misconfigured(load(&[("mfa_encryption_key", "short")])),
        "mfa_encryption_key"
    );
    let (_, auth) = load(&[("mfa_encryption_key", &"m".repeat(32))]).unwrap();
    assert_eq!(auth.mfa_encryption_key.unwrap().len(), 32);
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
fn eddsa_reads_pem_keys_and_postgres_requires_one() {
    let key = SigningKey::generate();
    let (config, _) = load(&[
        ("jwt_algorithm", "EdDSA"),
        ("jwt_private_key", &key.to_pem()),
    ])
    .unwrap();
    assert_eq!(config.jwt_algorithm, JwtAlgorithm::EdDsa);
    assert_eq!(config.jwt_private_key.unwrap().kid(), key.kid());
    let (config, _) = load(&[("jwt_algorithm", "EdDSA")]).unwrap();
    assert!(
        config.jwt_private_key.is_none(),
        "the embedded default generates one"
    );
    let postgres = ("database_url", "postgres://db/app");
    let hmac = "k".repeat(32);
    assert_eq!(
        misconfigured(load(&[
            ("jwt_algorithm", "EdDSA"),
            postgres,
            ("jwt_key", &hmac)
        ])),
        "jwt_private_key"
    );
    assert!(
        load(&[
            ("jwt_algorithm", "EdDSA"),
            postgres,
            ("jwt_private_key", &key.to_pem())
        ])
        .is_ok()
    );
}

#[test]
fn a_bad_algorithm_or_key_names_its_variable() {
    assert_eq!(
        misconfigured(load(&[("jwt_algorithm", "RS256")])),
        "jwt_algorithm"
    );
    assert_eq!(
        misconfigured(load(&[("jwt_algorithm", "none")])),
        "jwt_algorithm"
    );
    for variable in ["jwt_private_key", "jwt_previous_private_key"] {
        assert_eq!(
            misconfigured(load(&[("jwt_algorithm", "EdDSA"), (variable, "not a key")])),
            variable
        );
    }
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
    assert_eq!(misconfigured(Config::from_source(|_| None)), "database_url");
    assert_eq!(
        misconfigured(AuthSettings::from_source(|_| None)),
        "access_token_ttl"
    );
}

#[test]
fn what_every_component_reads_needs_none_of_the_auth_variables() {
    let values = defaults();
    let auth_only = [
        "access_token_ttl",
        "refresh_token_ttl",
        "refresh_reuse_grace",
        "session_max_lifetime",
        "admin_emails",
        "login_failures_per_account",
        "login_failures_per_ip",
        "registrations_per_ip",
        "trusted_proxies",
        "mfa_encryption_key",
    ];
    let lookup = |name: &str| {
        (!auth_only.contains(&name))
            .then(|| values.get(name).cloned())
            .flatten()
    };
    assert!(Config::from_source(lookup).is_ok());
}

#[test]
fn admin_emails_are_canonical() {
    let (_, auth) = load(&[("admin_emails", " Root@Example.com ,b@c.de")]).unwrap();
    assert_eq!(auth.admin_emails[0].as_str(), "root@example.com");
    assert_eq!(auth.admin_emails.len(), 2);
}

#[test]
fn trusted_proxies_are_networks_or_single_addresses() {
    let (_, auth) = load(&[("trusted_proxies", "10.0.0.0/8, 127.0.0.1, ::1")]).unwrap();
    let contains = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        auth.trusted_proxies.iter().any(|net| net.contains(&ip))
    };
    assert!(contains("10.1.2.3") && contains("127.0.0.1") && contains("::1"));
    assert!(!contains("127.0.0.2") && !contains("11.0.0.1"));
}

#[test]
fn a_provider_that_cannot_be_asked_is_an_outage_not_a_misconfiguration() {
    let values = defaults();
    let vault_down = |name: &str| match name {
        "jwt_key" => Err(Missing::Unreadable("connection refused".into())),
        _ => values.get(name).cloned().ok_or(Missing::Undeclared),
    };
    let error = match Config::read(&Variables(vault_down)) {
        Err(error) => error,
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(error.variable, "jwt_key");
    assert!(error.unreadable);
    let answer = crate::problem::response(&ApiError::from(error));
    assert_eq!(answer.status, 503);
    assert!(answer.header_value("retry-after").is_some());
    let body = String::from_utf8(answer.body.clone()).unwrap();
    assert!(body.contains("service_unavailable"), "{body}");
    assert!(!body.contains("connection refused"), "{body}");

    // Spin's other failures, and a name the component lacks, stay 500.
    let undeclared = Config::from_source(|_| None).err().unwrap();
    assert!(!undeclared.unreadable);
    let other = |name: &str| match name {
        "jwt_key" => Err(Missing::Unresolved("bad template".into())),
        _ => values.get(name).cloned().ok_or(Missing::Undeclared),
    };
    let error = Config::read(&Variables(other)).err().unwrap();
    assert!(!error.unreadable);
    assert_eq!(crate::problem::response(&ApiError::from(error)).status, 500);
}
