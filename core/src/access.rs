//! Who may do what: the `auth_tokens` table and the principal a bearer token names.
//!
//! Decisions: only sha256 hashes of tokens are configured and compared; a presented token is
//! hashed and compared with *every* configured hash in constant time (no early exit), so
//! timing reveals neither which entry matched nor how many bytes did. An empty `auth_tokens`
//! is a valid table that authenticates nobody. Producer lists may contain `"*"` (all).
//! `operator` reads everything but creates packages only if it also has `producer`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Producer,
    Reader,
    Operator,
}

/// The configuration is unusable; the detail never contains a token or hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth_tokens: {0}")]
pub struct AccessConfigError(pub String);

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
    pub producers: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_operator(&self) -> bool {
        self.has_role(Role::Operator)
    }

    fn lists(&self, producer: &str) -> bool {
        self.producers.iter().any(|p| p == "*" || p == producer)
    }

    /// Create packages for `producer`, upload to and finalize them.
    pub fn can_create_in(&self, producer: &str) -> bool {
        self.has_role(Role::Producer) && self.lists(producer)
    }

    /// Read and download `producer`'s packages.
    pub fn can_read(&self, producer: &str) -> bool {
        self.is_operator()
            || ((self.has_role(Role::Producer) || self.has_role(Role::Reader))
                && self.lists(producer))
    }

    /// The producers this principal may read (`None` = all), for list filters.
    pub fn readable_producers(&self) -> Option<Vec<String>> {
        let reads = self.has_role(Role::Producer) || self.has_role(Role::Reader);
        if self.is_operator() || (reads && self.producers.iter().any(|p| p == "*")) {
            None
        } else if reads {
            let mut p = self.producers.clone();
            p.sort();
            p.dedup();
            Some(p)
        } else {
            Some(Vec::new())
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    token_sha256: String,
    principal: String,
    roles: Vec<Role>,
    #[serde(default)]
    producers: Vec<String>,
}

/// The parsed `auth_tokens` variable.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Principal)>,
}

/// Lower-case hex sha256 of a token, as configured in `auth_tokens`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl TokenTable {
    /// Parses `auth_tokens` (a JSON list; empty string = no tokens).
    pub fn parse(json: &str) -> Result<Self, AccessConfigError> {
        if json.trim().is_empty() {
            return Ok(TokenTable::default());
        }
        let raw: Vec<Entry> = serde_json::from_str(json)
            .map_err(|e| AccessConfigError(format!("not a JSON list of token entries: {e}")))?;
        let mut entries: Vec<([u8; 32], Principal)> = Vec::with_capacity(raw.len());
        for (i, e) in raw.into_iter().enumerate() {
            let bad = |why: &str| AccessConfigError(format!("entry {i}: {why}"));
            let hash = hex::decode(e.token_sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| bad("token_sha256 must be 64 hex digits"))?;
            if e.principal.trim().is_empty() {
                return Err(bad("principal must not be empty"));
            }
            if e.roles.is_empty() {
                return Err(bad("roles must not be empty"));
            }
            let needs_producers = e.roles.iter().any(|r| *r != Role::Operator);
            if needs_producers && e.producers.is_empty() {
                return Err(bad("producer and reader roles need a producers list"));
            }
            if let Some(p) = e
                .producers
                .iter()
                .find(|p| *p != "*" && crate::validate::producer(p).is_err())
            {
                return Err(bad(&format!("invalid producer {p:?}")));
            }
            if entries.iter().any(|(h, _)| h == &hash) {
                return Err(bad("the same token is configured twice"));
            }
            entries.push((
                hash,
                Principal {
                    name: e.principal,
                    roles: e.roles,
                    producers: e.producers,
                },
            ));
        }
        Ok(TokenTable { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of `bearer_token`, if it is configured.
    pub fn authenticate(&self, bearer_token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(bearer_token.as_bytes()).into();
        let mut found = None;
        for (hash, principal) in &self.entries {
            if ct_eq(hash, &presented) && found.is_none() {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TokenTable {
        let cfg = serde_json::json!([
            {"token_sha256": hash_token("ci"), "principal": "ci-bot", "roles": ["producer"], "producers": ["guide-board"]},
            {"token_sha256": hash_token("rd").to_uppercase(), "principal": "auditor", "roles": ["reader"], "producers": ["*"]},
            {"token_sha256": hash_token("op"), "principal": "ops", "roles": ["operator"]},
        ]);
        TokenTable::parse(&cfg.to_string()).unwrap()
    }

    #[test]
    fn authenticates_by_hash() {
        let t = table();
        assert_eq!(t.len(), 3);
        assert_eq!(t.authenticate("ci").unwrap().name, "ci-bot");
        assert_eq!(t.authenticate("rd").unwrap().name, "auditor");
        assert!(t.authenticate("nope").is_none());
        assert!(t.authenticate("").is_none());
        assert!(TokenTable::parse("").unwrap().authenticate("ci").is_none());
    }

    #[test]
    fn rights() {
        let t = table();
        let ci = t.authenticate("ci").unwrap();
        assert!(ci.can_create_in("guide-board") && !ci.can_create_in("other"));
        assert!(ci.can_read("guide-board") && !ci.can_read("other"));
        assert!(!ci.is_operator());
        assert_eq!(
            ci.readable_producers(),
            Some(vec!["guide-board".to_string()])
        );

        let rd = t.authenticate("rd").unwrap();
        assert!(rd.can_read("anything") && !rd.can_create_in("anything"));
        assert_eq!(rd.readable_producers(), None);

        let op = t.authenticate("op").unwrap();
        assert!(op.is_operator() && op.can_read("x") && !op.can_create_in("x"));
        assert_eq!(op.readable_producers(), None);
    }

    #[test]
    fn invalid_configs() {
        let h = hash_token("x");
        for cfg in [
            "{}".to_string(),
            "not json".to_string(),
            r#"[{"token_sha256":"abc","principal":"p","roles":["reader"],"producers":["*"]}]"#
                .to_string(),
            format!(
                r#"[{{"token_sha256":"{h}","principal":"","roles":["reader"],"producers":["*"]}}]"#
            ),
            format!(r#"[{{"token_sha256":"{h}","principal":"p","roles":[],"producers":["*"]}}]"#),
            format!(
                r#"[{{"token_sha256":"{h}","principal":"p","roles":["admin"],"producers":["*"]}}]"#
            ),
            format!(r#"[{{"token_sha256":"{h}","principal":"p","roles":["reader"]}}]"#),
            format!(
                r#"[{{"token_sha256":"{h}","principal":"p","roles":["reader"],"producers":["a b"]}}]"#
            ),
            format!(r#"[{{"token_sha256":"{h}","principal":"p","roles":["operator"],"extra":1}}]"#),
            format!(
                r#"[{{"token_sha256":"{h}","principal":"p","roles":["operator"]}},{{"token_sha256":"{h}","principal":"q","roles":["operator"]}}]"#
            ),
        ] {
            let e = TokenTable::parse(&cfg).unwrap_err();
            assert!(!e.0.contains(&h), "errors never echo hashes: {e}");
        }
    }
}
