//! What the registry knows about a package's files.
//!
//! The API has no file listing of its own: a finalized package's manifest names its files
//! (path, size, sha256, but no file id), and only the audit log (`file_uploaded` events,
//! operator) names the files of an open package and every file's id, which downloads
//! need. So `remote_files` reads the audit log when the token may, and says `None` when
//! it may not.

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::client::{Client, api_error, query_pair};

/// One file the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: String,
    pub size: u64,
    /// From the audit log only.
    pub id: Option<String>,
}

/// `relative_path` -> file, from `file_uploaded` audit events; `None` when the token may
/// not read the audit log (403).
pub async fn uploaded_files(
    client: &Client,
    package_id: &str,
) -> Result<Option<BTreeMap<String, RemoteFile>>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/audit?{}&event_type=file_uploaded&limit=1000",
            query_pair("package_id", package_id)
        );
        if let Some(c) = &cursor {
            path.push('&');
            path.push_str(&query_pair("cursor", c));
        }
        let page = match client.get_json(&path).await {
            Ok(p) => p,
            Err(e) if api_error(&e).is_some_and(|a| a.status == 403) => return Ok(None),
            Err(e) => return Err(e),
        };
        for event in page["items"].as_array().into_iter().flatten() {
            let d = &event["details"];
            if let (Some(path), Some(sha256)) = (d["relative_path"].as_str(), d["sha256"].as_str())
            {
                out.insert(
                    path.to_string(),
                    RemoteFile {
                        sha256: sha256.to_string(),
                        size: d["size_bytes"].as_u64().unwrap_or(0),
                        id: event["file_id"].as_str().map(str::to_string),
                    },
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(Some(out)),
        }
    }
}

/// `relative_path` -> file, from a manifest.
pub fn manifest_files(manifest: &Value) -> BTreeMap<String, RemoteFile> {
    manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f["relative_path"].as_str()?.to_string(),
                RemoteFile {
                    sha256: f["sha256"].as_str()?.to_string(),
                    size: f["size_bytes"].as_u64()?,
                    id: None,
                },
            ))
        })
        .collect()
}

pub async fn manifest(client: &Client, package_id: &str) -> Result<Value> {
    client
        .get_json(&format!(
            "/packages/{}/manifest",
            crate::client::encode_path(package_id)
        ))
        .await
}
