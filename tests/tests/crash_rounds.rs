//! Crash rounds, black box: the host is killed (`SIGKILL`) while 50 uploads are in flight,
//! restarted, and swept. Nothing committed may be lost, nothing half-written may show, and
//! no byte may be left that no file references.
//!
//! Each round uploads 50 files at once into a fresh package: mixed sizes (1 KiB to 6 MiB,
//! the largest over the 5 MiB multipart threshold), every other one with a declared digest
//! (the S3 fast path) and some sharing bytes (dedupe). The kill lands at a seeded moment
//! between 20 ms and 1.5 s in. After the restart and a sweep (`orphan_grace_seconds` 0):
//! - every upload that answered 201 is in the package, and every file the package has
//!   (finalized: its manifest) holds exactly the bytes sent for its path, and downloads;
//! - the audit chain verifies;
//! - the backend holds exactly the live files' bytes: on S3 one object per distinct
//!   digest, no staging key, no open multipart upload; in kv the chunk bytes of the
//!   distinct digests and nothing else.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{
    Bytes, Config, TestApp, content_key, id, pseudo_random, read_json, s3, s3_env, sha256_hex,
    start,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ROUNDS: u64 = 10;
const UPLOADS: u64 = 50;
const MIB: usize = 1024 * 1024;

/// The bytes of upload `i` of `round`: sizes cycle through small, medium and multipart;
/// every seventh upload repeats the round's shared bytes.
fn body(round: u64, i: u64) -> Vec<u8> {
    if i % 7 == 3 {
        return pseudo_random(round * 1000 + 999, 200 * 1024);
    }
    let size = match i % 5 {
        0 => 1024,
        1 => 64 * 1024 + 7,
        2 => MIB + 3,
        3 => 3 * MIB,
        _ => 6 * MIB + 1,
    };
    pseudo_random(round * 1000 + i, size)
}

/// A seeded moment in [20 ms, 1.5 s).
fn kill_after(round: u64) -> Duration {
    let x = (round + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(20 + (x >> 33) % 1480)
}

/// Uploads `bytes` as `f<i>.bin`; `None` when no answer came (the kill cut it off).
async fn upload(
    http: reqwest::Client,
    url: String,
    token: String,
    i: u64,
    bytes: Vec<u8>,
) -> Option<u16> {
    let mut req = http.put(url).bearer_auth(token);
    if i.is_multiple_of(2) {
        req = req.header("x-artifact-sha256", sha256_hex(&bytes));
    }
    let r = req.body(bytes).send().await.ok()?;
    Some(read_json(r).await.ok()?.0)
}

pub async fn killed_mid_upload_loses_and_leaks_nothing(cfg: Config) -> Result<()> {
    let s3 = cfg.bytes == Bytes::S3;
    let mut app = start!(
        cfg.var("orphan_grace_seconds", "0")
            .var("s3_multipart_threshold", "5242880")
            .var("s3_part_size", "5242880")
    );
    let p = app.tokens.producer.clone();
    // Digest -> size of every live file, over all rounds.
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    let mut kills_mid_way = 0;
    for round in 0..ROUNDS {
        let pid = id(&app
            .create_package(&format!("crash-{round}"), "raw-evidence")
            .await?);
        let sent: BTreeMap<String, Vec<u8>> = (0..UPLOADS)
            .map(|i| (format!("f{i}.bin"), body(round, i)))
            .collect();
        let uploads: Vec<_> = (0..UPLOADS)
            .map(|i| {
                let path = format!("f{i}.bin");
                tokio::spawn(upload(
                    app.http.clone(),
                    app.url(&format!("/packages/{pid}/files/{path}")),
                    p.clone(),
                    i,
                    sent[&path].clone(),
                ))
            })
            .collect();
        tokio::time::sleep(kill_after(round)).await;
        if uploads.iter().any(|u| !u.is_finished()) {
            kills_mid_way += 1;
        }
        app.kill();
        let mut answers = Vec::new();
        for u in uploads {
            answers.push(u.await?);
        }
        app.spawn().await.context("restart")?;
        // Pending uploads are stale once `orphan_grace_seconds` (0) passed, to the second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..3 {
            app.sweep().await.context("sweep")?;
        }

        let (s, fin) = app
            .post_json(
                &p,
                &format!("/packages/{pid}/finalize"),
                &serde_json::json!({}),
            )
            .await?;
        ensure!(
            s == 200,
            "round {round}: finalize after the crash: {s} {fin}"
        );
        let (s, manifest) = app
            .get_json(&p, &format!("/packages/{pid}/manifest"))
            .await?;
        ensure!(s == 200, "round {round}: manifest: {s} {manifest}");
        let files = manifest["files"].as_array().context("manifest files")?;
        let listed: BTreeMap<String, &Value> = files
            .iter()
            .map(|f| {
                (
                    f["relative_path"].as_str().unwrap_or_default().to_string(),
                    f,
                )
            })
            .collect();
        for (i, answer) in answers.iter().enumerate() {
            if *answer == Some(201) {
                ensure!(
                    listed.contains_key(&format!("f{i}.bin")),
                    "round {round}: f{i}.bin answered 201 but is not in the package"
                );
            }
        }
        for (path, f) in &listed {
            let bytes = sent.get(path).context("a file nobody uploaded")?;
            ensure!(
                f["sha256"] == sha256_hex(bytes) && f["size_bytes"] == bytes.len() as u64,
                "round {round}: {path} is not the bytes sent for it: {f}"
            );
            live.insert(sha256_hex(bytes), bytes.len() as u64);
        }
        // Every committed file downloads intact (ids from the upload events).
        let (s, events) = app
            .get_json(
                &app.tokens.operator,
                &format!("/audit?package_id={pid}&event_type=file_uploaded&limit=1000"),
            )
            .await?;
        ensure!(s == 200, "audit: {s} {events}");
        let events = events["items"].as_array().context("items")?;
        ensure!(
            events.len() == listed.len(),
            "round {round}: {} upload events for {} files",
            events.len(),
            listed.len()
        );
        for e in events {
            let file_id = e["file_id"].as_str().context("file_id")?;
            let (s, got) = app.download(&p, file_id).await.with_context(|| {
                format!(
                    "round {round}: downloading {e}\nstate {:?}",
                    app.blobs_path()
                )
            })?;
            let digest = sha256_hex(&got);
            ensure!(
                s == 200 && files.iter().any(|f| f["sha256"] == digest),
                "round {round}: file {file_id} downloads {s} with other bytes"
            );
        }
        ensure!(
            app.verify_audit().await?["valid"] == true,
            "round {round}: audit chain"
        );
        if s3 {
            check_bucket(&app, &live)?;
        } else {
            check_kv(&app, &live)?;
        }
    }
    eprintln!("{ROUNDS} rounds, {kills_mid_way} killed with uploads in flight");
    ensure!(
        kills_mid_way >= ROUNDS / 2,
        "most kills must land while uploads are in flight ({kills_mid_way} of {ROUNDS})"
    );
    Ok(())
}

