//! Application variables: `fermyon:spin/variables@2.0.0` and `wasi:config/store`.
//!
//! Decision: everything is resolved once at start, in Spin's precedence order (manifest
//! `default`, then `SPIN_VARIABLE_<NAME>` environment variables, then `--variable` flags, last
//! wins). A required variable without a value, or a component template naming an unknown
//! variable, fails start-up; guests then read an immutable per-component map, so a request can
//! never observe a half-configured app.

use crate::bindings::fermyon::spin::variables;
use crate::bindings::wasi::config::store;
use crate::manifest::{Manifest, check_variable_name};
use crate::state::HostState;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashSet};

/// Resolved application-level variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    secrets: HashSet<String>,
}

impl AppVariables {
    /// Resolves `[variables]` with `env` (lookup of `SPIN_VARIABLE_*`) and `flags` (name, value).
    pub fn resolve(
        manifest: &Manifest,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(String, String)],
    ) -> Result<Self> {
        let decls = &manifest.raw.variables;
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            if decl.required && decl.default.is_some() {
                bail!("[variables.{name}]: a required variable cannot have a default");
            }
            if let Some(d) = &decl.default {
                values.insert(name.clone(), d.clone());
            }
            if let Some(v) = env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())) {
                values.insert(name.clone(), v);
            }
        }
        for (name, value) in flags {
            check_variable_name(name).context("--variable")?;
            if !decls.contains_key(name) {
                bail!("--variable {name}: no such variable in [variables]");
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
        if check_variable_name(&name).is_err() {
            return Err(variables::Error::InvalidName(name));
        }
        self.ctx
            .variables
            .get(&name)
            .cloned()
            .ok_or_else(|| variables::Error::Undefined(format!("no variable for {name:?}")))
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
