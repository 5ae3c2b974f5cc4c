//! Upload sessions, black box on both backends: a file sent as parts, each one request
//! (`POST /packages/{id}/uploads`, `PUT /uploads/{id}/parts/{n}`, `GET /uploads/{id}`,
//! `POST /uploads/{id}/complete`, `DELETE /uploads/{id}`), and the serverless profile: a
//! 1 GiB file through a host that takes 10 MiB and 30 s per request.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{
    Bytes, Config, TestApp, assert_problem, id, pseudo_random, read_json, s3, s3_env, sha256_hex,
    start,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// Starts a session for `size` bytes with digest `sha256` in 5 MiB parts.
async fn begin(
    app: &TestApp,
    pid: &str,
    path: &str,
    size: usize,
    sha256: &str,
) -> Result<(u16, Value)> {
    app.post_json(
        &app.tokens.producer,
        &format!("/packages/{pid}/uploads"),
        &json!({
            "relative_path": path,
            "size_bytes": size,
            "sha256": sha256,
            "media_type": "application/octet-stream",
            "part_size": 5 * MIB,
        }),
    )
    .await
}

async fn put_part(
    app: &TestApp,
    session: &str,
    n: u32,
    bytes: &[u8],
    declared: Option<&str>,
) -> Result<(u16, Value)> {
    let mut req = app
        .req(
            reqwest::Method::PUT,
            Some(&app.tokens.producer),
            &format!("/uploads/{session}/parts/{n}"),
        )
        .body(bytes.to_vec());
    if let Some(d) = declared {
        req = req.header("x-artifact-sha256", d);
    }
    read_json(req.send().await?).await
}

async fn complete(app: &TestApp, session: &str) -> Result<(u16, Value)> {
    app.post_json(
        &app.tokens.producer,
        &format!("/uploads/{session}/complete"),
        &json!({}),
    )
    .await
}

async fn show(app: &TestApp, session: &str) -> Result<(u16, Value)> {
    app.get_json(&app.tokens.producer, &format!("/uploads/{session}"))
        .await
}

/// Part `n` (1-based) of `bytes` cut in 5 MiB parts.
fn part(bytes: &[u8], n: u32) -> &[u8] {
    let start = (n as usize - 1) * 5 * MIB;
    &bytes[start..(start + 5 * MIB).min(bytes.len())]
}

/// Nothing of a session is left in the backend: no staging key, no multipart upload.
async fn no_staging_left(app: &TestApp, s3: bool) -> Result<()> {
    if s3 {
        let env = s3_env()?.context("s3")?;
        let prefix = app.s3_prefix.clone().context("s3 prefix")?;
        let staged = s3::list_keys(&env, &format!("{prefix}staging/"))?;
        ensure!(staged.is_empty(), "staging keys left: {staged:?}");
        let open = s3::list_multipart_uploads(&env, &prefix)?;
        ensure!(open.is_empty(), "multipart uploads left: {open:?}");
    } else {
        let conn = rusqlite::Connection::open(app.blobs_path())?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE store = 'blobs' AND key LIKE 'staging/%'",
            [],
            |r| r.get(0),
        )?;
        ensure!(n == 0, "{n} kv entries left under staging/");
    }
    Ok(())
}

