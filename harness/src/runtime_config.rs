//! Spin's runtime config file (`--runtime-config-file`), the part the harness implements.
//!
//! Decision: the same file must work under `spin up` and the harness, so the harness reads
//! Spin's format and refuses what Spin refuses (checked against Spin 3.5):
//! - an unknown top-level key fails start (`unused runtime config key(s): ...`);
//! - `[key_value_store.<label>]` with `type = "spin"` and an optional `path` (none = in
//!   memory); a relative path is resolved against the runtime config file's directory;
//! - `[sqlite_database.<label>]` with `type = "spin"` and an optional `path`; a relative path
//!   is resolved against the working directory (Spin 3.5 does so, unlike key-value paths);
//! - `[[variables_provider]]` (or its older name `[[config_provider]]`) with `type = "env"`,
//!   an optional `prefix` (default `SPIN_VARIABLE`) and `dotenv_path`.
//!
//! Other store and provider types (redis, vault, ...) are Spin features the harness lacks:
//! they fail start with a message saying so, never silently fall back.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where a store's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// No `path`: process memory, gone at exit (as Spin).
    InMemory,
    File(PathBuf),
}

/// A `[[variables_provider]]` of type `env`.
#[derive(Debug, Clone, Default)]
pub struct EnvProvider {
    pub prefix: String,
    /// `KEY=value` lines of the provider's dotenv file, if it names one.
    pub dotenv: HashMap<String, String>,
}

/// The parsed runtime config; `RuntimeConfig::default()` is "no file given".
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, Location>,
    pub sqlite_databases: BTreeMap<String, Location>,
    pub variables_providers: Vec<EnvProvider>,
}

/// Reads `type` first, so a store or provider the harness lacks is named as such rather
/// than as an unknown field of the kind it does implement.
fn decl_type(key: &str, value: &toml::Value) -> Result<String> {
    value
        .get("type")
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("[{key}]: missing `type`"))
}

fn unsupported(key: &str, kind: &str, supported: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "[{key}]: type `{kind}` is a Spin feature the harness does not implement (only `{supported}`)"
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreDecl {
    #[allow(dead_code)]
    r#type: String,
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDecl {
    #[allow(dead_code)]
    r#type: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    dotenv_path: Option<PathBuf>,
}

const KNOWN_KEYS: [&str; 4] = [
    "key_value_store",
    "sqlite_database",
    "variables_provider",
    "config_provider",
];

impl RuntimeConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let cwd = std::env::current_dir().context("current directory")?;
        Self::parse(&text, &base, &cwd)
            .with_context(|| format!("runtime config {}", path.display()))
    }

    /// Parses a runtime config; `file_dir` resolves key-value paths, `cwd` SQLite paths.
    pub fn parse(text: &str, file_dir: &Path, cwd: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let unused: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect();
        if !unused.is_empty() {
            bail!("unused runtime config key(s): {}", unused.join(", "));
        }
        let mut config = RuntimeConfig::default();
        let stores = |key: &str, base: &Path| -> Result<BTreeMap<String, Location>> {
            let Some(value) = table.get(key) else {
                return Ok(BTreeMap::new());
            };
            let decls = value
                .as_table()
                .with_context(|| format!("[{key}] must be a table of labels"))?;
            decls
                .iter()
                .map(|(label, v)| {
                    let name = format!("{key}.{label}");
                    let kind = decl_type(&name, v)?;
                    if kind != "spin" {
                        return Err(unsupported(&name, &kind, "spin"));
                    }
                    let d: StoreDecl = v.clone().try_into().with_context(|| format!("[{name}]"))?;
                    let location = match d.path {
                        None => Location::InMemory,
                        Some(p) => Location::File(base.join(p)),
                    };
                    Ok((label.clone(), location))
                })
                .collect()
        };
        config.key_value_stores = stores("key_value_store", file_dir)?;
        config.sqlite_databases = stores("sqlite_database", cwd)?;
        for key in ["variables_provider", "config_provider"] {
            let Some(value) = table.get(key) else {
                continue;
            };
            let decls = value
                .as_array()
                .with_context(|| format!("[[{key}]] must be an array of tables"))?;
            for v in decls {
                let kind = decl_type(key, v)?;
                if kind != "env" {
                    return Err(unsupported(key, &kind, "env"));
                }
                let d: ProviderDecl = v.clone().try_into().with_context(|| format!("[[{key}]]"))?;
                let dotenv = match d.dotenv_path {
                    None => HashMap::new(),
                    Some(p) => read_dotenv(&cwd.join(p))?,
                };
                config.variables_providers.push(EnvProvider {
                    prefix: d.prefix.unwrap_or_else(|| "SPIN_VARIABLE".into()),
                    dotenv,
                });
            }
        }
        Ok(config)
    }
}

/// The stores of one kind a component may open: the runtime config's, plus `default` at
/// `default_file` unless the config moves it. Returns them with the (component, label)
/// uses that name none of them, for the caller to refuse with Spin's message.
pub fn resolve_labels<'a>(
    configured: &BTreeMap<String, Location>,
    default_file: PathBuf,
    uses: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (BTreeMap<String, Location>, Vec<(&'a str, &'a str)>) {
    let mut locations = configured.clone();
    locations
        .entry("default".into())
        .or_insert(Location::File(default_file));
    let undefined = uses
        .into_iter()
        .filter(|(_, label)| !locations.contains_key(*label))
        .collect();
    (locations, undefined)
}

/// `KEY=value` lines; blank lines and `#` comments skipped, surrounding quotes removed.
pub fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // Spin starts without the file (the provider then finds nothing in it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spin_format_and_resolves_paths_as_spin() {
        let c = RuntimeConfig::parse(
            "[key_value_store.blobs]\ntype = \"spin\"\npath = \"b.db\"\n\
             [key_value_store.mem]\ntype = \"spin\"\n\
             [sqlite_database.default]\ntype = \"spin\"\npath = \"m.db\"\n\
             [[variables_provider]]\ntype = \"env\"\nprefix = \"MY\"\n",
            Path::new("/conf"),
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(
            c.key_value_stores["blobs"],
            Location::File("/conf/b.db".into())
        );
        assert_eq!(c.key_value_stores["mem"], Location::InMemory);
        assert_eq!(
            c.sqlite_databases["default"],
            Location::File("/cwd/m.db".into())
        );
        assert_eq!(c.variables_providers[0].prefix, "MY");
    }

    #[test]
    fn refuses_what_spin_refuses_or_the_harness_lacks() {
        let err = |text: &str| {
            format!(
                "{:#}",
                RuntimeConfig::parse(text, Path::new("/"), Path::new("/")).unwrap_err()
            )
        };
        assert!(err("[foo]\nbar = 1\n").contains("unused runtime config key(s): foo"));
        assert!(err("[key_value_store.x]\ntype = \"redis\"\nurl = \"r\"\n").contains("redis"));
        assert!(err("[[variables_provider]]\ntype = \"vault\"\n").contains("vault"));
    }
}
