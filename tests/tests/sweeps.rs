//! Retention sweeps, black box, with retention rules shortened to seconds through variables.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{Config, TestApp, id, pseudo_random, start};
use serde_json::json;
use std::time::Duration;

/// Transient packages live 2 s, open ones 3 s; everything else keeps its default.
fn short(cfg: Config) -> Config {
    cfg.var("retention_transient_seconds", "2")
        .var("open_package_ttl_seconds", "3")
}

pub async fn finalized_with_file(
    app: &TestApp,
    name: &str,
    class: &str,
    bytes: Vec<u8>,
) -> Result<(String, String)> {
    let p = &app.tokens.producer;
    let pid = id(&app.create_package(name, class).await?);
    let (s, f) = app.put_file(p, &pid, "data.bin", bytes).await?;
    ensure!(s == 201, "upload: {s} {f}");
    let (s, _) = app.finalize(p, &pid).await?;
    ensure!(s == 200);
    Ok((pid, id(&f)))
}

pub async fn status(app: &TestApp, pid: &str) -> Result<String> {
    let (s, v) = app
        .get_json(&app.tokens.operator, &format!("/packages/{pid}"))
        .await?;
    ensure!(s == 200, "package {pid}: {s} {v}");
    Ok(v["status"].as_str().unwrap_or_default().to_string())
}

pub async fn expired_packages_are_deleted(cfg: Config) -> Result<()> {
    let app = start!(short(cfg));
    let (pid, fid) =
        finalized_with_file(&app, "short", "transient", pseudo_random(1, 300_000)).await?;
    let (keep, keep_fid) =
        finalized_with_file(&app, "long", "raw-evidence", pseudo_random(2, 1000)).await?;
    let (perm, _) =
        finalized_with_file(&app, "perm", "permanent-record", pseudo_random(3, 1000)).await?;
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 0, "nothing expired yet: {report}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pkg = app
        .get_json(&app.tokens.operator, &format!("/packages/{pid}"))
        .await?
        .1;
    ensure!(
        pkg["deletion_eligible"] == true,
        "eligible once expired: {pkg}"
    );

    let report = app.sweep().await?;
    ensure!(report["deleted"] == 1 && report["failed"] == 0, "{report}");
    ensure!(report["examined"].as_u64().unwrap_or(0) >= 1, "{report}");
    ensure!(status(&app, &pid).await? == "deleted");
    ensure!(status(&app, &keep).await? == "finalized");
    ensure!(status(&app, &perm).await? == "finalized");

    // Bytes gone (410), metadata, manifest and audit trail kept.
    let (s, _) = app.download(&app.tokens.operator, &fid).await?;
    ensure!(s == 410, "download of a deleted package: {s}");
    if app.config.bytes == artifact_store_tests::Bytes::Kv {
        // Every chunk of the deleted object is gone (kv objects point at the chunks they
        // were staged in); the two kept 1000-byte objects remain.
        let left = app.kv_chunk_bytes()?;
        ensure!(left == 2000, "{left} chunk bytes left, want 2000");
    }
    let (s, _) = app.download(&app.tokens.operator, &keep_fid).await?;
    ensure!(s == 200);
    let (s, m) = app
        .get_json(&app.tokens.operator, &format!("/packages/{pid}/manifest"))
        .await?;
    ensure!(
        s == 200 && m["files"].as_array().map(Vec::len) == Some(1),
        "manifest kept: {s} {m}"
    );
    let types = app.audit_types(&pid).await?;
    for want in ["deletion_requested", "deletion_completed"] {
        ensure!(
            types.iter().filter(|t| *t == want).count() == 1,
            "{want} once in {types:?}"
        );
    }
    let (_, ev) = app
        .get_json(
            &app.tokens.operator,
            &format!("/packages/{pid}/retention/events"),
        )
        .await?;
    let ev = ev.get("items").unwrap_or(&ev).clone();
    let kinds: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    ensure!(
        kinds.contains(&"deletion_eligible") && kinds.contains(&"deleted"),
        "{kinds:?}"
    );
    // The sweep itself is audited.
    let (_, audit) = app
        .get_json(&app.tokens.operator, "/audit?event_type=sweep_completed")
        .await?;
    ensure!(
        !audit["items"].as_array().unwrap().is_empty(),
        "sweep recorded: {audit}"
    );
    ensure!(app.verify_audit().await?["valid"] == true);
    // A second sweep finds nothing more to do.
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 0, "{report}");
    Ok(())
}