pub async fn parts_in_order_make_the_file(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(1, 13 * MIB + 5);
    let digest = sha256_hex(&bytes);
    let (s, session) = begin(&app, &pid, "logs/big.bin", bytes.len(), &digest).await?;
    ensure!(s == 201, "begin: {s} {session}");
    let sid = session["id"].as_str().context("id")?.to_string();
    ensure!(
        session["part_count"] == 3 && session["part_size"] == 5 * MIB,
        "{session}"
    );
    let parts = session["parts"].as_array().context("parts")?;
    ensure!(
        parts.len() == 3
            && parts[2]["size_bytes"] == 3 * MIB + 5
            && parts[0]["url"] == format!("/uploads/{sid}/parts/1")
            && parts[0]["method"] == "PUT",
        "{session}"
    );
    for n in 1..=3 {
        // The second part's digest is declared, and checked.
        let declared = (n == 2).then(|| sha256_hex(part(&bytes, 2)));
        let (s, got) = put_part(&app, &sid, n, part(&bytes, n), declared.as_deref()).await?;
        ensure!(s == 200 && got["number"] == n, "part {n}: {s} {got}");
        if n == 2 {
            ensure!(got["sha256"] == sha256_hex(part(&bytes, 2)), "{got}");
        }
    }
    let (s, state) = show(&app, &sid).await?;
    ensure!(
        s == 200
            && state["missing"] == json!([])
            && state["received"].as_array().map(Vec::len) == Some(3),
        "{s} {state}"
    );
    let (s, file) = complete(&app, &sid).await?;
    ensure!(s == 201, "complete: {s} {file}");
    ensure!(
        file["sha256"] == digest.as_str()
            && file["size_bytes"] == bytes.len()
            && file["relative_path"] == "logs/big.bin",
        "{file}"
    );
    let (s, got) = app.download(&app.tokens.producer, &id(&file)).await?;
    ensure!(s == 200 && sha256_hex(&got) == digest, "download {s}");
    // The session is over; its id is unknown now.
    assert_problem(&show(&app, &sid).await?, 404, "not_found");
    // A path already taken is refused before any part moves.
    assert_problem(
        &begin(&app, &pid, "logs/big.bin", bytes.len(), &digest).await?,
        409,
        "duplicate_path",
    );
    let events = app.audit_events(&pid, "file_uploaded").await?;
    ensure!(events.len() == 1, "one upload event: {events:?}");
    Ok(())
}

/// Parts in any order and parts sent twice: `complete` verifies by reading back; a client
/// that lost its state resumes from `GET /uploads/{id}`.
pub async fn parts_out_of_order_resent_and_resumed(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(2, 16 * MIB);
    let digest = sha256_hex(&bytes);
    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &digest).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    for n in [4, 1, 3, 1] {
        let (s, got) = put_part(&app, &sid, n, part(&bytes, n), None).await?;
        ensure!(s == 200, "part {n}: {s} {got}");
    }
    // Completing early names what is missing.
    let (s, early) = complete(&app, &sid).await?;
    assert_problem(&(s, early.clone()), 409, "invalid_state");
    ensure!(
        early["detail"].as_str().unwrap_or("").contains('2'),
        "{early}"
    );
    // A client that crashed asks what is left, and sends it.
    let (_, state) = show(&app, &sid).await?;
    ensure!(state["missing"] == json!([2]), "{state}");
    put_part(&app, &sid, 2, part(&bytes, 2), None).await?;
    let (s, file) = complete(&app, &sid).await?;
    ensure!(
        s == 201 && file["sha256"] == digest.as_str(),
        "complete: {s} {file}"
    );
    let (s, got) = app.download(&app.tokens.producer, &id(&file)).await?;
    ensure!(s == 200 && got == bytes, "download {s}");
    Ok(())
}

