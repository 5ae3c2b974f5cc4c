//! The scrubber, black box: bytes changed or deleted directly in the kv store or the S3
//! bucket are found by `POST /admin/scrub` (and by a sweep), listed by `GET /admin/scrub`,
//! recorded as `corruption_detected` (`source: scrub`), and the affected files' downloads
//! answer 409 `object_corrupt` before any byte. A check cut by its time budget resumes
//! where it stopped.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{
    Bytes, Config, TestApp, content_key, id, pseudo_random, s3, s3_env, sha256_hex, start,
};
use serde_json::{Value, json};

/// Deletes the stored object of `original`, without the app.
fn lose(app: &TestApp, original: &[u8]) -> Result<()> {
    let digest = sha256_hex(original);
    match app.config.bytes {
        Bytes::S3 => {
            let env = s3_env()?.context("s3")?;
            s3::delete_object(&env, &content_key(app.s3_prefix.as_ref().unwrap(), &digest))
        }
        Bytes::Kv => {
            let conn = rusqlite::Connection::open(app.blobs_path())?;
            let gone = conn.execute(
                "DELETE FROM spin_key_value WHERE store = 'blobs' AND key = ?1",
                [content_key("", &digest)],
            )?;
            ensure!(gone == 1, "the object's meta entry");
            Ok(())
        }
    }
}

async fn scrub_now(app: &TestApp) -> Result<Value> {
    let (s, v) = app
        .post_json(&app.tokens.operator, "/admin/scrub", &json!({}))
        .await?;
    ensure!(s == 200, "POST /admin/scrub: {s} {v}\n{}", app.log_tail());
    Ok(v)
}

async fn scrub_status(app: &TestApp) -> Result<Value> {
    let (s, v) = app.get_json(&app.tokens.operator, "/admin/scrub").await?;
    ensure!(s == 200, "GET /admin/scrub: {s} {v}\n{}", app.log_tail());
    Ok(v)
}

/// A download's status and problem `code` (for a problem+json answer).
async fn download_code(app: &TestApp, file_id: &str, query: &str) -> Result<(u16, Value)> {
    let r = app
        .req(
            reqwest::Method::GET,
            Some(&app.tokens.reader),
            &format!("/files/{file_id}/download{query}"),
        )
        .send()
        .await?;
    artifact_store_tests::read_json(r).await
}

async fn upload(app: &TestApp, pid: &str, path: &str, bytes: &[u8]) -> Result<String> {
    let (s, f) = app
        .put_file(&app.tokens.producer, pid, path, bytes.to_vec())
        .await?;
    ensure!(s == 201, "upload {path}: {s} {f}");
    Ok(id(&f))
}

fn finding<'a>(v: &'a Value, digest: &str) -> Result<&'a Value> {
    v["findings"]
        .as_array()
        .context("findings")?
        .iter()
        .find(|f| f["expected_sha256"] == digest)
        .with_context(|| format!("a finding for {digest} in {v}"))
}