pub async fn holds_stop_deletion_until_released(cfg: Config) -> Result<()> {
    let app = start!(short(cfg));
    let (pid, fid) = finalized_with_file(&app, "held", "transient", pseudo_random(4, 5000)).await?;
    let holds = format!("/packages/{pid}/retention/holds");
    let (s, h1) = app
        .post_json(&app.tokens.operator, &holds, &json!({"reason": "legal"}))
        .await?;
    ensure!(s == 201);
    let (s, h2) = app
        .post_json(&app.tokens.operator, &holds, &json!({"reason": "incident"}))
        .await?;
    ensure!(s == 201);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pkg = app
        .get_json(&app.tokens.operator, &format!("/packages/{pid}"))
        .await?
        .1;
    ensure!(
        pkg["deletion_eligible"] == false,
        "never eligible while held: {pkg}"
    );
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 0, "{report}");
    ensure!(status(&app, &pid).await? == "finalized");
    for h in [&h1, &h2] {
        let (s, _) = app
            .post_json(
                &app.tokens.operator,
                &format!("{holds}/{}/release", id(h)),
                &json!({"reason": "done"}),
            )
            .await?;
        ensure!(s == 200);
        if h == &h1 {
            let report = app.sweep().await?;
            ensure!(report["deleted"] == 0, "one hold still active: {report}");
        }
    }
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 1, "{report}");
    let (s, _) = app.download(&app.tokens.operator, &fid).await?;
    ensure!(s == 410);
    Ok(())
}

pub async fn extension_pushes_deletion_out(cfg: Config) -> Result<()> {
    let app = start!(short(cfg));
    let (pid, fid) =
        finalized_with_file(&app, "extended", "transient", pseudo_random(5, 5000)).await?;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, _) = app
        .post_json(
            &app.tokens.operator,
            &format!("/packages/{pid}/retention/extensions"),
            &json!({"new_expires_at": later, "reason": "investigation"}),
        )
        .await?;
    ensure!(s == 201);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 0, "{report}");
    let (s, _) = app.download(&app.tokens.operator, &fid).await?;
    ensure!(s == 200, "still there: {s}");
    Ok(())
}

pub async fn shared_object_survives(cfg: Config) -> Result<()> {
    let app = start!(short(cfg));
    let bytes = pseudo_random(6, 400_000);
    let (short_pid, _) = finalized_with_file(&app, "short", "transient", bytes.clone()).await?;
    let (_, long_fid) = finalized_with_file(&app, "long", "raw-evidence", bytes.clone()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 1, "{report}");
    ensure!(status(&app, &short_pid).await? == "deleted");
    let (s, got) = app.download(&app.tokens.operator, &long_fid).await?;
    ensure!(
        s == 200 && got == bytes,
        "the object another package references survives: {s}"
    );
    Ok(())
}

pub async fn abandoned_open_packages_are_swept(cfg: Config) -> Result<()> {
    let app = start!(short(cfg));
    let p = &app.tokens.producer;
    let pid = id(&app.create_package("abandoned", "raw-evidence").await?);
    let (s, f) = app
        .put_file(p, &pid, "half.bin", pseudo_random(7, 1000))
        .await?;
    ensure!(s == 201);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let report = app.sweep().await?;
    ensure!(report["deleted"] == 1, "{report}");
    ensure!(status(&app, &pid).await? == "deleted");
    let (s, _) = app.download(&app.tokens.operator, &id(&f)).await?;
    ensure!(s == 410);
    Ok(())
}

