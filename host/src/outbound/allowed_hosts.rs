//! `allowed_outbound_hosts`: which addresses a component may connect to.
//!
//! An entry is `scheme://host[:port]`. The scheme, the host and the port may
//! each be `*`; a host may be `*.example.com` for any subdomain; a port may
//! be a range `from..to` (end exclusive). Without a port, the scheme's
//! well-known port is meant. Variables (`{{ name }}`) are expanded before
//! parsing, at startup; an entry that expands to nothing is skipped, so an
//! optional endpoint can be a variable with an empty default.

use anyhow::{Context, bail};

/// The parsed `allowed_outbound_hosts` of one component.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// The well-known port of a scheme, where there is one.
pub fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" | "postgresql" => 5432,
        "redis" | "rediss" => 6379,
        "mysql" => 3306,
        "http" => 80,
        "https" => 443,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHosts {
    /// Parses already-expanded entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Self> {
        let entries = entries
            .into_iter()
            .filter(|entry| !matches!(*entry, "" | "http://" | "https://"))
            .map(|entry| {
                AllowedHost::parse(entry)
                    .with_context(|| format!("invalid allowed_outbound_hosts entry {entry:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { entries })
    }

    /// Whether `scheme://host:port` may be reached.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.entries.iter().any(|entry| {
            entry.scheme.as_deref().is_none_or(|s| s == scheme)
                && match &entry.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(expected) => *expected == host,
                    HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
                }
                && match entry.port {
                    PortPattern::Any => true,
                    PortPattern::Range(from, to) => (from..=to).contains(&port),
                }
        })
    }

    /// Checks an address a guest wants to connect to. The address is a URL;
    /// without a scheme it is read as `default_scheme://address`. When it is
    /// refused, the error is the destination as `scheme://host[:port]`, and a
    /// warning saying how to allow it is printed, as Spin does.
    pub fn check_url(&self, address: &str, default_scheme: &str) -> Result<(), String> {
        let parsed = url::Url::parse(address)
            .ok()
            .filter(|url| url.host_str().is_some())
            .or_else(|| url::Url::parse(&format!("{default_scheme}://{address}")).ok());
        let Some(url) = parsed else {
            eprintln!("Warning: a component tried to connect to an address that is not a URL");
            return Err(default_scheme.to_owned() + "://(invalid address)");
        };
        let scheme = url.scheme();
        let host = url.host_str().unwrap_or_default();
        let destination = match url.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let port = url.port().or_else(|| default_port(scheme));
        if port.is_some_and(|port| self.allows(scheme, host, port)) {
            return Ok(());
        }
        eprintln!(
            "Warning: A component tried to make an outbound network connection to disallowed destination '{destination}'.\n\
             To allow this request, add 'allowed_outbound_hosts = [\"{destination}\"]' to the manifest component section."
        );
        Err(destination)
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = entry
            .split_once("://")
            .context("expected scheme://host[:port]")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("an allowed host cannot have a path");
        }
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Some(s.to_ascii_lowercase())
            }
            _ => bail!("invalid scheme {scheme:?}"),
        };
        // An IPv6 literal keeps its colons inside brackets.
        let (host, port) = match rest.rfind(':') {
            Some(colon) if !rest[colon..].contains(']') => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            HostPattern::Subdomain(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            bail!("invalid host {host:?}");
        } else {
            HostPattern::Exact(host)
        };
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(port) => parse_port_range(port)?,
            None => {
                let scheme = scheme
                    .as_deref()
                    .context("a `*` scheme needs an explicit port")?;
                let port = default_port(scheme)
                    .with_context(|| format!("scheme {scheme:?} has no default port: give one"))?;
                PortPattern::Range(port, port)
            }
        };
        Ok(Self { scheme, host, port })
    }
}

fn parse_port_range(text: &str) -> anyhow::Result<PortPattern> {
    let port = |p: &str| {
        p.parse::<u16>()
            .with_context(|| format!("invalid port {p:?}"))
    };
    if let Some((from, to)) = text.split_once("..") {
        let to = port(to)?;
        if to == 0 {
            bail!("empty port range {text:?}");
        }
        return Ok(PortPattern::Range(port(from)?, to - 1));
    }
    let single = port(text)?;
    Ok(PortPattern::Range(single, single))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries.iter().copied()).unwrap()
    }

    fn ok(hosts: &AllowedHosts, address: &str) -> bool {
        hosts.check_url(address, "postgres").is_ok()
    }

    #[test]
    fn an_exact_entry_allows_only_its_address() {
        let hosts = allowed(&["postgres://127.0.0.1:5432"]);
        assert!(ok(&hosts, "postgres://u@127.0.0.1:5432/db?sslmode=disable"));
        assert!(!ok(&hosts, "postgres://u@127.0.0.1:5433/db"));
        assert!(!ok(&hosts, "redis://127.0.0.1:5432"));
        assert!(!ok(&hosts, "postgres://10.0.0.1:5432/db"));
    }

    #[test]
    fn the_default_port_is_implied_on_both_sides() {
        let hosts = allowed(&["redis://localhost"]);
        assert!(ok(&hosts, "redis://localhost"));
        assert!(ok(&hosts, "redis://localhost:6379/0"));
        assert!(!ok(&hosts, "redis://localhost:6380"));
    }

    #[test]
    fn wildcards_match_what_they_say() {
        let hosts = allowed(&["*://*.example.com:*", "postgres://db:5000..5002"]);
        assert!(ok(&hosts, "redis://cache.example.com:1"));
        assert!(!ok(&hosts, "redis://example.com:1"));
        assert!(ok(&hosts, "postgres://db:5001"));
        assert!(!ok(&hosts, "postgres://db:5002"));
    }

    #[test]
    fn a_refusal_names_the_destination_without_credentials() {
        let hosts = allowed(&[]);
        assert_eq!(
            hosts.check_url("postgres://user:secret@db.internal:6543/app", "postgres"),
            Err("postgres://db.internal:6543".to_owned())
        );
        assert_eq!(
            hosts.check_url("db.internal", "redis"),
            Err("redis://db.internal".to_owned())
        );
    }

    #[test]
    fn entries_that_expand_to_nothing_are_skipped() {
        let hosts = allowed(&["", "https://", "redis://cache"]);
        assert!(hosts.check_url("redis://cache", "redis").is_ok());
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        assert!(!ok(&allowed(&[]), "postgres://127.0.0.1"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "127.0.0.1:5432",
            "postgres://h/path",
            "foo://h",
            "postgres://h:x",
            "*://h",
        ] {
            assert!(AllowedHosts::parse([bad]).is_err(), "{bad:?} accepted");
        }
    }
}