/// The bucket holds one object per live digest, at its content address, and nothing else.
fn check_bucket(app: &TestApp, live: &BTreeMap<String, u64>) -> Result<()> {
    let env = s3_env()?.context("s3")?;
    let prefix = app.s3_prefix.clone().context("s3 prefix")?;
    let keys: BTreeSet<String> = s3::list_keys(&env, &prefix)?.into_iter().collect();
    let expected: BTreeSet<String> = live.keys().map(|d| content_key(&prefix, d)).collect();
    ensure!(
        keys == expected,
        "bucket holds exactly the live objects: extra {:?}, missing {:?}",
        keys.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&keys).collect::<Vec<_>>()
    );
    let open = s3::list_multipart_uploads(&env, &prefix)?;
    ensure!(open.is_empty(), "no multipart upload left open: {open:?}");
    Ok(())
}

/// The key-value store holds the live objects (their metadata entries, and the forwarding
/// entry of each promoted one) and exactly their bytes.
fn check_kv(app: &TestApp, live: &BTreeMap<String, u64>) -> Result<()> {
    let conn = rusqlite::Connection::open(app.blobs_path())?;
    let mut stmt = conn.prepare(
        "SELECT key, value FROM spin_key_value WHERE store = 'blobs' AND key NOT LIKE '%/c/%'",
    )?;
    let entries: BTreeMap<String, Value> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .map(|row| {
            let (key, value) = row?;
            Ok((key, serde_json::from_slice(&value)?))
        })
        .collect::<Result<_>>()?;
    let expected: BTreeSet<String> = live.keys().map(|d| content_key("", d)).collect();
    let objects: BTreeSet<String> = entries
        .keys()
        .filter(|k| k.starts_with("sha256/"))
        .cloned()
        .collect();
    ensure!(
        objects == expected,
        "kv holds exactly the live objects: extra {:?}, missing {:?}",
        objects.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&objects).collect::<Vec<_>>()
    );
    for (key, entry) in &entries {
        if objects.contains(key) {
            continue;
        }
        let target = entry["moved_to"].as_str().unwrap_or_default();
        ensure!(
            entries
                .get(target)
                .is_some_and(|t| t["chunks_at"] == key.as_str()),
            "kv entry {key} is neither a live object nor the forwarding entry of one: {entry}"
        );
    }
    let held = app.kv_chunk_bytes()?;
    let referenced: u64 = live.values().sum();
    ensure!(
        held == referenced,
        "kv chunk bytes {held} = the live objects' {referenced}"
    );
    Ok(())
}

mod scenarios {
    pub use super::*;
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness); [
    killed_mid_upload_loses_and_leaks_nothing,
]);