pub async fn changed_and_missing_objects_are_found(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("scrubbed", "raw-evidence").await?);
    let good = pseudo_random(21, 300_000);
    let changed = pseudo_random(22, 2_500_000);
    let gone = pseudo_random(23, 40_000);
    let good_id = upload(&app, &pid, "good.bin", &good).await?;
    let changed_id = upload(&app, &pid, "changed.bin", &changed).await?;
    let gone_id = upload(&app, &pid, "gone.bin", &gone).await?;

    let before = scrub_status(&app).await?;
    ensure!(
        before["blobs_total"] == 3 && before["never_verified"] == 3,
        "{before}"
    );
    ensure!(before["findings"] == json!([]), "{before}");
    let (s, v) = app
        .post_json(&app.tokens.producer, "/admin/scrub", &json!({}))
        .await?;
    ensure!(s == 403, "operators only: {s} {v}");

    let mut flipped = changed.clone();
    flipped[2_100_000] ^= 0x01;
    app.tamper_stored(&changed, &flipped)?;
    lose(&app, &gone)?;

    let report = scrub_now(&app).await?;
    ensure!(
        report["examined"] == 3
            && report["verified"] == 1
            && report["corrupt"] == 1
            && report["missing"] == 1,
        "{report}"
    );

    let status = scrub_status(&app).await?;
    ensure!(
        status["corrupt"] == 2 && status["verified_once"] == 1,
        "{status}"
    );
    ensure!(status["oldest_verified_at"].is_string(), "{status}");
    let f = finding(&status, &sha256_hex(&changed))?;
    ensure!(f["found"] == sha256_hex(&flipped), "{f}");
    ensure!(
        f["files"]
            == json!([{"file_id": changed_id, "package_id": pid, "relative_path": "changed.bin"}]),
        "{f}"
    );
    let f = finding(&status, &sha256_hex(&gone))?;
    ensure!(f["found"] == "missing", "{f}");
    ensure!(f["files"][0]["file_id"] == gone_id.as_str(), "{f}");

    // One `corruption_detected` per affected file, from the scrubber.
    let events = app.audit_events(&pid, "corruption_detected").await?;
    ensure!(events.len() == 2, "{events:?}");
    for e in &events {
        ensure!(
            e["details"]["source"] == "scrub" && e["actor"] == "ops-team",
            "{e}"
        );
    }
    let e = events
        .iter()
        .find(|e| e["file_id"] == changed_id.as_str())
        .context("an event for the changed file")?;
    ensure!(
        e["details"]["expected_sha256"] == sha256_hex(&changed)
            && e["details"]["actual_sha256"] == sha256_hex(&flipped),
        "{e}"
    );

    // Downloads of the affected files answer 409 before any byte; the good one is served.
    for (file, query) in [
        (&changed_id, ""),
        (&gone_id, ""),
        (&changed_id, "?redirect=1"),
    ] {
        let got = download_code(&app, file, query).await?;
        artifact_store_tests::assert_problem(&got, 409, "object_corrupt");
    }
    let r = app
        .download_range(&app.tokens.reader, &changed_id, "bytes=0-9")
        .await?;
    ensure!(r.0 == 409, "a range of a corrupt file: {}", r.0);
    let (s, body) = app.download(&app.tokens.reader, &good_id).await?;
    ensure!(s == 200 && body == good, "the good file downloads");

    // A second slice reports nothing new.
    let again = scrub_now(&app).await?;
    ensure!(
        again["corrupt"] == 0 && again["missing"] == 0 && again["findings"] == json!([]),
        "{again}"
    );
    ensure!(app.audit_events(&pid, "corruption_detected").await?.len() == 2);
    let verified = app.verify_audit().await?;
    ensure!(verified["valid"] == true, "{verified}");
    Ok(())
}

pub async fn a_sweep_scrubs_too(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("swept", "raw-evidence").await?);
    let bytes = pseudo_random(31, 100_000);
    let file = upload(&app, &pid, "a.bin", &bytes).await?;
    let mut flipped = bytes.clone();
    flipped[10] ^= 0x80;
    app.tamper_stored(&bytes, &flipped)?;
    app.sweep().await?;
    let status = scrub_status(&app).await?;
    ensure!(status["corrupt"] == 1, "{status}");
    let events = app.audit_events(&pid, "corruption_detected").await?;
    ensure!(
        events.len() == 1 && events[0]["details"]["source"] == "scrub",
        "{events:?}"
    );
    let got = download_code(&app, &file, "").await?;
    artifact_store_tests::assert_problem(&got, 409, "object_corrupt");
    Ok(())
}

/// With no time budget each slice reads one 8 MiB piece and stores its digest state: a
/// 9 MB object takes two slices, the second reading only the rest, and a change in the
/// rest made between the two is found.
pub async fn a_budget_cut_check_resumes(cfg: Config) -> Result<()> {
    let app = start!(cfg.var("verify_budget_ms", "0"));
    let pid = id(&app.create_package("resumed", "raw-evidence").await?);
    let size = 9_000_000usize;
    let bytes = pseudo_random(41, size);
    let file = upload(&app, &pid, "big.bin", &bytes).await?;
    let first = scrub_now(&app).await?;
    let piece: u64 = 8 * 1024 * 1024;
    ensure!(
        first["unfinished"] == 1 && first["bytes_read"] == piece,
        "{first}"
    );
    let status = scrub_status(&app).await?;
    ensure!(status["in_progress"] == 1, "{status}");

    let mut flipped = bytes.clone();
    flipped[size - 5] ^= 0x01;
    app.tamper_stored(&bytes, &flipped)?;
    let second = scrub_now(&app).await?;
    ensure!(
        second["corrupt"] == 1 && second["bytes_read"] == size as u64 - piece,
        "the second slice reads only the rest and finds the change: {second}"
    );
    let got = download_code(&app, &file, "").await?;
    artifact_store_tests::assert_problem(&got, 409, "object_corrupt");
    Ok(())
}

mod scenarios {
    pub use super::*;
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness); [
    changed_and_missing_objects_are_found,
    a_sweep_scrubs_too,
    a_budget_cut_check_resumes,
]);
