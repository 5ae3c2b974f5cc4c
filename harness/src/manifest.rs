//! spin.toml (manifest version 2) model.
//!
//! Decision: every table is `deny_unknown_fields`, so a typo or an unsupported Spin feature fails
//! at start with the field named (toml's error carries the key and line), instead of being
//! silently ignored at run time. Only the subset of Spin's manifest the harness implements is
//! modelled; fields Spin accepts but that do not change local behaviour (`build`, `tool`,
//! `description`, ...) are accepted and ignored.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed and validated manifest plus the directory relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub dir: PathBuf,
    pub raw: RawManifest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub trigger: Option<AppTriggerConfig>,
    #[serde(default)]
    pub tool: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTriggerConfig {
    #[serde(default)]
    pub http: Option<AppHttpConfig>,
    #[serde(default)]
    pub cron: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppHttpConfig {
    #[serde(default)]
    pub base: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: Route,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// `route = "/path"` or `route = { private = true }` (not reachable over HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Route {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<toml::Value>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub build: Option<toml::Value>,
    #[serde(default)]
    pub tool: Option<toml::Value>,
}

impl Manifest {
    /// Reads and validates `path`; errors name the offending field or reference.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let raw: RawManifest = toml::from_str(&text)
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let manifest = Manifest { dir, raw };
        manifest
            .validate()
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        let raw = &self.raw;
        if raw.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version: expected 2, found {}",
                raw.spin_manifest_version
            );
        }
        for name in raw.variables.keys() {
            check_variable_name(name).with_context(|| format!("[variables.{name}]"))?;
        }
        for (id, c) in &raw.component {
            if !c.files.is_empty() {
                bail!("component.{id}.files: static files are not supported by the harness");
            }
            for name in c.variables.keys() {
                check_variable_name(name)
                    .with_context(|| format!("component.{id}.variables.{name}"))?;
            }
        }
        for (i, t) in raw.trigger.http.iter().enumerate() {
            if !raw.component.contains_key(&t.component) {
                bail!(
                    "trigger.http[{i}].component: unknown component `{}`",
                    t.component
                );
            }
            if let Route::Path(p) = &t.route
                && !p.starts_with('/')
            {
                bail!("trigger.http[{i}].route: `{p}` must start with `/`");
            }
        }
        for (i, t) in raw.trigger.cron.iter().enumerate() {
            if !raw.component.contains_key(&t.component) {
                bail!(
                    "trigger.cron[{i}].component: unknown component `{}`",
                    t.component
                );
            }
            crate::cron::Schedule::parse(&t.cron_expression)
                .with_context(|| format!("trigger.cron[{i}].cron_expression"))?;
        }
        Ok(())
    }

    /// The component's wasm path, relative to the manifest directory.
    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        let p = Path::new(&component.source);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The `[application.trigger.http] base`, default `/`.
    pub fn http_base(&self) -> String {
        self.raw
            .application
            .trigger
            .as_ref()
            .and_then(|t| t.http.as_ref())
            .and_then(|h| h.base.clone())
            .unwrap_or_else(|| "/".to_string())
    }
}

/// Spin's rule: lower-case letters, digits and underscores, starting with a letter.
/// Spin's rule for variable names, with Spin's wording (guests see it in `invalid-name`).
pub fn check_variable_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        )
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lowercase ASCII letter".to_string()
    } else if !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        "must end with a lowercase ASCII letter or digit".to_string()
    } else if name.contains("__") {
        "must not contain multiple consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    bail!("{name:?}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let err = toml::from_str::<RawManifest>(
            "spin_manifest_version = 2\n[application]\nname='a'\nbogus_field = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus_field"), "{err}");
    }
}
