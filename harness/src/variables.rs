//! Application variables: `fermyon:spin/variables@2.0.0` and `wasi:config/store`.
//!
//! Decision: everything is resolved once at start, in Spin 3.5's precedence order: `--variable`
//! flags, then each `[[variables_provider]]` of the runtime config in order (its
//! `<PREFIX>_<NAME>` environment variable, then its dotenv file), then Spin's default provider
//! (`SPIN_VARIABLE_<NAME>`, then `.env` in the working directory), then the manifest
//! `default`; the first that has a value wins. A required variable without a value, or a
//! component template naming an unknown variable, fails start-up; guests then read an
//! immutable per-component map, so a request can never observe a half-configured app.

use crate::bindings::fermyon::spin::variables;
use crate::bindings::wasi::config::store;
use crate::manifest::{Manifest, check_variable_name};
use crate::runtime_config::EnvProvider;
use crate::state::HostState;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Resolved application-level variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    secrets: HashSet<String>,
}

impl AppVariables {
    /// Resolves `[variables]` from `flags` (name, value), the runtime config's `providers`,
    /// then the default provider (`env` looks up environment variables; `default_dotenv`
    /// is its `.env` file), then the manifest defaults.
    pub fn resolve(
        manifest: &Manifest,
        env: impl Fn(&str) -> Option<String>,
        providers: &[EnvProvider],
        default_dotenv: HashMap<String, String>,
        flags: &[(String, String)],
    ) -> Result<Self> {
        let decls = &manifest.raw.variables;
        let default_provider = EnvProvider {
            prefix: "SPIN_VARIABLE".into(),
            dotenv: default_dotenv,
        };
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            if decl.required && decl.default.is_some() {
                bail!("[variables.{name}]: a required variable cannot have a default");
            }
            let provided = providers
                .iter()
                .chain(std::iter::once(&default_provider))
                .find_map(|p| {
                    let key = format!("{}_{}", p.prefix, name.to_ascii_uppercase());
                    env(&key).or_else(|| p.dotenv.get(&key).cloned())
                });
            if let Some(v) = provided.or_else(|| decl.default.clone()) {
                values.insert(name.clone(), v);
            }
        }
        for (name, value) in flags {
            // Spin 3.5 ignores a flag naming no declared variable (even an invalid name);
            // the harness does too, but says so.
            if !decls.contains_key(name) {
                eprintln!("harness: --variable {name}: no such variable in [variables]; ignored");
                continue;
            }
            values.insert(name.clone(), value.clone());
        }
        for (name, decl) in decls {
            if decl.required && !values.contains_key(name) {
                bail!(
                    "variable `{name}` is required but has no value (set SPIN_VARIABLE_{} or --variable {name}=...)",
                    name.to_ascii_uppercase()
                );
            }
        }
        let secrets = decls
            .iter()
            .filter(|(_, d)| d.secret)
            .map(|(n, _)| n.clone())
            .collect();
        Ok(Self { values, secrets })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.secrets.contains(name)
    }

    /// Expands `{{ name }}` references in `template`.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated `{{{{` in template `{template}`");
            };
            let name = after[..end].trim();
            match self.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    bail!("template `{template}` refers to variable `{name}` which has no value")
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Expands a component's `[component.x.variables]` templates.
pub fn component_variables(
    app: &AppVariables,
    templates: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    templates
        .iter()
        .map(|(k, t)| {
            Ok((
                k.clone(),
                app.expand(t).with_context(|| format!("variables.{k}"))?,
            ))
        })
        .collect()
}

impl variables::Host for HostState {
    async fn get(&mut self, name: String) -> Result<String, variables::Error> {
        if let Err(e) = check_variable_name(&name) {
            return Err(variables::Error::InvalidName(e.to_string()));
        }
        self.ctx.variables.get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable for {:?}.{name:?}", self.ctx.id))
        })
    }
}

impl store::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.ctx.variables.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .ctx
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_templates() {
        let mut v = AppVariables::default();
        v.values.insert("a".into(), "x".into());
        assert_eq!(v.expand("http://{{ a }}:1/{{a}}").unwrap(), "http://x:1/x");
        assert!(v.expand("{{ b }}").is_err());
    }
}