/// A part with a wrong digest or length, or outside the plan, is refused and not recorded;
/// sent right, it counts.
pub async fn wrong_parts_are_refused(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(3, 7 * MIB);
    let digest = sha256_hex(&bytes);
    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &digest).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    let wrong = sha256_hex(b"not this part");
    assert_problem(
        &put_part(&app, &sid, 1, part(&bytes, 1), Some(&wrong)).await?,
        422,
        "digest_mismatch",
    );
    // Refusals answered before the body is read get small bodies: a big one may meet the
    // closed connection while it is still being sent.
    assert_problem(
        &put_part(&app, &sid, 2, &part(&bytes, 2)[..100], None).await?,
        422,
        "size_mismatch",
    );
    for n in [0, 3] {
        let got = put_part(&app, &sid, n, b"tiny", None).await?;
        assert_problem(&got, 422, "invalid_part");
    }
    let (_, state) = show(&app, &sid).await?;
    ensure!(
        state["missing"] == json!([1, 2]),
        "nothing recorded: {state}"
    );
    // Another producer's token may not send parts (nor see the session).
    let other = app
        .req(
            reqwest::Method::PUT,
            Some(&app.tokens.other_producer),
            &format!("/uploads/{sid}/parts/1"),
        )
        .body(b"tiny".to_vec())
        .send()
        .await?;
    ensure!(
        [403, 404].contains(&other.status().as_u16()),
        "other producer: {}",
        other.status()
    );
    for n in 1..=2 {
        let (s, got) = put_part(&app, &sid, n, part(&bytes, n), None).await?;
        ensure!(s == 200, "{got}");
    }
    let (s, file) = complete(&app, &sid).await?;
    ensure!(s == 201 && file["sha256"] == digest.as_str(), "{s} {file}");
    // A finalized package takes no more bytes, not even for a session begun before.
    let other = pseudo_random(8, 6 * MIB);
    let (_, late) = begin(&app, &pid, "late.bin", other.len(), &sha256_hex(&other)).await?;
    let late = late["id"].as_str().context("id")?.to_string();
    let (s, fin) = app.finalize(&app.tokens.producer, &pid).await?;
    ensure!(s == 200, "finalize: {fin}");
    assert_problem(
        &put_part(&app, &late, 1, b"tiny", None).await?,
        409,
        "package_finalized",
    );
    assert_problem(&complete(&app, &late).await?, 409, "package_finalized");
    Ok(())
}

/// Parts that are each fine but make a file of another digest: `complete` refuses, deletes
/// the bytes, ends the session and audits why.
pub async fn a_wrong_whole_digest_ends_the_session(cfg: Config) -> Result<()> {
    let s3 = cfg.bytes == Bytes::S3;
    let app = start!(cfg);
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(4, 6 * MIB);
    let declared = sha256_hex(b"something else entirely");
    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &declared).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    // Out of order, so the digest is only known by reading back.
    for n in [2, 1] {
        ensure!(put_part(&app, &sid, n, part(&bytes, n), None).await?.0 == 200);
    }
    assert_problem(&complete(&app, &sid).await?, 422, "digest_mismatch");
    assert_problem(&show(&app, &sid).await?, 404, "not_found");
    let failed = app.audit_events(&pid, "upload_failed").await?;
    ensure!(
        failed.len() == 1
            && failed[0]["details"]["expected_sha256"] == declared.as_str()
            && failed[0]["details"]["actual_sha256"] == sha256_hex(&bytes),
        "{failed:?}"
    );
    let (_, pkg) = app
        .get_json(&app.tokens.producer, &format!("/packages/{pid}"))
        .await?;
    ensure!(pkg["file_count"] == 0, "no file: {pkg}");
    no_staging_left(&app, s3).await?;
    if !s3 {
        ensure!(app.kv_chunk_bytes()? == 0, "no kv chunk left");
    }
    Ok(())
}

/// The bytes the backend holds are what `complete` checks: a part re-sent with other bytes
/// after it went into the running digest must not pass on the first send's digest.
pub async fn a_part_resent_with_other_bytes_is_checked_as_stored(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(6, 6 * MIB);
    let digest = sha256_hex(&bytes);
    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &digest).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    let mut other = part(&bytes, 1).to_vec();
    other[12345] ^= 1;
    for (n, body) in [(1, part(&bytes, 1)), (1, &other[..]), (2, part(&bytes, 2))] {
        ensure!(put_part(&app, &sid, n, body, None).await?.0 == 200);
    }
    assert_problem(&complete(&app, &sid).await?, 422, "digest_mismatch");
    Ok(())
}

