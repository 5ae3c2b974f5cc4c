//! `S3Config`: the `s3_*` Spin variables, validated once at start-up.
//!
//! Decision: the config is read through a lookup closure (`from_lookup`) instead of calling
//! Spin's variables API here, so it is testable natively and the API helper decides where
//! values come from. Empty strings mean "unset" (the project-wide rule). The access key and
//! secret never appear in `Debug` output, so logging a config cannot leak them.

use std::fmt;

/// The smallest part S3 accepts (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part and the largest single PutObject / CopyObject S3 accepts.
pub const MAX_SINGLE_OBJECT: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;

const MIB: u64 = 1024 * 1024;
const DEFAULT_MULTIPART_THRESHOLD: u64 = 8 * MIB;
/// Two parts are in memory at once while an upload streams (one sent, one read).
const DEFAULT_PART_SIZE: u64 = 8 * MIB;
const DEFAULT_PRESIGN_SECONDS: u64 = 300;
const DEFAULT_TIMEOUT_SECONDS: u64 = 60;
/// SigV4 presigned URLs are valid for at most 7 days.
const MAX_PRESIGN_SECONDS: u64 = 7 * 24 * 3600;

/// Server-side encryption asked for on every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// `x-amz-server-side-encryption: AES256` (keys managed by the server).
    Aes256,
    /// `x-amz-server-side-encryption: aws:kms`, with an optional key id.
    Kms { key_id: Option<String> },
}

/// Connection and behaviour settings of the S3 backend.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host[:port]`, no trailing `/`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Normalized: empty or ending with exactly one `/`. Keys handed to the store already
    /// carry it (see `core::content`); the store only reports it.
    pub key_prefix: String,
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    /// `true`: `endpoint/bucket/key`; `false`: `endpoint/key`, where the endpoint is the
    /// bucket's virtual host (`https://bucket.s3.region.amazonaws.com`): the component
    /// may reach only the host its manifest grants, `s3_endpoint`.
    pub path_style: bool,
    /// Bodies up to this size go in one PutObject; larger ones use multipart.
    pub multipart_threshold: u64,
    /// Configured part size (see `part_size_for`).
    pub part_size: u64,
    pub presign_seconds: u64,
    /// How long S3 may leave a request without progress: to connect, to answer, to take
    /// or send the next bytes (`s3_timeout_seconds`). Past it the request fails (503).
    pub timeout_seconds: u64,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("storage_class", &self.storage_class)
            .field("sse", &self.sse)
            .field("path_style", &self.path_style)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("presign_seconds", &self.presign_seconds)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

impl S3Config {
    /// Reads the `s3_*` variables through `lookup`. `Ok(None)` when `s3_endpoint` or
    /// `s3_bucket` is empty (no S3 backend configured); `Err` names the bad variable (never
    /// its value, which may be a secret).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<S3Config>, String> {
        let get = |name: &str| -> Option<String> {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (Some(endpoint), Some(bucket)) = (get("s3_endpoint"), get("s3_bucket")) else {
            return Ok(None);
        };
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let Some(host) = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
        else {
            return Err("s3_endpoint must start with http:// or https://".into());
        };
        if host.is_empty() || host.contains('/') {
            return Err("s3_endpoint must be scheme://host[:port] without a path".into());
        }
        let access_key_id =
            get("s3_access_key_id").ok_or("s3_access_key_id is required with s3_endpoint")?;
        let secret_access_key = get("s3_secret_access_key")
            .ok_or("s3_secret_access_key is required with s3_endpoint")?;
        let sse = match get("s3_sse").as_deref() {
            None => None,
            Some("AES256") => Some(Sse::Aes256),
            Some("aws:kms") => Some(Sse::Kms {
                key_id: get("s3_sse_kms_key_id"),
            }),
            Some(_) => return Err("s3_sse must be AES256 or aws:kms".into()),
        };
        if sse.is_none() && get("s3_sse_kms_key_id").is_some() {
            return Err("s3_sse_kms_key_id needs s3_sse=aws:kms".into());
        }
        let path_style = match get("s3_path_style").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err("s3_path_style must be true or false".into()),
        };
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| format!("{name} must be a non-negative integer")),
            }
        };
        let multipart_threshold = number("s3_multipart_threshold", DEFAULT_MULTIPART_THRESHOLD)?;
        if multipart_threshold > MAX_SINGLE_OBJECT {
            return Err("s3_multipart_threshold must be at most 5 GiB".into());
        }
        let part_size = number("s3_part_size", DEFAULT_PART_SIZE)?;
        if !(MIN_PART_SIZE..=MAX_SINGLE_OBJECT).contains(&part_size) {
            return Err("s3_part_size must be between 5 MiB and 5 GiB".into());
        }
        let presign_seconds = number("s3_presign_seconds", DEFAULT_PRESIGN_SECONDS)?;
        if !(1..=MAX_PRESIGN_SECONDS).contains(&presign_seconds) {
            return Err("s3_presign_seconds must be between 1 and 604800".into());
        }
        let timeout_seconds = number("s3_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)?;
        if timeout_seconds == 0 {
            return Err("s3_timeout_seconds must be at least 1".into());
        }
        if !path_style && !host.starts_with(&format!("{bucket}.")) {
            // The component may reach only the granted `s3_endpoint`, so the bucket's
            // virtual host must be the endpoint itself.
            return Err(format!(
                "s3_path_style=false needs s3_endpoint to be the bucket's virtual host, \
                 e.g. https://{bucket}.s3.eu-west-1.amazonaws.com"
            ));
        }
        if !path_style && bucket.contains('.') && endpoint.starts_with("https://") {
            // A dotted bucket name breaks the wildcard TLS certificate of virtual hosts.
            return Err("s3_bucket with dots needs s3_path_style=true over https".into());
        }
        Ok(Some(S3Config {
            endpoint,
            bucket,
            region: get("s3_region").unwrap_or_else(|| "us-east-1".into()),
            access_key_id,
            secret_access_key,
            key_prefix: normalize_prefix(&get("s3_key_prefix").unwrap_or_default()),
            storage_class: get("s3_storage_class"),
            sse,
            path_style,
            multipart_threshold,
            part_size,
            presign_seconds,
            timeout_seconds,
        }))
    }

    /// The part size for a body of at most `max_bytes`: the configured size, raised (to a
    /// whole MiB) when `max_bytes` would otherwise need more than 10,000 parts.
    pub fn part_size_for(&self, max_bytes: u64) -> u64 {
        let needed = max_bytes.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        self.part_size.max(needed).min(MAX_SINGLE_OBJECT)
    }
}

