//! The deployment's Spin variables, read once per request.
//!
//! Decision: every variable goes through one lookup (`Config::from_lookup`), where an
//! undefined variable and an empty string both mean "default". Components only see the
//! variables their manifest entry maps, so a component that never reads S3 settings simply
//! gets defaults for them. Parsing is native-testable; `Config::load` binds it to Spin.
//! Invalid values are configuration errors (500 `internal`, logged), not client errors.

use artifact_store_core::access::TokenTable;
use artifact_store_core::retention::{DEFAULT_OPEN_TTL_SECS, RetentionRules};

use crate::problem::{ApiError, log_error};

pub const DEFAULT_MAX_FILE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const DEFAULT_SWEEP_BATCH_SIZE: u32 = 500;
pub const DEFAULT_ORPHAN_GRACE_SECS: i64 = 86_400;
/// A sweep's claim outlives any one sweep run (Spin requests are short) by a wide margin;
/// a sweeper that died mid-batch leaves its claims to the next sweep after this.
pub const DEFAULT_SWEEP_LEASE_SECS: i64 = 900;
pub const DEFAULT_PRESIGN_SECS: u64 = 300;
/// Leaves a third of a 30 s serverless request for the rest of `complete`.
pub const DEFAULT_VERIFY_BUDGET_MS: u64 = 20_000;

/// Which backend receives new uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Kv,
    S3,
}

impl BackendKind {
    pub fn id(self) -> &'static str {
        match self {
            BackendKind::Kv => "kv",
            BackendKind::S3 => "s3",
        }
    }
}

pub struct Config {
    pub auth_tokens: TokenTable,
    pub default_backend: BackendKind,
    pub max_file_bytes: u64,
    pub open_package_ttl_seconds: i64,
    pub retention: RetentionRules,
    pub sweep_batch_size: u32,
    pub orphan_grace_seconds: i64,
    pub sweep_lease_seconds: i64,
    pub s3_presign_seconds: u64,
    /// How long an upload session takes parts (`upload_session_seconds`).
    pub upload_session_seconds: i64,
    /// How long one request (or sweep) may spend reading back and hashing an upload
    /// session's file (`verify_budget_ms`); what is left waits for the next one.
    pub verify_budget_ms: u64,
    /// Hash every full download in the component and break the response on a mismatch
    /// (`false`: S3 bytes are moved host-side, unhashed; clients check `Repr-Digest`).
    pub verify_downloads: bool,
    /// The Ed25519 seed that signs audit checkpoints (`audit_signing_key`, 64 hex digits,
    /// a secret variable); `None`: checkpoints are not offered.
    pub audit_signing_key: Option<[u8; 32]>,
    /// The raw lookup, for adapters that read their own variables (S3, metadata store).
    lookup: fn(&str) -> Option<String>,
}

fn bad(name: &str, why: &str) -> ApiError {
    // The value is not echoed: it may be a secret.
    log_error("configuration", &format!("variable {name}: {why}"));
    ApiError::internal(format!("the deployment's variable {name} is invalid"))
}

fn number<T: std::str::FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ApiError> {
    match lookup(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad(name, "not a non-negative whole number")),
    }
}

impl Config {
    /// Reads the variables through Spin.
    pub fn load() -> Result<Config, ApiError> {
        Config::from_lookup(spin_lookup)
    }

