//! What the registry knows about a package's files: `GET /packages/{id}/files` (any token
//! that may read the package, open or finalized: paths, digests and file ids) and the
//! manifest of a finalized package (paths and digests, no ids).

use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::client::{Client, encode_path, query_pair};

/// One file the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: String,
    pub size: u64,
    /// From the file listing only (a manifest names no ids).
    pub id: Option<String>,
}

/// `relative_path` -> file, from `GET /packages/{id}/files` (every page, should the
/// registry ever page it).
pub async fn files(client: &Client, package_id: &str) -> Result<BTreeMap<String, RemoteFile>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/packages/{}/files", encode_path(package_id));
        if let Some(c) = &cursor {
            path.push('?');
            path.push_str(&query_pair("cursor", c));
        }
        let page = client.get_json(&path).await?;
        for f in page["items"].as_array().into_iter().flatten() {
            if let (Some(path), Some(sha256), Some(size)) = (
                f["relative_path"].as_str(),
                f["sha256"].as_str(),
                f["size_bytes"].as_u64(),
            ) {
                out.insert(
                    path.to_string(),
                    RemoteFile {
                        sha256: sha256.to_string(),
                        size,
                        id: f["id"].as_str().map(str::to_string),
                    },
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) if cursor.as_deref() != Some(c) => cursor = Some(c.to_string()),
            _ => return Ok(out),
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
        .get_json(&format!("/packages/{}/manifest", encode_path(package_id)))
        .await
}
