//! An independent look into the S3 bucket, with curl's own SigV4 signer: what the tests
//! assert about objects must not go through the code under test.

use crate::services::S3Env;
use anyhow::{Result, bail};
use std::process::Command;

fn curl(env: &S3Env, url: &str, extra: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(["-s", "-f", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", env.region))
        .arg("--user")
        .arg(format!("{}:{}", env.access_key, env.secret_key))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(extra)
        .arg(url)
        .output()?;
    if !out.status.success() {
        bail!("curl {url}: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split(&close).next().map(str::to_string))
        .collect()
}

/// A query value as SigV4 canonicalizes it (curl signs what it sends: `/` must be `%2F`).
fn query_value(v: &str) -> String {
    v.replace('/', "%2F")
}

/// Object keys under `prefix` (one page of up to 1000 is plenty for tests).
pub fn list_keys(env: &S3Env, prefix: &str) -> Result<Vec<String>> {
    let url = format!(
        "{}/{}?list-type=2&prefix={}",
        env.endpoint,
        env.bucket,
        query_value(prefix)
    );
    Ok(tag_values(&curl(env, &url, &[])?, "Key"))
}

/// Keys of multipart uploads in progress under `prefix`.
pub fn list_multipart_uploads(env: &S3Env, prefix: &str) -> Result<Vec<String>> {
    let url = format!(
        "{}/{}?prefix={}&uploads=",
        env.endpoint,
        env.bucket,
        query_value(prefix)
    );
    Ok(tag_values(&curl(env, &url, &[])?, "Key"))
}

/// Deletes every object under `prefix` and aborts its multipart uploads. Best effort,
/// bounded by a timeout per request: a test's clean-up must not hang on a server it
/// stopped on purpose.
pub fn remove_prefix(env: &S3Env, prefix: &str) {
    let quick = ["-m", "30"];
    for _ in 0..100 {
        let Ok(keys) = list_keys(env, prefix) else {
            return;
        };
        if keys.is_empty() {
            break;
        }
        for key in keys {
            let url = format!("{}/{}/{}", env.endpoint, env.bucket, key);
            let _ = curl(env, &url, &[&quick[..], &["-X", "DELETE"]].concat());
        }
    }
    let listing = format!(
        "{}/{}?prefix={}&uploads=",
        env.endpoint,
        env.bucket,
        query_value(prefix)
    );
    if let Ok(xml) = curl(env, &listing, &quick) {
        let keys = tag_values(&xml, "Key");
        let ids = tag_values(&xml, "UploadId");
        for (key, id) in keys.iter().zip(&ids) {
            let url = format!("{}/{}/{}?uploadId={id}", env.endpoint, env.bucket, key);
            let _ = curl(env, &url, &[&quick[..], &["-X", "DELETE"]].concat());
        }
    }
}

/// Response headers of a HEAD on `key`, lower-cased names.
pub fn head(env: &S3Env, key: &str) -> Result<String> {
    let url = format!("{}/{}/{}", env.endpoint, env.bucket, key);
    Ok(curl(env, &url, &["-I"])?.to_ascii_lowercase())
}

/// Writes `bytes` at `key` behind the app's back (to corrupt a stored object on purpose).
pub fn put_object(env: &S3Env, key: &str, bytes: &[u8]) -> Result<()> {
    let file = std::env::temp_dir().join(format!("s3-put-{}", uuid::Uuid::now_v7()));
    std::fs::write(&file, bytes)?;
    let url = format!("{}/{}/{}", env.endpoint, env.bucket, key);
    let file_arg = file.to_string_lossy().into_owned();
    let result = curl(env, &url, &["-T", &file_arg]);
    let _ = std::fs::remove_file(&file);
    result.map(|_| ())
}

/// Deletes the object at `key` behind the app's back (to lose a stored object on purpose).
pub fn delete_object(env: &S3Env, key: &str) -> Result<()> {
    let url = format!("{}/{}/{}", env.endpoint, env.bucket, key);
    curl(env, &url, &["-X", "DELETE"]).map(|_| ())
}

/// The `ETag` S3 keeps for `key`, quotes included: `"<md5>-<parts>"` for an object stored
/// by a multipart upload.
pub fn etag(env: &S3Env, key: &str) -> Result<String> {
    let headers = head(env, key)?;
    match headers.lines().find_map(|l| l.strip_prefix("etag:")) {
        Some(v) => Ok(v.trim().to_string()),
        None => bail!("HEAD {key}: no ETag in {headers}"),
    }
}
