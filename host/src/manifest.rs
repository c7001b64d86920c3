//! Reading `spin.toml` (manifest version 2), for the part of it this host
//! runs: HTTP triggers, components with their build commands, variables,
//! outbound hosts and SQLite databases.
//!
//! Anything the manifest asks for that this host cannot provide (another
//! trigger type, key-value stores, files to mount) is refused when the
//! manifest is loaded, so a difference from `spin up` shows at startup rather
//! than as a surprise in a request.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// A parsed and checked application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Folder that relative paths in the manifest are resolved against.
    pub app_dir: PathBuf,
    /// `[application] name`.
    pub name: String,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// HTTP triggers, in manifest order.
    pub triggers: Vec<HttpTrigger>,
    /// Components, by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One application variable as declared in `[variables]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when no provider supplies one.
    pub default: Option<String>,
    /// Startup fails when no provider supplies a value.
    #[serde(default)]
    pub required: bool,
    /// The value is never printed.
    #[serde(default)]
    pub secret: bool,
    /// Free text for humans.
    #[allow(dead_code)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route as written, such as `/auth/...`.
    pub route: String,
    /// Id of the component that serves it.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    /// Component id.
    pub id: String,
    /// Path of the `.wasm` file (module or component), absolute.
    pub source: PathBuf,
    /// Entries of `allowed_outbound_hosts`, possibly with `{{ variable }}` templates.
    pub allowed_outbound_hosts: Vec<String>,
    /// Names of the SQLite databases the component may open.
    pub sqlite_databases: HashSet<String>,
    /// Labels of the key-value stores the component may open.
    pub key_value_stores: HashSet<String>,
    /// Component variables: name to template.
    pub variables: BTreeMap<String, String>,
    /// Environment variables given to the guest.
    pub environment: BTreeMap<String, String>,
    /// How to build `source`, if the manifest says.
    pub build: Option<BuildDecl>,
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    /// Shell command that produces the component's source.
    pub command: String,
    /// Folder to run it in, relative to the manifest.
    pub workdir: Option<String>,
    /// Globs, relative to `workdir`, whose files the output depends on.
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<RawTrigger>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    #[serde(flatten)]
    _rest: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    id: Option<String>,
    route: Option<toml::Value>,
    component: Option<toml::Value>,
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: toml::Value,
    description: Option<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    build: Option<BuildDecl>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    dependencies_inherit_configuration: Option<bool>,
    tool: Option<toml::Value>,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let app_dir = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self::parse(&text, &app_dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; relative paths resolve against `app_dir`.
    pub fn parse(text: &str, app_dir: &Path) -> anyhow::Result<Self> {
        let raw: RawManifest = toml::from_str(text).map_err(|error| {
            // toml's message spans several lines with a source excerpt; the
            // first line says what is wrong and where.
            let message = error.message().to_owned();
            match error.span() {
                Some(span) => {
                    let line = text[..span.start].lines().count().max(1);
                    anyhow::anyhow!("line {line}: {message}")
                }
                None => anyhow::anyhow!("{message}"),
            }
        })?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!("spin_manifest_version must be 2 (this host reads manifest version 2 only)");
        }
        for (name, decl) in &raw.variables {
            check_variable_name(name)
                .with_context(|| format!("[variables] has an invalid name {name:?}"))?;
            match (&decl.default, decl.required) {
                (Some(_), true) => {
                    bail!("variable {name:?} cannot be both required and have a default")
                }
                (None, false) => {
                    bail!("variable {name:?} needs a default or `required = true`")
                }
                _ => {}
            }
        }

        let mut components = BTreeMap::new();
        for (id, raw_component) in raw.component {
            let component = ComponentDecl::from_raw(&id, raw_component, app_dir)
                .with_context(|| format!("[component.{id}]"))?;
            components.insert(id, component);
        }

        let mut triggers = Vec::new();
        for (kind, entries) in raw.trigger {
            if kind != "http" {
                bail!("trigger type {kind:?} is not supported by this host (only `http`)");
            }
            for (index, entry) in entries.into_iter().enumerate() {
                let trigger = HttpTrigger::from_raw(entry, &components)
                    .with_context(|| format!("[[trigger.http]] number {}", index + 1))?;
                triggers.push(trigger);
            }
        }
        if triggers.is_empty() {
            bail!("the manifest has no [[trigger.http]] entry: nothing to serve");
        }
        Ok(Self {
            app_dir: app_dir.to_path_buf(),
            name: raw.application.name,
            variables: raw.variables,
            triggers,
            components,
        })
    }
}

impl HttpTrigger {
    fn from_raw(
        raw: RawTrigger,
        components: &BTreeMap<String, ComponentDecl>,
    ) -> anyhow::Result<Self> {
        let _ = raw.id;
        if raw.executor.is_some() {
            bail!("`executor` is not supported by this host");
        }
        let route = match raw.route {
            Some(toml::Value::String(route)) => route,
            Some(toml::Value::Table(_)) => {
                bail!("private routes (`route = {{ private = true }}`) are not supported")
            }
            Some(_) => bail!("`route` must be a string"),
            None => bail!("`route` is missing"),
        };
        let component = match raw.component {
            Some(toml::Value::String(id)) => id,
            Some(_) => bail!("`component` must name a [component.<id>] table"),
            None => bail!("`component` is missing"),
        };
        if !components.contains_key(&component) {
            bail!(
                "route {route:?} names component {component:?}, which the manifest does not define"
            );
        }
        crate::routes::RoutePattern::parse(&route)?;
        Ok(Self { route, component })
    }
}

