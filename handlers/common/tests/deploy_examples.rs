//! The deployment examples in `deploy/` stay in step with spin.toml.
//!
//! Decision: the examples are checked as data, not applied to a cluster: every YAML
//! document of `deploy/spinkube/spinapp.yaml` and `deploy/runtime-config.toml` must parse,
//! name the kinds and API versions SpinKube and Kubernetes know, bind only variables that
//! spin.toml declares, feed every secret the shared deployment needs from the Secret (never
//! a plain value), and define every key-value store label the components declare besides
//! Spin's built-in `default` (Spin refuses to start an app with an undefined label).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_norway::Value;

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spin_manifest() -> toml::Table {
    toml::from_str(&repo_file("spin.toml")).expect("spin.toml parses")
}

/// Every document of the SpinKube example, keyed by `kind` (each kind appears once).
fn k8s_documents() -> BTreeMap<String, Value> {
    let text = repo_file("deploy/spinkube/spinapp.yaml");
    let mut docs = BTreeMap::new();
    for de in serde_norway::Deserializer::from_str(&text) {
        let doc = Value::deserialize(de).expect("spinapp.yaml: a document parses");
        let kind = str_at(&doc, &["kind"]).to_string();
        assert!(
            docs.insert(kind.clone(), doc).is_none(),
            "spinapp.yaml: {kind} twice"
        );
    }
    docs
}

/// The string at `path` (mapping keys), or a panic naming the path.
fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("missing {key} (in {path:?})"))
    })
}

/// A SpinApp variable binding: a plain value, or a key of a Secret.
#[derive(Debug, PartialEq)]
enum Binding {
    Plain(String),
    Secret { name: String, key: String },
}

fn spinapp_variables(spinapp: &Value) -> BTreeMap<String, Binding> {
    let mut vars = BTreeMap::new();
    let list = at(spinapp, &["spec", "variables"])
        .as_sequence()
        .expect("spec.variables is a list");
    for var in list {
        let name = str_at(var, &["name"]).to_string();
        let binding = match (var.get("value"), var.get("valueFrom")) {
            (Some(v), None) => Binding::Plain(v.as_str().expect("value is a string").into()),
            (None, Some(from)) => Binding::Secret {
                name: str_at(from, &["secretKeyRef", "name"]).into(),
                key: str_at(from, &["secretKeyRef", "key"]).into(),
            },
            _ => panic!("variable {name}: exactly one of value / valueFrom"),
        };
        assert!(
            vars.insert(name.clone(), binding).is_none(),
            "variable {name} bound twice"
        );
    }
    vars
}

/// The Secret's keys (`stringData` or `data`).
fn secret_keys(secret: &Value) -> BTreeSet<String> {
    ["stringData", "data"]
        .iter()
        .filter_map(|field| secret.get(*field)?.as_mapping())
        .flat_map(|m| {
            m.keys()
                .map(|k| k.as_str().expect("secret key").to_string())
        })
        .collect()
}

/// Key-value store labels the components declare, besides Spin's built-in `default`.
fn custom_kv_labels(manifest: &toml::Table) -> BTreeSet<String> {
    manifest["component"]
        .as_table()
        .expect("[component]")
        .values()
        .filter_map(|c| c.get("key_value_stores")?.as_array())
        .flatten()
        .map(|l| l.as_str().expect("label").to_string())
        .filter(|l| l != "default")
        .collect()
}

/// Secrets a shared deployment (postgres + s3) needs: every variable spin.toml marks
/// secret, plus `auth_tokens` (token hashes, still credentials material).
fn needed_secrets(manifest: &toml::Table) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = manifest["variables"]
        .as_table()
        .expect("[variables]")
        .iter()
        .filter(|(_, v)| v.get("secret").and_then(toml::Value::as_bool) == Some(true))
        .map(|(k, _)| k.clone())
        .collect();
    names.insert("auth_tokens".into());
    names
}

#[test]
fn every_document_has_a_known_kind_and_api_version() {
    let docs = k8s_documents();
    let expected = [
        ("Secret", "v1"),
        ("SpinApp", "core.spinkube.dev/v1alpha1"),
        ("CronJob", "batch/v1"),
    ];
    assert_eq!(
        docs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>()
    );
    for (kind, api_version) in expected {
        assert_eq!(str_at(&docs[kind], &["apiVersion"]), api_version, "{kind}");
        assert!(!str_at(&docs[kind], &["metadata", "name"]).is_empty());
    }
}

#[test]
fn spinapp_runs_three_replicas_of_the_image_on_the_shim() {
    let docs = k8s_documents();
    let app = &docs["SpinApp"];
    assert!(str_at(app, &["spec", "image"]).contains("artifact-store:"));
    assert_eq!(str_at(app, &["spec", "executor"]), "containerd-shim-spin");
    assert_eq!(at(app, &["spec", "replicas"]).as_u64(), Some(3));
}

#[test]
fn spinapp_variables_exist_in_spin_toml() {
    let manifest = spin_manifest();
    let declared = manifest["variables"].as_table().expect("[variables]");
    let docs = k8s_documents();
    for name in spinapp_variables(&docs["SpinApp"]).keys() {
        assert!(
            declared.contains_key(name),
            "{name} is not in spin.toml [variables]"
        );
    }
}