/// A read-back that does not fit `verify_budget_ms` answers 202 with its progress and goes
/// on at the next call; the sweep moves it on too.
pub async fn a_read_back_past_its_budget_answers_202_and_goes_on(cfg: Config) -> Result<()> {
    let app = start!(cfg.var("verify_budget_ms", "1"));
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(7, 16 * MIB);
    let digest = sha256_hex(&bytes);
    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &digest).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    // Last first: only part 1, which comes last, is digested on the way in.
    for n in [4, 3, 2, 1] {
        ensure!(put_part(&app, &sid, n, part(&bytes, n), None).await?.0 == 200);
    }
    for verified in [10 * MIB, 15 * MIB] {
        let (s, got) = complete(&app, &sid).await?;
        ensure!(
            s == 202 && got["state"] == "verifying" && got["verified_bytes"] == verified,
            "one part per call within 1 ms: {s} {got}"
        );
    }
    app.sweep().await?;
    let (_, state) = show(&app, &sid).await?;
    ensure!(
        state["state"] == "assembled" && state["verified_bytes"] == bytes.len(),
        "the sweep verified the last part: {state}"
    );
    let (s, file) = complete(&app, &sid).await?;
    ensure!(s == 201 && file["sha256"] == digest.as_str(), "{s} {file}");
    let (s, got) = app.download(&app.tokens.producer, &id(&file)).await?;
    ensure!(s == 200 && got == bytes, "download {s}");
    Ok(())
}

/// An expired session takes no more parts, and the sweep removes it and its bytes; an
/// aborted one is gone at once.
pub async fn expired_and_aborted_sessions_leave_nothing(cfg: Config) -> Result<()> {
    let s3 = cfg.bytes == Bytes::S3;
    let app = start!(
        cfg.var("upload_session_seconds", "1")
            .var("orphan_grace_seconds", "0")
    );
    let pid = id(&app.create_package("sessions", "raw-evidence").await?);
    let bytes = pseudo_random(5, 11 * MIB);
    let digest = sha256_hex(&bytes);
    let (_, aborted) = begin(&app, &pid, "b.bin", bytes.len(), &digest).await?;
    let aborted = aborted["id"].as_str().context("id")?.to_string();
    put_part(&app, &aborted, 1, part(&bytes, 1), None).await?;
    let r = app
        .req(
            reqwest::Method::DELETE,
            Some(&app.tokens.producer),
            &format!("/uploads/{aborted}"),
        )
        .send()
        .await?;
    ensure!(r.status().as_u16() == 204, "abort: {}", r.status());
    assert_problem(&show(&app, &aborted).await?, 404, "not_found");

    let (_, session) = begin(&app, &pid, "a.bin", bytes.len(), &digest).await?;
    let sid = session["id"].as_str().context("id")?.to_string();
    put_part(&app, &sid, 2, part(&bytes, 2), None).await?;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_problem(&put_part(&app, &sid, 1, b"tiny", None).await?, 410, "gone");
    app.sweep().await?;
    let removed = app.audit_events(&pid, "orphan_removed").await?;
    ensure!(
        removed.len() == 1 && removed[0]["details"]["upload_id"] == sid.as_str(),
        "the expired session is removed: {removed:?}"
    );
    assert_problem(&show(&app, &sid).await?, 404, "not_found");
    no_staging_left(&app, s3).await?;
    if !s3 {
        ensure!(app.kv_chunk_bytes()? == 0, "no kv chunk left");
    }
    Ok(())
}

