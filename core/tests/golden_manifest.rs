//! One manifest pinned from the contract (`../shared/API-CONTRACT.md`, "Manifest"): the
//! shape in `fixtures/golden-manifest.json` was written out by hand from the contract, and
//! its `manifest_sha256` was computed apart from this crate, by Python:
//!
//! ```text
//! m = json.load(open("golden-manifest.json")); del m["manifest_sha256"]
//! sha256(json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
//! ```
//!
//! so neither the expected shape nor the expected digest comes from the code under test.

use artifact_store_core::manifest;
use artifact_store_core::model::{
    File, Hold, Package, PackageStatus, RetentionClass, RetentionEvent, RetentionEventType,
    StorageLocation,
};
use artifact_store_core::time;
use serde_json::{Value, json};

const GOLDEN: &str = include_str!("fixtures/golden-manifest.json");

fn ts(s: &str) -> artifact_store_core::model::Timestamp {
    time::parse(s).unwrap()
}

fn file(id: &str, path: &str, media_type: &str, size: u64, sha: &str) -> (File, StorageLocation) {
    (
        File {
            id: id.into(),
            package_id: "pkg-1".into(),
            relative_path: path.into(),
            media_type: media_type.into(),
            size_bytes: size,
            sha256: sha.into(),
            created_at: ts("2026-11-28T12:01:00Z"),
        },
        StorageLocation {
            backend_id: "s3".into(),
            object_key: format!("artifacts/sha256/{}/{}/{sha}", &sha[..2], &sha[2..4]),
        },
    )
}

#[test]
fn the_contract_manifest_and_its_independent_digest() {
    let hold = Hold {
        id: "hold-1".into(),
        package_id: "pkg-1".into(),
        reason: "incident 7 review".into(),
        created_by: "ops".into(),
        created_at: ts("2026-11-29T09:00:00Z"),
        released_at: None,
    };
    let package = Package {
        id: "pkg-1".into(),
        name: "guide-board-run-42".into(),
        producer: "guide-board".into(),
        subject: "release 1.4 — évidence".into(),
        retention_class: RetentionClass::ReleaseEvidence,
        status: PackageStatus::Finalized,
        created_at: ts("2026-11-28T12:00:00Z"),
        finalized_at: Some(ts("2026-11-28T12:05:00Z")),
        expires_at: Some(ts("2034-01-01T00:00:00Z")),
        metadata: serde_json::from_value(json!({"run_id": "42", "branch": "main"})).unwrap(),
        file_count: 3,
        total_bytes: 30,
        holds: vec![hold],
        deletion_eligible: false,
    };
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let files = vec![
        file("f-2", "reports/report.md", "text/markdown", 10, &b),
        file("f-1", "run.json", "application/json", 10, &a),
        file(
            "f-3",
            "reports/scorecards/scorecard-security.json",
            "application/json",
            10,
            &a,
        ),
    ];
    let extension = RetentionEvent {
        id: "ev-2".into(),
        package_id: "pkg-1".into(),
        event_type: RetentionEventType::Extended,
        reason: "audit request".into(),
        created_by: "ops".into(),
        created_at: ts("2026-11-29T10:00:00Z"),
        previous_expires_at: Some(ts("2033-11-28T12:00:00Z")),
        new_expires_at: Some(ts("2034-01-01T00:00:00Z")),
    };
    let applied = RetentionEvent {
        id: "ev-1".into(),
        event_type: RetentionEventType::DefaultRuleApplied,
        created_at: ts("2026-11-28T12:00:00Z"),
        previous_expires_at: None,
        new_expires_at: Some(ts("2033-11-28T12:00:00Z")),
        ..extension.clone()
    };
    let built = manifest::build(&package, &files, &[applied, extension]);

    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(
        built.value,
        golden,
        "built:\n{}",
        serde_json::to_string_pretty(&built.value).unwrap()
    );
    assert_eq!(
        built.sha256, "9c4734fb281d207d988f691e4debf52672b8a503e3c0c54102e4bb6db77fded1",
        "manifest_sha256 against Python's canonical JSON"
    );
    assert_eq!(golden["manifest_sha256"], built.sha256);
}