/// A sweeper killed mid-batch leaves a state the next sweep completes (once the dead
/// sweeper's claims expired), nothing lost or deleted twice.
pub async fn killed_sweeper_resumes(cfg: Config) -> Result<()> {
    // One batch of 30: a sweep long enough (30 deletions, each a few transactions) for a
    // kill to land inside it.
    let mut app = start!(
        short(cfg)
            .var("sweep_batch_size", "30")
            .var("sweep_lease_seconds", "2")
    );
    let mut pids = Vec::new();
    for i in 0..30 {
        let (pid, _) = finalized_with_file(
            &app,
            &format!("p{i}"),
            "transient",
            pseudo_random(100 + i, 20_000),
        )
        .await?;
        pids.push(pid);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Start a sweep and kill the host mid-batch: the claim turns all 30 `deleting` at once,
    // then they are deleted in claim (creation) order, so while the last one is still
    // `deleting` the batch is not done.
    let url = app.url("/admin/sweeps");
    let token = app.tokens.operator.clone();
    let http = app.http.clone();
    let inflight = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
    });
    let last = pids.last().context("packages")?.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match status(&app, &last).await?.as_str() {
            "deleting" => break,
            "deleted" => anyhow::bail!("the sweep finished before the kill"),
            _ => {}
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the sweep never claimed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.kill();
    let _ = inflight.await;
    app.spawn().await?;
    let mut interrupted: Vec<String> = Vec::new();
    for pid in &pids {
        if status(&app, pid).await? == "deleting" {
            interrupted.push(pid.clone());
        }
    }
    ensure!(
        !interrupted.is_empty(),
        "the kill landed mid-batch: some package is left `deleting`"
    );
    // The dead sweeper's claims expire; then sweeps finish the work.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..6 {
        let report = app.sweep().await?;
        if report["deleted"] == 0 && report["examined"] == 0 {
            break;
        }
    }
    for pid in &pids {
        ensure!(status(&app, pid).await? == "deleted", "{pid} deleted");
        let types = app.audit_types(pid).await?;
        let count = |t: &str| types.iter().filter(|x| *x == t).count();
        ensure!(
            count("deletion_completed") == 1 && count("deletion_requested") == 1,
            "{pid}: requested and completed exactly once, resumed or not: {types:?}"
        );
    }
    ensure!(app.verify_audit().await?["valid"] == true);
    Ok(())
}

/// The scheduled sweeper runs on its cron expression (under either host).
pub async fn cron_sweeper_fires(cfg: Config) -> Result<()> {
    let app = start!(short(cfg).cron("*/2 * * * * *"));
    let (pid, _) = finalized_with_file(&app, "cron", "transient", pseudo_random(9, 1000)).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if status(&app, &pid).await? == "deleted" {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "cron sweeper did not delete:\n{}",
            app.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, audit) = app
        .get_json(&app.tokens.operator, "/audit?event_type=sweep_completed")
        .await?;
    let first = audit["items"]
        .as_array()
        .and_then(|a| a.first())
        .context("sweep_completed")?;
    ensure!(
        first["actor"] != "ops-team",
        "recorded by the sweeper, not the operator: {first}"
    );
    Ok(())
}

/// The scenarios above, as the suite macro expects them.
mod scenarios {
    pub use super::*;
}

/// An open package past its class's retention but not abandoned is still receiving
/// uploads: a sweep keeps it (issue 12, item 1: the sweep used to delete it).
pub async fn open_packages_stay_until_abandoned(cfg: Config) -> Result<()> {
    let app = start!(
        cfg.var("retention_transient_seconds", "1")
            .var("open_package_ttl_seconds", "3600")
    );
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("busy", "transient").await?);
    let (s, f) = app
        .put_file(&p, &pid, "first.bin", pseudo_random(5, 1000))
        .await?;
    ensure!(s == 201, "{f}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
    ensure!(pkg["deletion_eligible"] == false, "{pkg}");
    let report = app.sweep().await?;
    ensure!(
        report["deleted"] == 0 && report["examined"] == 0,
        "{report}"
    );
    ensure!(status(&app, &pid).await? == "open");
    let (s, f2) = app
        .put_file(&p, &pid, "second.bin", pseudo_random(6, 1000))
        .await?;
    ensure!(s == 201, "still receiving uploads: {f2}");
    let (s, got) = app.download(&p, &id(&f)).await?;
    ensure!(s == 200 && got == pseudo_random(5, 1000));
    Ok(())
}