/// Empty, or ending with exactly one `/` (the same rule as `core::content`).
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 4] = [
        ("s3_endpoint", "http://127.0.0.1:7480/"),
        ("s3_bucket", "b"),
        ("s3_access_key_id", "AKID"),
        ("s3_secret_access_key", "SECRETVALUE"),
    ];

    #[test]
    fn absent_endpoint_or_bucket_means_no_backend() {
        assert_eq!(S3Config::from_lookup(lookup(&[])), Ok(None));
        assert_eq!(
            S3Config::from_lookup(lookup(&[("s3_endpoint", "http://x"), ("s3_bucket", "")])),
            Ok(None)
        );
    }

    #[test]
    fn defaults_apply() {
        let c = S3Config::from_lookup(lookup(&BASE)).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:7480");
        assert_eq!(c.region, "us-east-1");
        assert!(c.path_style);
        assert_eq!(c.multipart_threshold, 8 * MIB);
        assert_eq!(c.part_size, 8 * MIB);
        assert_eq!(c.presign_seconds, 300);
        assert_eq!(c.timeout_seconds, 60);
        assert_eq!(c.key_prefix, "");
        assert_eq!(c.sse, None);
    }

    #[test]
    fn virtual_hosted_style_needs_the_bucket_host_as_endpoint() {
        let mut v = BASE.to_vec();
        v.push(("s3_path_style", "false"));
        let err = S3Config::from_lookup(lookup(&v)).unwrap_err();
        assert!(err.contains("virtual host"), "{err}");
        v[0] = ("s3_endpoint", "https://b.s3.eu-west-1.amazonaws.com");
        let c = S3Config::from_lookup(lookup(&v)).unwrap().unwrap();
        assert!(!c.path_style);
        v[0] = ("s3_endpoint", "https://bb.s3.eu-west-1.amazonaws.com");
        assert!(
            S3Config::from_lookup(lookup(&v)).is_err(),
            "another bucket's host"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let c = S3Config::from_lookup(lookup(&BASE)).unwrap().unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRETVALUE") && !shown.contains("AKID"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut v = BASE.to_vec();
        v.push(("s3_sse", "rot13"));
        assert!(
            S3Config::from_lookup(lookup(&v))
                .unwrap_err()
                .contains("s3_sse")
        );
        let mut v = BASE.to_vec();
        v.push(("s3_part_size", "1024"));
        assert!(
            S3Config::from_lookup(lookup(&v))
                .unwrap_err()
                .contains("s3_part_size")
        );
        let v = &BASE[..3];
        assert!(
            S3Config::from_lookup(lookup(v))
                .unwrap_err()
                .contains("s3_secret_access_key")
        );
    }

    #[test]
    fn kms_and_prefix() {
        let mut v = BASE.to_vec();
        v.extend([
            ("s3_sse", "aws:kms"),
            ("s3_sse_kms_key_id", "k1"),
            ("s3_key_prefix", "/arts"),
        ]);
        let c = S3Config::from_lookup(lookup(&v)).unwrap().unwrap();
        assert_eq!(
            c.sse,
            Some(Sse::Kms {
                key_id: Some("k1".into())
            })
        );
        assert_eq!(c.key_prefix, "arts/");
    }

    #[test]
    fn part_size_grows_for_huge_limits() {
        let c = S3Config::from_lookup(lookup(&BASE)).unwrap().unwrap();
        assert_eq!(c.part_size_for(5 * 1024 * MIB), 8 * MIB);
        // 1 TiB / 10,000 parts = 104.9 MiB -> 105 MiB parts.
        let p = c.part_size_for(1024 * 1024 * MIB);
        assert_eq!(p, 105 * MIB);
        assert!((1024 * 1024 * MIB).div_ceil(p) <= MAX_PARTS);
    }
}
