//! Dedupe against deletion, black box: a 201 must always name bytes that exist.
//!
//! Each round races one sweep, which deletes an expired package holding bytes B, against 8
//! concurrent uploads of the same B into another package (so every upload's dedupe decision
//! meets the deletion). Whatever the interleaving, an upload answers 201 only for a file
//! that then downloads intact; 503 ("being deleted, retry") is an allowed answer.

use anyhow::{Result, ensure};
use artifact_store_tests::{Config, TestApp, id, pseudo_random, sha256_hex, start};
use std::time::Duration;

const ROUNDS: u64 = 50;
const UPLOADS: usize = 8;
const SIZE: usize = 256 * 1024;

pub async fn sweep_never_deletes_what_a_201_names(cfg: Config) -> Result<()> {
    // Transient packages expire after 1 s; a sweep takes one package at a time, oldest
    // first, so round i's sweep deletes exactly round i's expired package.
    let app = start!(
        cfg.var("retention_transient_seconds", "1")
            .var("sweep_batch_size", "1")
    );
    let p = app.tokens.producer.clone();
    let mut expired = Vec::new();
    for round in 0..ROUNDS {
        let pid = id(&app
            .create_package(&format!("old-{round}"), "transient")
            .await?);
        let (s, f) = app
            .put_file(&p, &pid, "b.bin", pseudo_random(1000 + round, SIZE))
            .await?;
        ensure!(s == 201, "seed upload: {s} {f}");
        ensure!(app.finalize(&p, &pid).await?.0 == 200);
        expired.push(pid);
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut created, mut retry) = (0usize, 0usize);
    for round in 0..ROUNDS {
        let bytes = pseudo_random(1000 + round, SIZE);
        let target = id(&app
            .create_package(&format!("new-{round}"), "raw-evidence")
            .await?);
        let sweep = {
            let (http, url, token) = (
                app.http.clone(),
                app.url("/admin/sweeps"),
                app.tokens.operator.clone(),
            );
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&serde_json::json!({}))
                    .send()
                    .await
            })
        };
        let uploads: Vec<_> = (0..UPLOADS)
            .map(|i| upload(&app, &p, &target, format!("copy-{i}.bin"), bytes.clone()))
            .collect();
        let answers = futures::future::join_all(uploads).await;
        let swept = sweep.await??;
        ensure!(swept.status() == 200, "sweep: {}", swept.status());
        for answer in answers {
            let (status, body) = answer?;
            match status {
                201 => {
                    created += 1;
                    let (s, got) = app.download(&p, &id(&body)).await?;
                    ensure!(
                        s == 200 && sha256_hex(&got) == sha256_hex(&bytes),
                        "round {round}: upload answered 201 but the download is {s} \
                         ({} bytes): {body}\n{}",
                        got.len(),
                        app.log_tail()
                    );
                }
                503 => retry += 1,
                other => anyhow::bail!("round {round}: upload answered {other}: {body}"),
            }
        }
        let (_, old) = app
            .get_json(
                &app.tokens.operator,
                &format!("/packages/{}", expired[round as usize]),
            )
            .await?;
        ensure!(
            old["status"] == "deleted",
            "round {round}: the sweep deleted {old}"
        );
    }
    eprintln!("{ROUNDS} rounds: {created} uploads answered 201, {retry} answered 503");
    ensure!(created > 0, "no upload succeeded");
    ensure!(app.verify_audit().await?["valid"] == true);
    Ok(())
}

async fn upload(
    app: &TestApp,
    token: &str,
    package: &str,
    path: String,
    bytes: Vec<u8>,
) -> Result<(u16, serde_json::Value)> {
    app.put_file(token, package, &path, bytes).await
}

mod scenarios {
    pub use super::*;
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness); [
    sweep_never_deletes_what_a_201_names,
]);