/// The serverless profile: a host that takes at most 10 MiB and 30 s per request. A plain
/// upload of 20 MiB cannot pass; a 1 GiB file goes through a session in 8 MiB parts (the
/// default), then comes back (S3: through a presigned redirect; kv: in ranges) intact.
pub async fn a_gibibyte_under_serverless_limits(cfg: Config) -> Result<()> {
    const SIZE: u64 = 1024 * MIB as u64;
    const PART: u64 = 8 * MIB as u64;
    let s3 = cfg.bytes == Bytes::S3;
    let app = start!(
        cfg.harness_limit("HARNESS_MAX_REQUEST_BYTES", (10 * MIB).to_string())
            .harness_limit("HARNESS_REQUEST_DEADLINE_SECONDS", "30")
    );
    let pid = id(&app.create_package("serverless", "raw-evidence").await?);
    // The host answers 413 before reading the body; the client may see that answer or, still
    // sending, a closed connection. Either way nothing is stored.
    let plain = app
        .put_file(&app.tokens.producer, &pid, "plain.bin", vec![0u8; 20 * MIB])
        .await;
    if let Ok((s, body)) = &plain {
        ensure!(
            *s == 413,
            "a 20 MiB request is over the host's cap: {s} {body}"
        );
    }

    // The parts are generated (and hashed) one at a time: the test holds 8 MiB, not 1 GiB.
    let part_bytes = |n: u64| pseudo_random(1000 + n, PART.min(SIZE - (n - 1) * PART) as usize);
    let parts = SIZE.div_ceil(PART);
    let mut whole = Sha256::new();
    for n in 1..=parts {
        whole.update(part_bytes(n));
    }
    let digest = hex::encode(whole.finalize());
    let (s, session) = app
        .post_json(
            &app.tokens.producer,
            &format!("/packages/{pid}/uploads"),
            &json!({"relative_path": "release/bundle.tar", "size_bytes": SIZE, "sha256": digest}),
        )
        .await?;
    ensure!(s == 201 && session["part_size"] == PART, "{s} {session}");
    let sid = session["id"].as_str().context("id")?.to_string();
    let started = std::time::Instant::now();
    for n in 1..=parts {
        let (s, got) = put_part(&app, &sid, n as u32, &part_bytes(n), None).await?;
        ensure!(s == 200, "part {n}: {s} {got}");
    }
    let sent = started.elapsed();
    let started = std::time::Instant::now();
    let (s, file) = complete(&app, &sid).await?;
    ensure!(
        s == 201 && file["sha256"] == digest.as_str(),
        "complete: {s} {file}"
    );
    eprintln!(
        "1 GiB in {parts} parts: sent in {sent:?} ({:.0} MiB/s), completed in {:?}",
        1024.0 / sent.as_secs_f64(),
        started.elapsed()
    );

    let file_id = id(&file);
    let mut back = Sha256::new();
    let mut got = 0u64;
    if s3 {
        // The presigned URL carries its own authorization; the client follows it.
        let r = app
            .req(
                reqwest::Method::GET,
                Some(&app.tokens.producer),
                &format!("/files/{file_id}/download?redirect=1"),
            )
            .send()
            .await?;
        ensure!(
            [302, 303, 307].contains(&r.status().as_u16()),
            "redirect: {}",
            r.status()
        );
        let to = r
            .headers()
            .get("location")
            .context("location")?
            .to_str()?
            .to_string();
        let mut r = reqwest::get(&to).await?;
        ensure!(r.status() == 200, "presigned GET: {}", r.status());
        while let Some(chunk) = r.chunk().await? {
            got += chunk.len() as u64;
            back.update(&chunk);
        }
    } else {
        // Each request within the host's limits: 128 MiB ranges.
        let step = 128 * MIB as u64;
        let mut start = 0;
        while start < SIZE {
            let end = (start + step).min(SIZE) - 1;
            let mut r = app
                .req(
                    reqwest::Method::GET,
                    Some(&app.tokens.producer),
                    &format!("/files/{file_id}/download"),
                )
                .header("range", format!("bytes={start}-{end}"))
                .send()
                .await?;
            ensure!(r.status() == 206, "range {start}-{end}: {}", r.status());
            while let Some(chunk) = r.chunk().await? {
                got += chunk.len() as u64;
                back.update(&chunk);
            }
            start = end + 1;
        }
    }
    ensure!(
        got == SIZE && hex::encode(back.finalize()) == digest,
        "downloaded {got} bytes with another digest"
    );
    Ok(())
}