impl ComponentDecl {
    fn from_raw(id: &str, raw: RawComponent, app_dir: &Path) -> anyhow::Result<Self> {
        let _ = (raw.description, raw.exclude_files, raw.tool);
        check_component_id(id)?;
        let source = match raw.source {
            toml::Value::String(path) => app_dir.join(path),
            _ => bail!(
                "`source` must be a local file path (registry and URL sources are not supported)"
            ),
        };
        for (field, unsupported) in [
            ("ai_models", !raw.ai_models.is_empty()),
            ("files", !raw.files.is_empty()),
            ("dependencies", !raw.dependencies.is_empty()),
            (
                "dependencies_inherit_configuration",
                raw.dependencies_inherit_configuration.is_some(),
            ),
        ] {
            if unsupported {
                bail!("`{field}` is not supported by this host");
            }
        }
        for database in &raw.sqlite_databases {
            if database != "default" {
                bail!(
                    "SQLite database {database:?}: only `default` exists without a runtime configuration"
                );
            }
        }
        for store in &raw.key_value_stores {
            if store != "default" {
                bail!(
                    "key-value store {store:?}: only `default` exists without a runtime configuration"
                );
            }
        }
        for name in raw.variables.keys() {
            check_variable_name(name)
                .with_context(|| format!("component variable {name:?} has an invalid name"))?;
        }
        Ok(Self {
            id: id.to_owned(),
            source,
            allowed_outbound_hosts: raw.allowed_outbound_hosts,
            sqlite_databases: raw.sqlite_databases.into_iter().collect(),
            key_value_stores: raw.key_value_stores.into_iter().collect(),
            variables: raw.variables,
            environment: raw.environment,
            build: raw.build,
        })
    }
}

/// Spin's rule for variable names in a manifest: words of lower-case ASCII
/// letters and digits, each starting with a letter, joined by single
/// underscores.
pub fn check_variable_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.split('_').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !valid {
        bail!(
            "{name:?} must be lower-case words of letters and digits, each starting with a letter, joined by single underscores"
        );
    }
    Ok(())
}

/// Component ids are kebab-case words, as Spin requires.
fn check_component_id(id: &str) -> anyhow::Result<()> {
    let valid = !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !valid {
        bail!("component id {id:?} must be lower-case words joined by single hyphens");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "demo"
        [variables]
        key = { required = true, secret = true }
        region = { default = "eu" }
        [[trigger.http]]
        route = "/..."
        component = "web"
        [component.web]
        source = "web.wasm"
        sqlite_databases = ["default"]
        [component.web.variables]
        key = "{{ key }}"
    "#;

    #[test]
    fn a_minimal_manifest_parses() {
        let manifest = Manifest::parse(MINIMAL, Path::new("/app")).unwrap();
        assert_eq!(manifest.name, "demo");
        assert_eq!(manifest.triggers[0].route, "/...");
        let web = &manifest.components["web"];
        assert_eq!(web.source, Path::new("/app/web.wasm"));
        assert!(web.sqlite_databases.contains("default"));
        assert!(manifest.variables["key"].required);
    }

    #[test]
    fn a_route_naming_an_unknown_component_is_refused() {
        let text = MINIMAL.replace("component = \"web\"", "component = \"nope\"");
        let error = Manifest::parse(&text, Path::new("/app")).unwrap_err();
        assert!(
            format!("{error:#}").contains("does not define"),
            "{error:#}"
        );
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let text = MINIMAL.replace(
            "sqlite_databases = [\"default\"]",
            "ai_models = [\"llama2-chat\"]",
        );
        let error = Manifest::parse(&text, Path::new("/app")).unwrap_err();
        assert!(format!("{error:#}").contains("ai_models"), "{error:#}");
    }

    #[test]
    fn only_the_default_key_value_store_exists() {
        let with = |stores: &str| {
            MINIMAL.replace(
                "sqlite_databases = [\"default\"]",
                &format!("key_value_stores = {stores}"),
            )
        };
        let manifest = Manifest::parse(&with("[\"default\"]"), Path::new("/app")).unwrap();
        assert!(
            manifest.components["web"]
                .key_value_stores
                .contains("default")
        );
        let error = Manifest::parse(&with("[\"cache\"]"), Path::new("/app")).unwrap_err();
        assert!(format!("{error:#}").contains("only `default`"), "{error:#}");
    }

    #[test]
    fn a_variable_needs_exactly_one_of_default_and_required() {
        let text = MINIMAL.replace("{ default = \"eu\" }", "{ secret = true }");
        let error = Manifest::parse(&text, Path::new("/app")).unwrap_err();
        assert!(
            format!("{error:#}").contains("needs a default"),
            "{error:#}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = Manifest::parse("spin_manifest_version = 2\n[application\n", Path::new("/"))
            .unwrap_err();
        assert!(format!("{error:#}").starts_with("line 2"), "{error:#}");
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(check_variable_name("jwt_key").is_ok());
        assert!(check_variable_name("a1").is_ok());
        for bad in ["", "JWT", "1a", "a-b", "a__b", "_a", "a_", "a_1"] {
            assert!(check_variable_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
