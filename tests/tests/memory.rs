//! Bytes stream: a 1 GiB upload and download through the harness keep its memory flat.
//!
//! Measured on the harness process (VmHWM, its peak resident set) around the transfer, so
//! the test client's own buffers do not count. The file is generated on the fly.

use anyhow::{Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, TestApp, id};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;
/// Peak growth allowed while moving 1 GiB: a few buffers and parts, not the file.
const MAX_GROWTH_KIB: u64 = 96 * 1024;

/// 1 GiB of deterministic bytes as a stream, and its sha256.
fn gib_stream() -> (reqwest::Body, String) {
    let chunk = artifact_store_tests::pseudo_random(42, CHUNK);
    let n = (GIB as usize) / CHUNK;
    let mut h = Sha256::new();
    for _ in 0..n {
        h.update(&chunk);
    }
    let digest = hex::encode(h.finalize());
    let stream = futures::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    (reqwest::Body::wrap_stream(stream), digest)
}

/// Uploads and downloads 1 GiB, the digest declared or not (on S3: the fast path, or the
/// staged multipart path that hashes in the component with two parts in flight).
async fn one_gib_round_trip(cfg: Config, declare_digest: bool) -> Result<()> {
    let Some(app) = TestApp::start(cfg).await? else {
        return Ok(());
    };
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("big", "transient").await?);
    // Warm up: one small upload and download so lazily-allocated pools exist.
    let (s, f) = app
        .put_file(&p, &pid, "warm.bin", vec![7u8; 4 * CHUNK])
        .await?;
    ensure!(s == 201);
    let _ = app.download(&p, &id(&f)).await?;
    app.reset_peak_rss()?;
    let before = app.rss_kib().unwrap_or(0);

    let (body, digest) = gib_stream();
    let mut put = app
        .req(
            reqwest::Method::PUT,
            Some(&p),
            &format!("/packages/{pid}/files/big.bin"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", GIB.to_string());
    if declare_digest {
        put = put.header("x-artifact-sha256", &digest);
    }
    let r = put.body(body).send().await?;
    let (s, file) = artifact_store_tests::read_json(r).await?;
    ensure!(s == 201, "upload: {s} {file}\n{}", app.log_tail());
    ensure!(file["sha256"] == digest.as_str(), "{file}");
    let after_upload = app.peak_rss_kib().unwrap_or(0);

    let r = app
        .req(
            reqwest::Method::GET,
            Some(&p),
            &format!("/files/{}/download", id(&file)),
        )
        .send()
        .await?;
    ensure!(r.status() == 200);
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    ensure!(
        n == GIB && hex::encode(h.finalize()) == digest,
        "downloaded bytes"
    );
    let after_download = app.peak_rss_kib().unwrap_or(0);
    let growth = after_download.saturating_sub(before);
    eprintln!(
        "MEASURED {:?}/{:?} (digest declared: {declare_digest}): harness RSS before {} MiB, peak after 1 GiB upload {} MiB, after download {} MiB, growth {} MiB",
        app.config.metadata,
        app.config.bytes,
        before / 1024,
        after_upload / 1024,
        after_download / 1024,
        growth / 1024
    );
    ensure!(before > 0, "RSS readable");
    ensure!(
        growth < MAX_GROWTH_KIB,
        "harness memory grew {growth} KiB moving 1 GiB"
    );
    Ok(())
}

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_through_kv_keeps_memory_flat() {
    check(one_gib_round_trip(Config::new(Metadata::Sqlite, Bytes::Kv), true).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_through_s3_fast_path_keeps_memory_flat() {
    check(one_gib_round_trip(Config::new(Metadata::Sqlite, Bytes::S3), true).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_through_s3_multipart_keeps_memory_flat() {
    check(one_gib_round_trip(Config::new(Metadata::Sqlite, Bytes::S3), false).await)
}