/// `direct: true` on S3: one presigned PUT straight to storage, signed with the declared
/// sha256, so the storage server refuses other bytes; the registry commits what arrived.
/// On kv (no presigning) the same request falls back to parts through the gateway.
pub async fn a_direct_upload_is_checked_by_storage(cfg: Config) -> Result<()> {
    let s3 = cfg.bytes == Bytes::S3;
    let app = start!(cfg);
    let pid = id(&app.create_package("direct", "raw-evidence").await?);
    let bytes = pseudo_random(7, 6 * MIB + 3);
    let digest = sha256_hex(&bytes);
    let (s, session) = app
        .post_json(
            &app.tokens.producer,
            &format!("/packages/{pid}/uploads"),
            &json!({"relative_path": "direct.bin", "size_bytes": bytes.len(), "sha256": digest,
                    "direct": true}),
        )
        .await?;
    ensure!(s == 201, "begin: {s} {session}");
    let sid = session["id"].as_str().context("id")?.to_string();
    if !s3 {
        ensure!(
            session["transfer"] == "gateway"
                && session["parts"][0]["url"] == format!("/uploads/{sid}/parts/1"),
            "kv cannot presign: parts go through the gateway: {session}"
        );
        return Ok(());
    }
    let env = s3_env()?.context("s3")?;
    let target = &session["parts"][0];
    let url = target["url"].as_str().context("url")?.to_string();
    ensure!(
        session["transfer"] == "direct"
            && session["part_count"] == 1
            && session["missing"] == json!([1])
            && target["size_bytes"] == bytes.len()
            && target["method"] == "PUT"
            && target["headers"]["x-amz-content-sha256"] == digest.as_str()
            && url.starts_with(&env.endpoint)
            && url.contains("X-Amz-Signature="),
        "{session}"
    );
    // Nothing goes through the gateway, and nothing is committed before the bytes arrive.
    let refused = put_part(&app, &sid, 1, &bytes[..5 * MIB], None).await?;
    assert_problem(&refused, 409, "invalid_state");
    assert_problem(&complete(&app, &sid).await?, 409, "invalid_state");

    let client = reqwest::Client::new();
    let send = |body: Vec<u8>| {
        let mut req = client.put(&url).body(body);
        for (k, v) in target["headers"].as_object().into_iter().flatten() {
            req = req.header(k, v.as_str().unwrap_or_default());
        }
        req.send()
    };
    let mut wrong = bytes.clone();
    wrong[MIB] ^= 1;
    let r = send(wrong).await?;
    ensure!(
        r.status() == 400,
        "storage took other bytes: {}",
        r.status()
    );
    let (_, state) = show(&app, &sid).await?;
    ensure!(state["missing"] == json!([1]), "{state}");
    assert_problem(&complete(&app, &sid).await?, 409, "invalid_state");

    let r = send(bytes.clone()).await?;
    ensure!(
        r.status() == 200,
        "storage refused the right bytes: {}",
        r.status()
    );
    let (_, state) = show(&app, &sid).await?;
    ensure!(
        state["missing"] == json!([]) && state["received"][0]["size_bytes"] == bytes.len(),
        "{state}"
    );
    let (s, file) = complete(&app, &sid).await?;
    ensure!(
        s == 201 && file["sha256"] == digest.as_str() && file["size_bytes"] == bytes.len(),
        "complete: {s} {file}"
    );
    let (s, body) = app.download(&app.tokens.producer, &id(&file)).await?;
    ensure!(s == 200 && sha256_hex(&body) == digest, "download: {s}");
    let key = artifact_store_tests::content_key(app.s3_prefix.as_deref().unwrap_or(""), &digest);
    ensure!(
        s3::list_keys(&env, &key)? == [key.clone()],
        "no object at {key}"
    );
    no_staging_left(&app, true).await
}

mod scenarios {
    pub use super::*;
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness); [
    parts_in_order_make_the_file,
    parts_out_of_order_resent_and_resumed,
    wrong_parts_are_refused,
    a_wrong_whole_digest_ends_the_session,
    a_part_resent_with_other_bytes_is_checked_as_stored,
    a_read_back_past_its_budget_answers_202_and_goes_on,
    expired_and_aborted_sessions_leave_nothing,
    a_gibibyte_under_serverless_limits,
    a_direct_upload_is_checked_by_storage,
]);

// Under the real Spin CLI: the routes, variables and the in-order digest across instances.
artifact_store_tests::suite!(
    scenarios;
    spin_sqlite_kv => (Sqlite, Kv, Spin),
    spin_postgres_s3 => (Postgres, S3, Spin); [
    parts_in_order_make_the_file,
    a_read_back_past_its_budget_answers_202_and_goes_on,
    a_direct_upload_is_checked_by_storage,
]);