    /// Reads the variables through `lookup` (`None` or `""` = default).
    pub fn from_lookup(raw: fn(&str) -> Option<String>) -> Result<Config, ApiError> {
        let lookup = move |name: &str| {
            raw(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let auth_tokens = TokenTable::parse(&lookup("auth_tokens").unwrap_or_default())
            .map_err(|e| bad("auth_tokens", &e.to_string()))?;
        let default_backend = match lookup("default_backend").as_deref() {
            None | Some("kv") => BackendKind::Kv,
            Some("s3") => BackendKind::S3,
            Some(_) => return Err(bad("default_backend", "must be kv or s3")),
        };
        let retention = RetentionRules::from_overrides(lookup)
            .map_err(|e| bad("retention_<class>_seconds", &e.detail))?;
        let open_package_ttl_seconds: i64 =
            number(&lookup, "open_package_ttl_seconds", DEFAULT_OPEN_TTL_SECS)?;
        let orphan_grace_seconds: i64 =
            number(&lookup, "orphan_grace_seconds", DEFAULT_ORPHAN_GRACE_SECS)?;
        if open_package_ttl_seconds < 0 || orphan_grace_seconds < 0 {
            return Err(bad(
                "open_package_ttl_seconds/orphan_grace_seconds",
                "negative",
            ));
        }
        let sweep_batch_size: u32 = number(&lookup, "sweep_batch_size", DEFAULT_SWEEP_BATCH_SIZE)?;
        if sweep_batch_size == 0 {
            return Err(bad("sweep_batch_size", "must be at least 1"));
        }
        let sweep_lease_seconds: i64 =
            number(&lookup, "sweep_lease_seconds", DEFAULT_SWEEP_LEASE_SECS)?;
        if sweep_lease_seconds < 1 {
            return Err(bad("sweep_lease_seconds", "must be at least 1"));
        }
        let upload_session_seconds: i64 = number(
            &lookup,
            "upload_session_seconds",
            artifact_store_core::session::SESSION_SECS,
        )?;
        if upload_session_seconds < 1 {
            return Err(bad("upload_session_seconds", "must be at least 1"));
        }
        let verify_budget_ms: u64 = number(&lookup, "verify_budget_ms", DEFAULT_VERIFY_BUDGET_MS)?;
        let max_file_bytes: u64 = number(&lookup, "max_file_bytes", DEFAULT_MAX_FILE_BYTES)?;
        // S3 takes an object in one PutObject (the fast path) or copies it in one
        // CopyObject (promotion) only up to 5 GiB: a larger limit would fail each such
        // upload after its whole body was sent. Refuse the setting instead.
        if default_backend == BackendKind::S3
            && max_file_bytes > crate::storage::s3::MAX_SINGLE_PUT_BYTES
        {
            return Err(bad(
                "max_file_bytes",
                "above 5 GiB, the largest object S3 takes in one PutObject or CopyObject",
            ));
        }
        let verify_downloads = match lookup("verify_downloads").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad("verify_downloads", "must be true or false")),
        };
        let audit_signing_key = match lookup("audit_signing_key") {
            None => None,
            Some(hex_seed) => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(&hex_seed, &mut seed)
                    .map_err(|_| bad("audit_signing_key", "must be 64 hex digits"))?;
                Some(seed)
            }
        };
        Ok(Config {
            verify_downloads,
            audit_signing_key,
            auth_tokens,
            default_backend,
            max_file_bytes,
            open_package_ttl_seconds,
            retention,
            sweep_batch_size,
            orphan_grace_seconds,
            sweep_lease_seconds,
            upload_session_seconds,
            verify_budget_ms,
            s3_presign_seconds: number(&lookup, "s3_presign_seconds", DEFAULT_PRESIGN_SECS)?,
            lookup: raw,
        })
    }

    /// A variable as the adapters see it (`None` when undefined or empty).
    pub fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The lookup, for adapters that take one (`S3Config::from_lookup`).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.var(name)
    }
}

/// A Spin variable; undefined (not mapped for this component) reads as `None`.
pub fn spin_lookup(name: &str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults() {
        let c = Config::from_lookup(none).unwrap();
        assert_eq!(c.default_backend, BackendKind::Kv);
        assert_eq!(c.max_file_bytes, 5_368_709_120);
        assert_eq!(c.open_package_ttl_seconds, 86_400);
        assert_eq!(c.sweep_batch_size, 500);
        assert_eq!(c.s3_presign_seconds, 300);
        assert!(c.auth_tokens.is_empty());
    }

    #[test]
    fn overrides_and_errors() {
        fn vars(name: &str) -> Option<String> {
            match name {
                "default_backend" => Some("s3".into()),
                "max_file_bytes" => Some(" 10 ".into()),
                "retention_transient_seconds" => Some("60".into()),
                "sweep_batch_size" => Some("".into()),
                _ => None,
            }
        }
        let c = Config::from_lookup(vars).unwrap();
        assert_eq!(c.default_backend, BackendKind::S3);
        assert_eq!(c.max_file_bytes, 10);
        assert_eq!(c.sweep_batch_size, 500);
        assert_eq!(
            c.retention
                .seconds(artifact_store_core::model::RetentionClass::Transient),
            Some(60)
        );
        fn broken(name: &str) -> Option<String> {
            (name == "max_file_bytes").then(|| "lots".into())
        }
        assert_eq!(Config::from_lookup(broken).err().unwrap().status(), 500);
        // Above S3's single-request limit: refused on S3, fine on kv.
        fn huge_on_s3(name: &str) -> Option<String> {
            match name {
                "default_backend" => Some("s3".into()),
                "max_file_bytes" => Some("5368709121".into()),
                _ => None,
            }
        }
        assert_eq!(Config::from_lookup(huge_on_s3).err().unwrap().status(), 500);
        fn huge_on_kv(name: &str) -> Option<String> {
            (name == "max_file_bytes").then(|| "5368709121".into())
        }
        assert_eq!(
            Config::from_lookup(huge_on_kv).unwrap().max_file_bytes,
            5_368_709_121
        );
    }
}