#[test]
fn secrets_come_from_the_secret_and_settings_are_plain() {
    let manifest = spin_manifest();
    let docs = k8s_documents();
    let vars = spinapp_variables(&docs["SpinApp"]);
    let secret_name = str_at(&docs["Secret"], &["metadata", "name"]);
    let keys = secret_keys(&docs["Secret"]);

    for name in needed_secrets(&manifest) {
        match vars.get(&name) {
            Some(Binding::Secret { name: from, key }) => {
                assert_eq!(from, secret_name, "{name}: another Secret");
                assert!(keys.contains(key), "{name}: Secret has no key {key}");
            }
            other => panic!("{name} must come from a secretKeyRef, found {other:?}"),
        }
    }

    let plain = |name: &str| match vars.get(name) {
        Some(Binding::Plain(v)) => v.clone(),
        other => panic!("{name} must be a plain value, found {other:?}"),
    };
    assert_eq!(plain("metadata_store"), "postgres");
    assert_eq!(plain("default_backend"), "s3");
    for name in [
        "postgres_host",
        "s3_endpoint",
        "s3_bucket",
        "s3_region",
        "s3_key_prefix",
    ] {
        assert!(!plain(name).is_empty(), "{name} is empty");
    }
}

#[test]
fn postgres_host_is_the_origin_of_postgres_url() {
    let docs = k8s_documents();
    let vars = spinapp_variables(&docs["SpinApp"]);
    let Some(Binding::Plain(host)) = vars.get("postgres_host") else {
        panic!("postgres_host must be plain")
    };
    let url = str_at(&docs["Secret"], &["stringData", "postgres_url"]);
    // postgres://user:pass@host:port/db -> postgres://host:port
    let (scheme, rest) = url.split_once("://").expect("postgres_url has a scheme");
    let authority = rest.split('/').next().unwrap_or_default();
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    assert_eq!(host, &format!("{scheme}://{hostport}"));
}

#[test]
fn spinapp_defines_every_custom_key_value_store() {
    let manifest = spin_manifest();
    let docs = k8s_documents();
    let rc = at(&docs["SpinApp"], &["spec", "runtimeConfig"]);
    if rc.get("loadFromSecret").is_some() {
        return; // the whole runtime config lives in that Secret instead
    }
    let defined: BTreeSet<String> = at(rc, &["keyValueStores"])
        .as_sequence()
        .expect("keyValueStores is a list")
        .iter()
        .map(|s| str_at(s, &["name"]).to_string())
        .collect();
    assert_eq!(defined, custom_kv_labels(&manifest));
}

#[test]
fn cronjob_posts_sweeps_every_ten_minutes_with_the_operator_token() {
    let docs = k8s_documents();
    let job = &docs["CronJob"];
    assert_eq!(str_at(job, &["spec", "schedule"]), "*/10 * * * *");
    let containers = at(
        job,
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ],
    )
    .as_sequence()
    .expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    let env = at(container, &["env"]).as_sequence().expect("env list");
    let token = env
        .iter()
        .find(|e| str_at(e, &["name"]) == "OPERATOR_TOKEN")
        .expect("OPERATOR_TOKEN in env");
    assert_eq!(
        str_at(token, &["valueFrom", "secretKeyRef", "name"]),
        str_at(&docs["Secret"], &["metadata", "name"])
    );
    let key = str_at(token, &["valueFrom", "secretKeyRef", "key"]);
    assert!(secret_keys(&docs["Secret"]).contains(key));

    let args: Vec<&str> = at(container, &["args"])
        .as_sequence()
        .expect("args list")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    let app = str_at(&docs["SpinApp"], &["metadata", "name"]);
    assert!(args.windows(2).any(|w| w == ["-X", "POST"]), "{args:?}");
    assert!(args.contains(&"Authorization: Bearer $(OPERATOR_TOKEN)"));
    assert!(args.contains(&format!("http://{app}/admin/sweeps").as_str()));
}

#[test]
fn runtime_config_declares_providers_and_stores_spin_knows() {
    let manifest = spin_manifest();
    let rc: toml::Table =
        toml::from_str(&repo_file("deploy/runtime-config.toml")).expect("runtime-config parses");
    let known_sections = [
        "variables_provider",
        "config_provider",
        "key_value_store",
        "sqlite_database",
    ];
    for key in rc.keys() {
        assert!(
            known_sections.contains(&key.as_str()),
            "unknown section {key}"
        );
    }

    let providers = rc["variables_provider"].as_array().expect("providers");
    for p in providers {
        let kind = p["type"].as_str().expect("provider type");
        assert!(["env", "vault", "azure_key_vault", "static"].contains(&kind));
    }

    let stores = rc["key_value_store"].as_table().expect("[key_value_store]");
    assert_eq!(
        stores.keys().cloned().collect::<BTreeSet<_>>(),
        custom_kv_labels(&manifest)
    );
    for (label, store) in stores {
        assert_eq!(store["type"].as_str(), Some("spin"), "{label}");
    }
}
