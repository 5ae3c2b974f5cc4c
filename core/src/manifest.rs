//! The manifest of a finalized package and its digest.
//!
//! Decisions:
//! - `package` is the package exactly as the API serves it, minus `deletion_eligible`
//!   (it depends on the clock, and a digest must not change with the time of the request).
//!   The manifest therefore describes the package *as it is now*: its status, `expires_at`
//!   and holds may change after finalization (and so may `manifest_sha256`); its files
//!   cannot.
//! - `files` are sorted by `relative_path` (unique within a package), each with every storage
//!   location of its bytes, sorted; `retention.extensions` are the `extended` retention
//!   events and `retention.holds` all holds (released ones too), both by `(created_at, id)`.
//!   Input order therefore never changes the bytes.
//! - `links` only names roles whose file exists; `scorecards` lists every path whose last
//!   segment is `scorecard*.json`, at any depth, sorted.
//! - `manifest_sha256` is the sha256 of the canonical JSON (see `canonical`) of the manifest
//!   without that field; `Manifest::bytes` is the canonical JSON of the whole manifest.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::model::{File, Hold, Package, RetentionEvent, RetentionEventType, StorageLocation};

pub const SCHEMA: &str = "artifact-store.manifest/v1";

/// Well-known files: role -> relative path.
pub const LINK_ROLES: [(&str, &str); 4] = [
    ("run", "run.json"),
    ("retention_summary", "retention-summary.json"),
    ("assessment_package", "reports/assessment-package.json"),
    ("report", "reports/report.md"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest, `manifest_sha256` included.
    pub value: Value,
    /// Canonical JSON of `value` (what `GET /packages/{id}/manifest` serves).
    pub bytes: Vec<u8>,
    /// `manifest_sha256`.
    pub sha256: String,
}

/// `true` for a path whose last segment is `scorecard*.json`.
pub fn is_scorecard(relative_path: &str) -> bool {
    let last = relative_path.rsplit('/').next().unwrap_or(relative_path);
    last.starts_with("scorecard") && last.ends_with(".json") && last.len() >= "scorecard.json".len()
}

/// Builds the manifest. `files` may list a file once per storage location (as
/// `MetadataStore::list_files` returns them); `events` may contain any retention events (only
/// `extended` ones are kept). Holds come from `package.holds`.
pub fn build(
    package: &Package,
    files: &[(File, StorageLocation)],
    events: &[RetentionEvent],
) -> Manifest {
    // Group locations by file id, sorted, so repeated rows and row order do not matter.
    let mut by_id: BTreeMap<&str, (&File, Vec<&StorageLocation>)> = BTreeMap::new();
    for (file, loc) in files {
        by_id
            .entry(file.id.as_str())
            .or_insert((file, Vec::new()))
            .1
            .push(loc);
    }
    let mut grouped: Vec<(&File, Vec<&StorageLocation>)> = by_id.into_values().collect();
    grouped.sort_by(|a, b| (&a.0.relative_path, &a.0.id).cmp(&(&b.0.relative_path, &b.0.id)));

    let file_values: Vec<Value> = grouped
        .iter_mut()
        .map(|(f, locs)| {
            locs.sort_by(|a, b| {
                (&a.backend_id, &a.object_key).cmp(&(&b.backend_id, &b.object_key))
            });
            locs.dedup();
            json!({
                "relative_path": f.relative_path,
                "media_type": f.media_type,
                "size_bytes": f.size_bytes,
                "sha256": f.sha256,
                "storage": locs.iter().map(|l| json!({
                    "backend_id": l.backend_id,
                    "object_key": l.object_key,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();

    let mut links = Map::new();
    for (role, path) in LINK_ROLES {
        if grouped.iter().any(|(f, _)| f.relative_path == path) {
            links.insert(role.to_string(), json!(path));
        }
    }
    let mut scorecards: Vec<&str> = grouped
        .iter()
        .map(|(f, _)| f.relative_path.as_str())
        .filter(|p| is_scorecard(p))
        .collect();
    scorecards.sort_unstable();
    if !scorecards.is_empty() {
        links.insert("scorecards".into(), json!(scorecards));
    }

    let mut extensions: Vec<&RetentionEvent> = events
        .iter()
        .filter(|e| e.event_type == RetentionEventType::Extended)
        .collect();
    extensions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut holds: Vec<&Hold> = package.holds.iter().collect();
    holds.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    let mut package_value = serde_json::to_value(package).expect("a package serializes");
    if let Value::Object(m) = &mut package_value {
        m.remove("deletion_eligible");
        // Same order rule for the copy of the holds inside `package`.
        m.insert("holds".into(), json!(holds));
    }

    let mut manifest = json!({
        "schema": SCHEMA,
        "package": package_value,
        "retention": {
            "class": package.retention_class,
            "expires_at": package.expires_at,
            "extensions": extensions,
            "holds": holds,
        },
        "files": file_values,
        "links": links,
        "source": { "metadata": package.metadata },
        "created_at": package.created_at,
        "finalized_at": package.finalized_at,
    });
    let sha256 = hex::encode(Sha256::digest(canonical::to_vec(&manifest)));
    manifest["manifest_sha256"] = json!(sha256);
    let bytes = canonical::to_vec(&manifest);
    Manifest {
        value: manifest,
        bytes,
        sha256,
    }
}

/// Recomputes the digest of a served manifest: `true` when `manifest_sha256` matches.
pub fn verify(manifest: &Value) -> bool {
    let Some(Value::String(claimed)) = manifest.get("manifest_sha256") else {
        return false;
    };
    let mut without = manifest.clone();
    if let Value::Object(m) = &mut without {
        m.remove("manifest_sha256");
    }
    hex::encode(Sha256::digest(canonical::to_vec(&without))) == *claimed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PackageStatus, RetentionClass};
    use crate::time;

    fn ts(s: &str) -> crate::model::Timestamp {
        time::parse(s).unwrap()
    }

    fn package() -> Package {
        Package {
            id: "p1".into(),
            name: "guide".into(),
            producer: "ci".into(),
            subject: "s".into(),
            retention_class: RetentionClass::RawEvidence,
            status: PackageStatus::Finalized,
            created_at: ts("2026-11-28T12:00:00Z"),
            finalized_at: Some(ts("2026-11-28T12:05:00Z")),
            expires_at: Some(ts("2027-02-26T12:00:00Z")),
            metadata: serde_json::from_value(json!({"run_id": "42"})).unwrap(),
            file_count: 2,
            total_bytes: 3,
            holds: vec![],
            deletion_eligible: true,
        }
    }

    fn file(id: &str, path: &str) -> (File, StorageLocation) {
        let sha = format!("{:0>64}", id);
        (
            File {
                id: id.into(),
                package_id: "p1".into(),
                relative_path: path.into(),
                media_type: "application/json".into(),
                size_bytes: 1,
                sha256: sha.clone(),
                created_at: ts("2026-11-28T12:01:00Z"),
            },
            StorageLocation {
                backend_id: "kv".into(),
                object_key: crate::content::object_key("", &sha),
            },
        )
    }

    #[test]
    fn shape_links_and_digest() {
        let files = vec![
            file("2", "reports/report.md"),
            file("1", "run.json"),
            file("3", "a/b/scorecard-x.json"),
            file("4", "scorecard.json"),
            file("5", "notscorecard.json"),
            file("6", "scorecards/readme.json"),
        ];
        let m = build(&package(), &files, &[]);
        let v = &m.value;
        assert_eq!(v["schema"], SCHEMA);
        assert!(v["package"].get("deletion_eligible").is_none());
        assert_eq!(v["package"]["id"], "p1");
        assert_eq!(v["retention"]["class"], "raw-evidence");
        assert_eq!(v["retention"]["expires_at"], "2027-02-26T12:00:00Z");
        assert_eq!(v["created_at"], "2026-11-28T12:00:00Z");
        assert_eq!(v["finalized_at"], "2026-11-28T12:05:00Z");
        assert_eq!(v["source"]["metadata"]["run_id"], "42");
        let paths: Vec<&str> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["relative_path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "a/b/scorecard-x.json",
                "notscorecard.json",
                "reports/report.md",
                "run.json",
                "scorecard.json",
                "scorecards/readme.json"
            ]
        );
        assert_eq!(v["files"][3]["storage"][0]["backend_id"], "kv");
        assert_eq!(
            v["links"],
            json!({"run": "run.json", "report": "reports/report.md", "scorecards": ["a/b/scorecard-x.json", "scorecard.json"]})
        );
        assert_eq!(v["manifest_sha256"], m.sha256);
        assert_eq!(serde_json::from_slice::<Value>(&m.bytes).unwrap(), *v);
        assert!(verify(v));
        let mut tampered = v.clone();
        tampered["files"][0]["size_bytes"] = json!(2);
        assert!(!verify(&tampered));
    }

    #[test]
    fn empty_links_and_only_extensions() {
        let ev = |id: &str, t: RetentionEventType| RetentionEvent {
            id: id.into(),
            package_id: "p1".into(),
            event_type: t,
            reason: "r".into(),
            created_by: "op".into(),
            created_at: ts("2026-11-29T00:00:00Z"),
            previous_expires_at: None,
            new_expires_at: None,
        };
        let events = [
            ev("e2", RetentionEventType::Extended),
            ev("e1", RetentionEventType::DefaultRuleApplied),
            ev("e0", RetentionEventType::Extended),
        ];
        let m = build(&package(), &[], &events);
        assert_eq!(m.value["links"], json!({}));
        let ids: Vec<&str> = m.value["retention"]["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["e0", "e2"]);
    }

    #[test]
    fn the_clock_does_not_change_the_digest() {
        let mut p = package();
        let a = build(&p, &[file("1", "run.json")], &[]);
        p.deletion_eligible = false;
        let b = build(&p, &[file("1", "run.json")], &[]);
        assert_eq!(a.bytes, b.bytes);
    }
}
