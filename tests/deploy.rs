//! The deployment manifests in deploy/, checked against the fields the
//! SpinKube SpinApp resource (core.spinkube.dev/v1alpha1) defines and
//! against spin.toml: every variable the app declares is bound, and every
//! secret comes from a Kubernetes Secret.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

/// The fields of `SpinAppSpec` in the Spin Operator's API.
const SPEC_FIELDS: &[&str] = &[
    "executor",
    "image",
    "imagePullSecrets",
    "checks",
    "replicas",
    "enableAutoscaling",
    "runtimeConfig",
    "volumes",
    "volumeMounts",
    "variables",
    "serviceAnnotations",
    "deploymentAnnotations",
    "podAnnotations",
    "podLabels",
    "resources",
    "components",
    "serviceAccountName",
    "invocationLimits",
];
const RUNTIME_CONFIG_FIELDS: &[&str] = &[
    "loadFromSecret",
    "sqliteDatabases",
    "keyValueStores",
    "llmCompute",
];
const PROBE_FIELDS: &[&str] = &[
    "httpGet",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .collect()
}

use serde::Deserialize;

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .map(|mapping| {
            mapping
                .keys()
                .map(|key| key.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn spin_toml_variables() -> BTreeMap<String, toml::Value> {
    let manifest: toml::Table = std::fs::read_to_string(root().join("spin.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["variables"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(name, decl)| (name.clone(), decl.clone()))
        .collect()
}

fn spin_app() -> Value {
    documents("deploy/spinapp.yaml")
        .into_iter()
        .find(|document| document["kind"] == "SpinApp")
        .expect("deploy/spinapp.yaml has a SpinApp")
}

#[test]
fn the_spin_app_uses_only_fields_the_resource_defines() {
    let app = spin_app();
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    assert!(
        app["metadata"]["name"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    let spec = &app["spec"];
    for field in keys(spec) {
        assert!(
            SPEC_FIELDS.contains(&field.as_str()),
            "spec.{field} is not a SpinApp field"
        );
    }
    assert!(
        spec["image"]
            .as_str()
            .is_some_and(|image| !image.is_empty()),
        "spec.image is required"
    );
    assert!(
        !(spec["enableAutoscaling"] == Value::Bool(true) && spec.get("replicas").is_some()),
        "replicas cannot be set when autoscaling is enabled"
    );
    for field in keys(&spec["runtimeConfig"]) {
        assert!(
            RUNTIME_CONFIG_FIELDS.contains(&field.as_str()),
            "runtimeConfig.{field}"
        );
    }
    for field in keys(&spec["resources"]) {
        assert!(
            ["limits", "requests"].contains(&field.as_str()),
            "resources.{field}"
        );
    }
    for probe in ["readiness", "liveness"] {
        let check = &spec["checks"][probe];
        for field in keys(check) {
            assert!(
                PROBE_FIELDS.contains(&field.as_str()),
                "checks.{probe}.{field}"
            );
        }
    }
    // Readiness follows the stores (a pod whose database is down takes no
    // traffic); liveness does not, or an outage would restart every pod.
    assert_eq!(spec["checks"]["readiness"]["httpGet"]["path"], "/health");
    assert_eq!(
        spec["checks"]["liveness"]["httpGet"]["path"], "/openapi.json",
        "liveness probes a route that needs no store"
    );
}

/// The keys of `spin-auth-secrets` that deploy/README.md's `kubectl create
/// secret` command creates.
fn keys_the_readme_creates() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("deploy/README.md"))
        .unwrap()
        .split("--from-literal=")
        .skip(1)
        .map(|rest| rest.split('=').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_secret_key_the_app_needs_is_created_by_the_readme_command() {
    let created = keys_the_readme_creates();
    assert!(created.contains("jwt_key"), "{created:?}");
    for variable in spin_app()["spec"]["variables"].as_sequence().unwrap() {
        let reference = &variable["valueFrom"]["secretKeyRef"];
        let Some(key) = reference["key"].as_str() else {
            continue;
        };
        // Kubernetes does not start a container whose required Secret key
        // is missing.
        assert!(
            reference["optional"] == Value::Bool(true) || created.contains(key),
            "{key} is required but the README's command does not create it"
        );
    }
}

/// `scheme://host:port` of a service URL, with the scheme's default port;
/// hand-split because allowed hosts compare just these three parts.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    let default_port = match scheme {
        "postgres" | "postgresql" => "5432",
        "redis" => "6379",
        "https" => "443",
        other => panic!("no default port for {other}"),
    };
    if host_port.contains(':') {
        format!("{scheme}://{host_port}")
    } else {
        format!("{scheme}://{host_port}:{default_port}")
    }
}

#[test]
fn the_documented_service_urls_are_ones_the_app_is_allowed_to_reach() {
    let app = spin_app();
    let allowed = |name: &str| {
        app["spec"]["variables"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|variable| variable["name"] == name)
            .and_then(|variable| variable["value"].as_str())
            .unwrap_or_else(|| panic!("{name} has a value"))
            .to_owned()
    };
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    let literal = |key: &str| {
        let start = readme
            .find(&format!("--from-literal={key}='"))
            .unwrap_or_else(|| panic!("the README's command sets {key}"))
            + format!("--from-literal={key}='").len();
        readme[start..].split('\'').next().unwrap().to_owned()
    };
    let secrets = documents("deploy/secret.example.yaml");
    let example = |key: &str| secrets[0]["stringData"][key].as_str().unwrap().to_owned();
    // A URL outside the allowed host gets 500 misconfigured.
    for (key, allowed_host) in [
        ("database_url", "database_allowed_host"),
        ("redis_url", "redis_allowed_host"),
    ] {
        assert_eq!(origin(&literal(key)), allowed(allowed_host), "README {key}");
        assert_eq!(
            origin(&example(key)),
            allowed(allowed_host),
            "example {key}"
        );
    }
    assert_eq!(
        origin(&example("mail_url")),
        allowed("mail_allowed_host"),
        "example mail_url"
    );
}

#[test]
fn the_example_secrets_placeholder_keys_are_refused_if_left_in() {
    let secrets = documents("deploy/secret.example.yaml");
    let data = &secrets[0]["stringData"];
    for name in ["jwt_key", "mfa_encryption_key"] {
        let placeholder = data[name].as_str().unwrap();
        // Under the 32 bytes a key needs, so an unedited copy stops the
        // service with a message instead of signing with a public key.
        assert!(
            !placeholder.is_empty() && placeholder.len() < 32,
            "{name}: {placeholder:?}"
        );
    }
}

#[test]
fn every_variable_of_spin_toml_is_bound_and_secrets_come_from_a_secret() {
    let declared = spin_toml_variables();
    let app = spin_app();
    let bound: Vec<&Value> = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .collect();
    let names: BTreeSet<String> = bound
        .iter()
        .map(|variable| variable["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, declared.keys().cloned().collect::<BTreeSet<_>>());
    for variable in bound {
        let name = variable["name"].as_str().unwrap();
        let has_value = variable.get("value").is_some();
        let has_source = variable.get("valueFrom").is_some();
        assert!(
            has_value != has_source,
            "{name}: exactly one of value and valueFrom"
        );
        // Secrets, and the URLs of services (which carry passwords), never
        // as values; app_url is the public base of the links in emails.
        let secret = declared[name].get("secret").and_then(toml::Value::as_bool) == Some(true)
            || (name.ends_with("_url") && name != "app_url");
        if secret {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            assert!(
                reference["name"].is_string() && reference["key"].is_string(),
                "{name} comes from a Secret"
            );
        }
    }
}

#[test]
fn the_example_secret_holds_every_key_the_app_reads() {
    let app = spin_app();
    let referenced: BTreeSet<(String, String)> = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|variable| {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            Some((
                reference["name"].as_str()?.to_owned(),
                reference["key"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let secrets = documents("deploy/secret.example.yaml");
    for (name, key) in referenced {
        let secret = secrets
            .iter()
            .find(|document| {
                document["kind"] == "Secret" && document["metadata"]["name"] == name.as_str()
            })
            .unwrap_or_else(|| panic!("no Secret {name} in deploy/secret.example.yaml"));
        assert!(
            secret["stringData"].get(key.as_str()).is_some(),
            "Secret {name} lacks {key}"
        );
    }
}

#[test]
fn the_autoscaler_targets_the_apps_deployment() {
    let app = spin_app();
    let autoscaler = documents("deploy/spinapp.yaml")
        .into_iter()
        .find(|document| document["kind"] == "HorizontalPodAutoscaler")
        .expect("an autoscaler for enableAutoscaling");
    assert_eq!(autoscaler["apiVersion"], "autoscaling/v2");
    let target = &autoscaler["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(target["name"], app["metadata"]["name"]);
    let min = autoscaler["spec"]["minReplicas"].as_u64().unwrap();
    let max = autoscaler["spec"]["maxReplicas"].as_u64().unwrap();
    assert!(min >= 1 && min <= max);
}
