//! Application variables, resolved the way Spin's environment provider does.
//!
//! A variable's value comes from `SPIN_VARIABLE_<NAME>` (name upper-cased)
//! in the process environment, then from the same key in a `.env` file
//! beside the manifest, then from its `default`. A required variable with no
//! value stops startup. Components see only the variables their manifest
//! entry declares, each a template such as `"{{ jwt_key }}"` expanded from
//! the application variables.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};

use crate::manifest::{ComponentDecl, Manifest, VariableDecl};

/// Prefix of the environment variables that supply application variables.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// Where variable values come from, besides manifest defaults.
#[derive(Debug, Clone, Default)]
pub struct Provider {
    values: HashMap<String, String>,
}

impl Provider {
    /// Reads `SPIN_VARIABLE_*` from `environment`, over the same keys from the
    /// `.env` file in `app_dir` (if there is one).
    pub fn from_environment(
        environment: impl IntoIterator<Item = (String, String)>,
        app_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        let dotenv = app_dir.join(".env");
        if dotenv.is_file() {
            // dotenvy is what Spin reads `.env` with, so quoting, escapes,
            // `export` and `${NAME}` substitution work as they do there.
            let invalid = || format!("invalid {}", dotenv.display());
            for pair in dotenvy::from_path_iter(&dotenv).with_context(invalid)? {
                let (key, value) = pair.with_context(invalid)?;
                values.insert(key, value);
            }
        }
        values.extend(environment);
        Ok(Self { values })
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        let key = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
        self.values.get(&key).map(String::as_str)
    }
}

/// Every application variable's value, resolved once at startup.
#[derive(Debug, Clone)]
pub struct ResolvedVariables {
    values: BTreeMap<String, String>,
}

impl ResolvedVariables {
    /// Resolves every variable in `[variables]`; a required one without a
    /// value is an error naming it and how to set it.
    pub fn resolve(
        declarations: &BTreeMap<String, VariableDecl>,
        provider: &Provider,
    ) -> anyhow::Result<Self> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in declarations {
            match provider.lookup(name).or(decl.default.as_deref()) {
                Some(value) => {
                    values.insert(name.clone(), value.to_owned());
                }
                None => missing.push(name.as_str()),
            }
        }
        if !missing.is_empty() {
            let hints: Vec<String> = missing
                .iter()
                .map(|name| format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()))
                .collect();
            bail!(
                "required variable{} {} ha{} no value: set {} in the environment or in .env",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                if missing.len() > 1 { "ve" } else { "s" },
                hints.join(", ")
            );
        }
        Ok(Self { values })
    }

    /// Expands `{{ name }}` references in `template`.
    pub fn expand(&self, template: &str) -> anyhow::Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("unclosed `{{{{` in {template:?}"))?;
            let name = after[..end].trim();
            let value = self
                .values
                .get(name)
                .with_context(|| format!("{template:?} uses undeclared variable {name:?}"))?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            bail!("unopened `}}}}` in {template:?}");
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The component's variables, expanded: what `variables::get` returns.
    pub fn for_component(
        &self,
        component: &ComponentDecl,
    ) -> anyhow::Result<HashMap<String, String>> {
        component
            .variables
            .iter()
            .map(|(name, template)| {
                let value = self
                    .expand(template)
                    .with_context(|| format!("component {} variable {name:?}", component.id))?;
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// Checks every template in the manifest against the declared variables.
    pub fn check_manifest(&self, manifest: &Manifest) -> anyhow::Result<()> {
        for component in manifest.components.values() {
            self.for_component(component)?;
            for host in &component.allowed_outbound_hosts {
                self.expand(host).with_context(|| {
                    format!("component {} allowed_outbound_hosts", component.id)
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declarations() -> BTreeMap<String, VariableDecl> {
        let decl = |default: Option<&str>, required| VariableDecl {
            default: default.map(str::to_owned),
            required,
            secret: false,
            description: None,
        };
        BTreeMap::from([
            ("jwt_key".to_owned(), decl(None, true)),
            ("issuer".to_owned(), decl(Some("spin-auth"), false)),
        ])
    }

    fn provider(pairs: &[(&str, &str)]) -> Provider {
        Provider {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_environment_beats_the_default() {
        let p = provider(&[
            ("SPIN_VARIABLE_JWT_KEY", "k"),
            ("SPIN_VARIABLE_ISSUER", "me"),
        ]);
        let vars = ResolvedVariables::resolve(&declarations(), &p).unwrap();
        assert_eq!(vars.expand("{{issuer}}").unwrap(), "me");
        assert_eq!(vars.expand("x-{{ jwt_key }}-y").unwrap(), "x-k-y");
    }

    #[test]
    fn the_default_applies_when_nothing_else_does() {
        let p = provider(&[("SPIN_VARIABLE_JWT_KEY", "k")]);
        let vars = ResolvedVariables::resolve(&declarations(), &p).unwrap();
        assert_eq!(vars.expand("{{ issuer }}").unwrap(), "spin-auth");
    }

    #[test]
    fn a_missing_required_variable_is_named_with_its_environment_key() {
        let error = ResolvedVariables::resolve(&declarations(), &provider(&[])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("jwt_key"), "{message}");
        assert!(message.contains("SPIN_VARIABLE_JWT_KEY"), "{message}");
    }

    #[test]
    fn templates_must_name_declared_variables() {
        let p = provider(&[("SPIN_VARIABLE_JWT_KEY", "k")]);
        let vars = ResolvedVariables::resolve(&declarations(), &p).unwrap();
        assert!(vars.expand("{{ nope }}").is_err());
        assert!(vars.expand("{{ issuer").is_err());
    }

    #[test]
    fn dotenv_lines_are_parsed_with_quotes_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# c\n\nSPIN_VARIABLE_A=1\nexport SPIN_VARIABLE_B=\"two words\"\nSPIN_VARIABLE_C='x=y'\n",
        )
        .unwrap();
        let p = Provider::from_environment([], dir.path()).unwrap();
        assert_eq!(p.lookup("a"), Some("1"));
        assert_eq!(p.lookup("b"), Some("two words"));
        assert_eq!(p.lookup("c"), Some("x=y"));

        std::fs::write(dir.path().join(".env"), "novalue\n").unwrap();
        assert!(Provider::from_environment([], dir.path()).is_err());
    }

    #[test]
    fn the_environment_beats_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "SPIN_VARIABLE_A=file\n").unwrap();
        let p = Provider::from_environment(
            [("SPIN_VARIABLE_A".to_owned(), "env".to_owned())],
            dir.path(),
        )
        .unwrap();
        assert_eq!(p.lookup("a"), Some("env"));
    }
}