/// The newest audit event's `seq`.
async fn audit_head_seq(app: &TestApp) -> Result<u64> {
    let (s, v) = app.get_json(&app.tokens.operator, "/audit?limit=1").await?;
    ensure!(s == 200, "{s} {v}");
    v["items"][0]["seq"].as_u64().context("seq")
}

/// Package ids and reasons of one list of a sweep plan, sorted.
fn planned(plan: &serde_json::Value, list: &str) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = plan[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let field = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                    (field("package_id"), field("reason"))
                })
                .collect()
        })
        .unwrap_or_default();
    got.sort();
    got
}

/// A dry run (`POST ?dry_run=true`, or `GET`) says what a sweep would delete and why it
/// keeps the rest, changes nothing, and the sweep that follows deletes exactly that.
pub async fn dry_run_lists_what_a_sweep_would_do(cfg: Config) -> Result<()> {
    let app = start!(
        cfg.var("retention_transient_seconds", "2")
            .var("open_package_ttl_seconds", "3600")
    );
    let op = app.tokens.operator.clone();
    let (expired, _) =
        finalized_with_file(&app, "expired", "transient", pseudo_random(21, 1000)).await?;
    let (held, _) = finalized_with_file(&app, "held", "transient", pseudo_random(22, 1000)).await?;
    let (s, h) = app
        .post_json(
            &op,
            &format!("/packages/{held}/retention/holds"),
            &json!({"reason": "audit"}),
        )
        .await?;
    ensure!(s == 201, "{h}");
    let (young, _) =
        finalized_with_file(&app, "young", "raw-evidence", pseudo_random(23, 1000)).await?;
    let busy = id(&app.create_package("busy", "transient").await?);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let seq = audit_head_seq(&app).await?;
    let (s, plan) = app
        .post_json(&op, "/admin/sweeps?dry_run=true", &json!({}))
        .await?;
    ensure!(s == 200, "{s} {plan}");
    ensure!(plan["truncated"] == false, "{plan}");
    ensure!(
        planned(&plan, "would_delete") == vec![(expired.clone(), "expired".to_string())],
        "{plan}"
    );
    let mut kept = vec![
        (held.clone(), "held".to_string()),
        (busy.clone(), "not_abandoned".to_string()),
    ];
    kept.sort();
    ensure!(planned(&plan, "kept") == kept, "{plan}");
    ensure!(
        !plan.to_string().contains(&young),
        "not due for a look: {plan}"
    );
    let (s, got) = app.get_json(&op, "/admin/sweeps").await?;
    ensure!(s == 200, "{s} {got}");
    ensure!(
        planned(&got, "would_delete") == planned(&plan, "would_delete")
            && planned(&got, "kept") == planned(&plan, "kept"),
        "GET = dry run: {got}"
    );
    // Nothing changed: no status, no audit event.
    ensure!(status(&app, &expired).await? == "finalized");
    ensure!(
        audit_head_seq(&app).await? == seq,
        "a dry run writes nothing"
    );

    let (s, v) = app
        .post_json(&op, "/admin/sweeps?dry_run=yes", &json!({}))
        .await?;
    ensure!(s == 422 && v["code"] == "invalid_query", "{s} {v}");
    let (s, v) = app.get_json(&app.tokens.producer, "/admin/sweeps").await?;
    ensure!(s == 403, "operators only: {s} {v}");

    let report = app.sweep().await?;
    ensure!(report["deleted"] == 1 && report["held"] == 1, "{report}");
    ensure!(status(&app, &expired).await? == "deleted");
    for keep in [&held, &young] {
        ensure!(status(&app, keep).await? == "finalized");
    }
    ensure!(status(&app, &busy).await? == "open");
    Ok(())
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    sqlite_s3 => (Sqlite, S3, Harness),
    postgres_kv => (Postgres, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness),
    spin_sqlite_kv => (Sqlite, Kv, Spin); [
    expired_packages_are_deleted,
    holds_stop_deletion_until_released,
    extension_pushes_deletion_out,
    shared_object_survives,
    abandoned_open_packages_are_swept,
    open_packages_stay_until_abandoned,
    dry_run_lists_what_a_sweep_would_do,
    killed_sweeper_resumes,
    cron_sweeper_fires,
]);
