//! Bytes that changed behind the app's back, on each backend and under each
//! `verify_downloads` mode: `true` hashes every full download in the component and breaks
//! the response off (recording `corruption_detected`); `false` serves the bytes as stored
//! (the client's `Repr-Digest` check catches them), but breaks off a response whose object
//! has the wrong length, in both modes.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, TestApp, id, pseudo_random, start};

const SIZE: usize = 2_000_000;

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

async fn corruption_events(app: &TestApp, pid: &str) -> Result<usize> {
    let types = app.audit_types(pid).await?;
    Ok(types.iter().filter(|t| *t == "corruption_detected").count())
}

/// Whether a `corruption_detected` beyond the first `before` appears within a few seconds
/// (the event is appended after the broken response is sent).
async fn corruption_recorded(app: &TestApp, pid: &str, before: usize) -> Result<bool> {
    for _ in 0..50 {
        if corruption_events(app, pid).await? > before {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(false)
}

async fn each_mode(bytes_backend: Bytes) -> Result<()> {
    for verify in [true, false] {
        let cfg = Config::new(Metadata::Sqlite, bytes_backend)
            .var("verify_downloads", verify.to_string());
        let app = start!(cfg);
        let p = app.tokens.producer.clone();
        let pid = id(&app.create_package("corrupt", "transient").await?);
        let bytes = pseudo_random(4 + verify as u64, SIZE);
        let (s, f) = app.put_file(&p, &pid, "c.bin", bytes.clone()).await?;
        ensure!(s == 201, "{f}");
        let mut flipped = bytes.clone();
        flipped[SIZE / 2] ^= 0xff;
        app.tamper_stored(&bytes, &flipped)?;

        let r = app
            .req(
                reqwest::Method::GET,
                Some(&app.tokens.reader),
                &format!("/files/{}/download", id(&f)),
            )
            .send()
            .await?;
        ensure!(r.status() == 200);
        let body = r.bytes().await;
        if verify {
            ensure!(body.is_err(), "verified: the response breaks off");
            ensure!(
                corruption_recorded(&app, &pid, 0).await?,
                "verified: corruption recorded"
            );
        } else {
            let body = body.context("unverified: the bytes are served")?;
            ensure!(body.as_ref() == flipped.as_slice());
            let types = app.audit_types(&pid).await?;
            ensure!(
                !types.iter().any(|t| t == "corruption_detected"),
                "{types:?}"
            );
        }

        // A shorter object breaks the response in both modes.
        let before = corruption_events(&app, &pid).await?;
        app.tamper_stored(&bytes, &bytes[..SIZE - 10])?;
        let (s, got) = match app.download(&app.tokens.reader, &id(&f)).await {
            Ok(r) => r,
            Err(_) => (200, Vec::new()),
        };
        ensure!(
            s == 200 && got != bytes,
            "verify_downloads={verify}: a short object is never served as complete"
        );
        ensure!(
            corruption_recorded(&app, &pid, before).await?,
            "verify_downloads={verify}: short object recorded"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_objects_on_s3() {
    check(each_mode(Bytes::S3).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_objects_on_kv() {
    check(each_mode(Bytes::Kv).await)
}
