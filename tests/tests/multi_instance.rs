//! A shared deployment: two harness processes on one PostgreSQL database and one S3 bucket,
//! 200 concurrent operations spread across both, then every invariant checked.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, PRODUCER, TestApp, id, pseudo_random};
use futures::future::join_all;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

async fn shared_deployment(bytes: Bytes) -> Result<()> {
    let cfg = Config::new(Metadata::Postgres, bytes)
        .var("retention_transient_seconds", "3")
        .var("sweep_batch_size", "7");
    let Some(a) = TestApp::start(cfg).await? else {
        return Ok(());
    };
    let b = a.sibling().await?;
    let apps = [&a, &b];
    let p = a.tokens.producer.clone();
    let op = a.tokens.operator.clone();

    // 48 creates, alternating instances (half transient, half raw-evidence).
    let creates = (0..48).map(|i| {
        let app = apps[i % 2];
        let class = if i % 2 == 0 {
            "transient"
        } else {
            "raw-evidence"
        };
        let p = p.clone();
        async move {
            app.create_package_as(
                &p,
                PRODUCER,
                &format!("shared-{i}"),
                class,
                json!({"i": i.to_string()}),
            )
            .await
        }
    });
    let pkgs: Vec<Value> = join_all(creates).await.into_iter().collect::<Result<_>>()?;
    let pids: Vec<String> = pkgs.iter().map(id).collect();

    // 96 uploads, 48 finalizes and 12 holds, all at once, across both instances. Uploads and
    // finalizes of a package race each other on purpose.
    type Op<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;
    let mut uploads: Vec<Op<(String, Option<String>)>> = Vec::new();
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    // The held packages get the shared bytes before the race, so live files always share
    // bytes with the packages the sweeps delete (whoever wins the races below).
    let mut early: Vec<(String, Option<String>)> = Vec::new();
    for (i, pid) in pids.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
        let bytes = pseudo_random(1, 50_000);
        let file = format!("{pid}/f0.bin");
        sent.insert(file.clone(), bytes.clone());
        early.push((file, app_put(apps[i % 2], &p, pid, "f0.bin", bytes).await?));
    }
    for (i, pid) in pids.iter().enumerate() {
        for k in 0..2 {
            if k == 0 && i % 4 == 0 {
                continue; // uploaded above
            }
            let app = apps[(i + k) % 2];
            let p = p.clone();
            // The first file of every transient package has the same bytes: half of those
            // packages are held (they keep the bytes), the other half expire, so the sweeps
            // below delete packages whose bytes live packages share, racing dedupe.
            let bytes = if k == 0 && i % 2 == 0 {
                pseudo_random(1, 50_000)
            } else {
                pseudo_random((i * 2 + k) as u64 + 10, 50_000)
            };
            let path = format!("f{k}.bin");
            sent.insert(format!("{pid}/{path}"), bytes.clone());
            uploads.push(Box::pin(async move {
                let file_id = app_put(app, &p, pid, &path, bytes).await?;
                Ok((format!("{pid}/{path}"), file_id))
            }));
        }
    }
    let mut rest: Vec<Op<()>> = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        let app = apps[(i + 1) % 2];
        rest.push(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis((i % 5) as u64 * 20)).await;
            let (s, v) = app.finalize(&app.tokens.producer, pid).await?;
            ensure!(s == 200, "finalize {pid}: {s} {v}");
            Ok(())
        }));
        if i % 4 == 0 {
            let op = op.clone();
            rest.push(Box::pin(async move {
                let (s, v) = app
                    .post_json(
                        &op,
                        &format!("/packages/{pid}/retention/holds"),
                        &json!({"reason": "race"}),
                    )
                    .await?;
                ensure!(s == 201, "hold {pid}: {s} {v}");
                Ok(())
            }));
        }
    }
    let (uploads, rest) = futures::join!(join_all(uploads), join_all(rest));
    for r in rest {
        r?;
    }
    // `pid/path` -> (file id, bytes) of every upload that answered 201.
    let mut committed: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    for r in uploads.into_iter().chain(early.into_iter().map(Ok)) {
        if let (file, Some(file_id)) = r? {
            let bytes = sent[&file].clone();
            committed.insert(file, (file_id, bytes));
        }
    }
    ensure!(!committed.is_empty(), "some uploads beat their finalize");
    // The race below is only a race if some package the sweeps delete (transient, not held:
    // `i % 4 == 2`) committed the shared bytes too (its `f0.bin` beat its finalize).
    let expiring_shared = pids
        .iter()
        .enumerate()
        .filter(|(i, pid)| i % 4 == 2 && committed.contains_key(&format!("{pid}/f0.bin")))
        .count();
    ensure!(
        expiring_shared > 0,
        "some expiring package stored the shared bytes (else dedupe never meets deletion)"
    );

    // Two sweeps racing on the two instances, after the transient packages expired.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for _ in 0..4 {
        let (ra, rb) = futures::join!(a.sweep(), b.sweep());
        let (ra, rb) = (ra?, rb?);
        if ra["deleted"] == 0 && rb["deleted"] == 0 && ra["examined"] == 0 && rb["examined"] == 0 {
            break;
        }
    }

    // Invariants.
    for app in apps {
        let v = app.verify_audit().await?;
        ensure!(v["valid"] == true, "one unbroken audit chain: {v}");
    }
    for (i, pid) in pids.iter().enumerate() {
        let (s, pkg) = a.get_json(&op, &format!("/packages/{pid}")).await?;
        ensure!(s == 200);
        let types = a.audit_types(pid).await?;
        let uploaded = types.iter().filter(|t| *t == "file_uploaded").count() as u64;
        ensure!(
            pkg["file_count"].as_u64() == Some(uploaded),
            "no lost audit event: {pkg} {types:?}"
        );
        let fin = types
            .iter()
            .position(|t| t == "package_finalized")
            .context("finalized")?;
        ensure!(
            !types[fin..].iter().any(|t| t == "file_uploaded"),
            "no file committed to a finalized package: {types:?}"
        );
        let deleted = types.iter().filter(|t| *t == "deletion_completed").count();
        ensure!(deleted <= 1, "never deleted twice: {types:?}");
        let held = i % 4 == 0;
        let transient = i % 2 == 0;
        let want = if transient && !held {
            "deleted"
        } else {
            "finalized"
        };
        ensure!(
            pkg["status"] == want,
            "package {i} ({pid}) is {want}: {pkg}"
        );
    }
    // Dedupe survived the races: every live file downloads its own bytes, the shared ones
    // included, and the manifest lists exactly the committed files.
    let mut live_shared = 0;
    for pid in &pids {
        let (_, pkg) = a.get_json(&op, &format!("/packages/{pid}")).await?;
        if pkg["status"] != "finalized" {
            continue;
        }
        let (s, m) = a
            .get_json(&op, &format!("/packages/{pid}/manifest"))
            .await?;
        ensure!(s == 200, "manifest {pid}: {s} {m}");
        let files = m["files"].as_array().context("files")?;
        let mut listed: Vec<String> = Vec::new();
        for f in files {
            let path = f["relative_path"].as_str().context("path")?;
            listed.push(format!("{pid}/{path}"));
        }
        let mut want: Vec<String> = committed
            .keys()
            .filter(|k| k.starts_with(&format!("{pid}/")))
            .cloned()
            .collect();
        listed.sort();
        want.sort();
        ensure!(
            listed == want,
            "manifest of {pid} lists the committed files"
        );
        for file in &want {
            let (file_id, bytes) = &committed[file];
            let (s, got) = b.download(&op, file_id).await?;
            ensure!(s == 200, "download {file}: {s}");
            ensure!(&got == bytes, "{file} downloads its own bytes");
            live_shared += usize::from(got == pseudo_random(1, 50_000));
        }
    }
    ensure!(
        live_shared > 0,
        "some live file shares bytes with a deleted package"
    );
    Ok(())
}

/// An upload racing its package's finalize: 201 (the file's id), or 409
/// `package_finalized` (`None`); nothing else.
async fn app_put(
    app: &TestApp,
    token: &str,
    pid: &str,
    path: &str,
    bytes: Vec<u8>,
) -> Result<Option<String>> {
    let (s, v) = app.put_file(token, pid, path, bytes).await?;
    match s {
        201 => Ok(Some(id(&v))),
        409 if v["code"] == "package_finalized" => Ok(None),
        _ => anyhow::bail!("upload {pid}/{path}: {s} {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_postgres_and_s3() {
    if let Err(e) = shared_deployment(Bytes::S3).await {
        panic!("{e:#}");
    }
}
