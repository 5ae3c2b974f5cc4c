//! Scenarios of the black-box suite. Each takes the deployment shape, starts its own app
//! and returns an error (with the host's log) when the app misbehaves.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{
    Bytes, Config, Metadata, OTHER_PRODUCER, PRODUCER, TestApp, assert_problem, canonical_json,
    content_key, id, pseudo_random, read_json, s3, s3_env, sha256_hex, start,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const MIB: usize = 1024 * 1024;

/// The guide-board run directory: the well-known files, a scorecard, raw logs (30+ files)
/// and one big file.
fn run_directory(big_bytes: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "run.json".to_string(),
        br#"{"run_id":"r-42","status":"passed"}"#.to_vec(),
    );
    files.insert(
        "retention-summary.json".to_string(),
        br#"{"class":"raw-evidence"}"#.to_vec(),
    );
    files.insert(
        "reports/assessment-package.json".to_string(),
        br#"{"assessment":"a-1"}"#.to_vec(),
    );
    files.insert(
        "reports/report.md".to_string(),
        b"# Report\n\nAll good.\n".to_vec(),
    );
    files.insert(
        "reports/scorecards/scorecard-security.json".to_string(),
        br#"{"score":97}"#.to_vec(),
    );
    for i in 0..28 {
        files.insert(
            format!("logs/raw/step-{i:02}.log"),
            pseudo_random(i as u64, 1000 + i * 37),
        );
    }
    files.insert(
        "artifacts/big.bin".to_string(),
        pseudo_random(99, big_bytes),
    );
    files
}

pub async fn pilot_flow(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let producer = app.tokens.producer.clone();
    let pkg = app
        .create_package_as(
            &producer,
            PRODUCER,
            "guide-board-run",
            "raw-evidence",
            json!({"repo_slug": "acme/guide-board", "run_id": "r-42", "result_status": "passed"}),
        )
        .await?;
    ensure!(pkg["status"] == "open", "new package is open: {pkg}");
    ensure!(pkg["expires_at"].is_string(), "raw-evidence expires: {pkg}");
    let pid = id(&pkg);

    let files = run_directory(200 * MIB);
    ensure!(files.len() >= 30);
    let mut ids = BTreeMap::new();
    for (i, (path, bytes)) in files.iter().enumerate() {
        // Alternate the two upload forms of the contract.
        let (status, body) = if i % 2 == 0 {
            app.put_file(&producer, &pid, path, bytes.clone()).await?
        } else {
            let digest = sha256_hex(bytes);
            app.post_file(&producer, &pid, path, bytes.clone(), Some(&digest))
                .await?
        };
        ensure!(
            status == 201,
            "upload {path}: {status} {body}\n{}",
            app.log_tail()
        );
        ensure!(
            body["sha256"] == sha256_hex(bytes),
            "digest of {path}: {body}"
        );
        ensure!(
            body["size_bytes"] == bytes.len() as u64,
            "size of {path}: {body}"
        );
        ensure!(body["relative_path"] == path.as_str());
        ids.insert(path.clone(), id(&body));
    }

    // The manifest is not there while the package is open; the file list is, with ids.
    let (status, body) = app
        .get_json(&producer, &format!("/packages/{pid}/manifest"))
        .await?;
    ensure!(status == 409, "manifest while open: {status} {body}");
    let (status, listed) = app
        .get_json(&app.tokens.reader, &format!("/packages/{pid}/files"))
        .await?;
    ensure!(status == 200, "file list: {status} {listed}");
    let listed: BTreeMap<String, String> = listed["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|f| (f["relative_path"].as_str().unwrap_or("").to_string(), id(f)))
        .collect();
    ensure!(listed == ids, "the file list names every file with its id");
    let (status, _) = app
        .get_json(
            &app.tokens.other_producer,
            &format!("/packages/{pid}/files"),
        )
        .await?;
    ensure!(
        status == 404,
        "another producer may not list the files: {status}"
    );

    let (status, fin) = app.finalize(&producer, &pid).await?;
    ensure!(
        status == 200 && fin["status"] == "finalized",
        "finalize: {status} {fin}"
    );
    ensure!(fin["file_count"] == files.len() as u64, "file_count: {fin}");
    let total: usize = files.values().map(Vec::len).sum();
    ensure!(fin["total_bytes"] == total as u64, "total_bytes: {fin}");
    // Idempotent.
    let (status, again) = app.finalize(&producer, &pid).await?;
    ensure!(status == 200 && again["finalized_at"] == fin["finalized_at"]);

    let (status, manifest) = app
        .get_json(&app.tokens.reader, &format!("/packages/{pid}/manifest"))
        .await?;
    ensure!(status == 200, "manifest: {status} {manifest}");
    ensure!(manifest["schema"] == "artifact-store.manifest/v1");
    let links = &manifest["links"];
    ensure!(links["run"] == "run.json", "links: {links}");
    ensure!(links["retention_summary"] == "retention-summary.json");
    ensure!(links["assessment_package"] == "reports/assessment-package.json");
    ensure!(links["report"] == "reports/report.md");
    ensure!(
        links["scorecards"] == json!(["reports/scorecards/scorecard-security.json"]),
        "scorecards: {links}"
    );
    let listed: Vec<&str> = manifest["files"]
        .as_array()
        .context("files")?
        .iter()
        .map(|f| f["relative_path"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = files.keys().map(String::as_str).collect();
    ensure!(listed == expected, "manifest files sorted by path");
    for f in manifest["files"].as_array().unwrap() {
        let path = f["relative_path"].as_str().unwrap();
        ensure!(f["sha256"] == sha256_hex(&files[path]));
        let storage = &f["storage"][0];
        let backend = if app.config.bytes == Bytes::S3 {
            "s3"
        } else {
            "kv"
        };
        ensure!(storage["backend_id"] == backend, "storage: {storage}");
        // The contract's content address: `<prefix>sha256/<aa>/<bb>/<digest>`.
        let d = sha256_hex(&files[path]);
        let want = content_key(app.s3_prefix.as_deref().unwrap_or_default(), &d);
        ensure!(
            storage["object_key"] == want.as_str(),
            "content-addressed key {want}: {storage}"
        );
    }
    // manifest_sha256 covers the manifest without itself.
    let mut without = manifest.clone();
    let claimed = without
        .as_object_mut()
        .unwrap()
        .remove("manifest_sha256")
        .context("manifest_sha256")?;
    // Recomputed with the tests' own encoder, not the app's `canonical` module.
    let canonical = canonical_json(&without);
    ensure!(
        claimed == sha256_hex(canonical.as_bytes()),
        "manifest_sha256 matches canonical JSON"
    );

    // Every file downloads with its bytes and the contract's headers.
    for (path, bytes) in &files {
        let r = app
            .req(
                Method::GET,
                Some(&app.tokens.reader),
                &format!("/files/{}/download", ids[path]),
            )
            .send()
            .await?;
        ensure!(r.status() == 200, "download {path}: {}", r.status());
        let h = r.headers().clone();
        let digest = sha256_hex(bytes);
        ensure!(
            h["etag"] == format!("\"{digest}\"").as_str(),
            "etag of {path}"
        );
        ensure!(h["content-length"] == bytes.len().to_string().as_str());
        // RFC 9530: `sha-256=:<base64 of the raw digest>:`, computed here independently.
        let raw: Vec<u8> = (0..digest.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digest[i..i + 2], 16).unwrap())
            .collect();
        let want = format!("sha-256=:{}:", base64_encode(&raw));
        ensure!(
            h["repr-digest"] == want.as_str(),
            "repr-digest of {path}: {:?}, want {want}",
            h["repr-digest"]
        );
        let body = r.bytes().await?;
        ensure!(sha256_hex(&body) == digest, "bytes of {path}");
    }

    let types = app.audit_types(&pid).await?;
    ensure!(
        types.first().map(String::as_str) == Some("package_created"),
        "{types:?}"
    );
    ensure!(types.iter().filter(|t| *t == "file_uploaded").count() == files.len());
    ensure!(types.iter().any(|t| t == "package_finalized"));
    ensure!(types.iter().filter(|t| *t == "retrieval_requested").count() == files.len());
    let verify = app.verify_audit().await?;
    ensure!(verify["valid"] == true, "audit chain: {verify}");
    Ok(())
}

/// Every bad input answers its status and code, and nothing is stored.
/// NUL characters (which PostgreSQL cannot store in text) in ids, filters, cursors and
/// bodies are bad input: the same 4xx on every store, never a 5xx (issue 12, item 5).
pub async fn nul_bytes_are_bad_input_on_every_store(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("nul", "transient").await?);
    for path in [
        "/packages/%00".to_string(),
        format!("/packages/{pid}%00/files"),
        "/packages?subject=a%00b".to_string(),
        "/packages?metadata.run_id=%00".to_string(),
        "/packages?cursor=%00".to_string(),
        "/audit?package_id=%00".to_string(),
    ] {
        let got = app.get_json(&p, &path).await?;
        ensure!(
            got.0 == 400 && got.1["code"] == "bad_request",
            "{path}: {got:?}"
        );
    }
    let body = |name: &str, subject: &str, metadata: serde_json::Value| {
        json!({"name": name, "producer": "ci-bot", "subject": subject,
               "retention_class": "transient", "metadata": metadata})
    };
    let got = app
        .post_json(&p, "/packages", &body("ok", "a\u{0}b", json!({})))
        .await?;
    assert_problem(&got, 422, "invalid_subject");
    for metadata in [json!({"k": "a\u{0}b"}), json!({"k\u{0}": "v"})] {
        let got = app
            .post_json(&p, "/packages", &body("ok", "s", metadata))
            .await?;
        assert_problem(&got, 422, "invalid_metadata");
    }
    let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?;
    ensure!(pkg.0 == 200, "the service still answers: {pkg:?}");
    Ok(())
}

pub async fn bad_inputs_store_nothing(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pkg = app.create_package("bad-inputs", "transient").await?;
    let pid = id(&pkg);

    for path in [
        "../etc/passwd",
        "a/../../b",
        "/abs/path",
        "a\\b",
        "a//b",
        "./a",
        "a/./b",
        "a/",
        "tab\there",
        "nul\u{0}byte",
    ] {
        let got = app.post_file(&p, &pid, path, b"x".to_vec(), None).await?;
        assert_problem(&got, 422, "invalid_path");
    }
    // Percent-encoded traversal through the PUT route (sent raw: HTTP clients would
    // resolve `%2e%2e` themselves) must not reach a real `..`.
    let got = app
        .raw_request(
            "PUT",
            &format!("/packages/{pid}/files/a/%2e%2e/%2e%2e/x"),
            &p,
            b"x",
        )
        .await?;
    // Decoded once, `a/../../x`: refused, as the contract's path rules say.
    assert_problem(&got, 422, "invalid_path");
    let got = app
        .raw_request("PUT", &format!("/packages/{pid}/files/../../x"), &p, b"x")
        .await?;
    // Neither host normalizes the URL: the dot segments reach the path check.
    assert_problem(&got, 422, "invalid_path");
    // An empty segment before `files` matches no route (as on Spin), so nothing is
    // stored under a guessed path.
    let got = app
        .raw_request("PUT", &format!("/packages/{pid}//files/x"), &p, b"x")
        .await?;
    ensure!(got.0 == 404, "an empty segment before files: {got:?}");
    let before = app.get_json(&p, &format!("/packages/{pid}")).await?.1;

    // Digest mismatch: 422 and nothing kept.
    let got = app
        .post_file(
            &p,
            &pid,
            "data.bin",
            b"hello".to_vec(),
            Some(&"0".repeat(64)),
        )
        .await?;
    assert_problem(&got, 422, "digest_mismatch");
    let r = app
        .req(
            Method::PUT,
            Some(&p),
            &format!("/packages/{pid}/files/data2.bin"),
        )
        .header("x-artifact-sha256", sha256_hex(b"other"))
        .body("hello")
        .send()
        .await?;
    assert_problem(&read_json(r).await?, 422, "digest_mismatch");
    let got = app
        .post_file(&p, &pid, "data.bin", b"hello".to_vec(), Some("not-hex"))
        .await?;
    assert_problem(&got, 422, "invalid_digest");

    // Duplicate path: 409.
    let got = app.put_file(&p, &pid, "dup.txt", b"one".to_vec()).await?;
    ensure!(got.0 == 201, "{got:?}");
    let got = app.put_file(&p, &pid, "dup.txt", b"two".to_vec()).await?;
    assert_problem(&got, 409, "duplicate_path");

    // Unknown ids: 404.
    let unknown = "0190b9a2-0000-7000-8000-000000000000";
    assert_problem(
        &app.get_json(&p, &format!("/packages/{unknown}")).await?,
        404,
        "not_found",
    );
    assert_problem(
        &app.get_json(&p, "/packages/not-a-uuid").await?,
        404,
        "not_found",
    );
    assert_problem(
        &app.put_file(&p, unknown, "x.txt", b"x".to_vec()).await?,
        404,
        "not_found",
    );
    let (status, _) = app.download(&p, unknown).await?;
    ensure!(status == 404);

    // Bad JSON, wrong content type, invalid fields, secret metadata keys.
    let r = app
        .req(Method::POST, Some(&p), "/packages")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_problem(&read_json(r).await?, 400, "invalid_json");
    let r = app
        .req(Method::POST, Some(&p), "/packages")
        .header("content-type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await?;
    let got = read_json(r).await?;
    ensure!(got.0 == 415, "wrong content type: {got:?}");
    let base =
        json!({"name": "n", "producer": PRODUCER, "subject": "s", "retention_class": "transient"});
    let mut bad_class = base.clone();
    bad_class["retention_class"] = json!("forever");
    let got = app.post_json(&p, "/packages", &bad_class).await?;
    ensure!(got.0 == 422, "bad class: {got:?}");
    for key in [
        "password",
        "db_secret",
        "api_key",
        "GITHUB_TOKEN",
        "private_key",
        "credential",
    ] {
        let mut body = base.clone();
        body["metadata"] = json!({ key: "x" });
        let got = app.post_json(&p, "/packages", &body).await?;
        assert_problem(&got, 422, "secret_metadata_key");
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("name");
    let got = app.post_json(&p, "/packages", &missing).await?;
    assert_problem(&got, 422, "invalid_name");

    // Upload after finalize: 409 package_finalized.
    let (status, _) = app.finalize(&p, &pid).await?;
    ensure!(status == 200);
    let got = app.put_file(&p, &pid, "late.txt", b"late".to_vec()).await?;
    assert_problem(&got, 409, "package_finalized");

    // Nothing of the above was stored: one file (dup.txt, plus a literal %2e path maybe).
    let after = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
    ensure!(
        after["file_count"].as_u64() == Some(before["file_count"].as_u64().unwrap() + 1),
        "only dup.txt was added after the path checks: before {before} after {after}"
    );
    let uploads = app
        .audit_types(&pid)
        .await?
        .into_iter()
        .filter(|t| t == "file_uploaded")
        .count() as u64;
    ensure!(
        Some(uploads) == after["file_count"].as_u64(),
        "audit matches files"
    );
    let (status, list) = app
        .get_json(&app.tokens.operator, "/packages?limit=1000")
        .await?;
    ensure!(
        status == 200 && list["items"].as_array().unwrap().len() == 1,
        "only one package: {list}"
    );
    Ok(())
}

/// A configured size limit answers 413 and keeps nothing.
pub async fn oversize_upload(cfg: Config) -> Result<()> {
    let app = start!(cfg.var("max_file_bytes", "1048576"));
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("oversize", "transient").await?);
    let got = app
        .put_file(&p, &pid, "big.bin", pseudo_random(1, MIB + 1))
        .await?;
    assert_problem(&got, 413, "payload_too_large");
    let got = app
        .post_file(&p, &pid, "big2.bin", pseudo_random(2, 2 * MIB), None)
        .await?;
    assert_problem(&got, 413, "payload_too_large");
    let got = app
        .put_file(&p, &pid, "fits.bin", pseudo_random(3, MIB))
        .await?;
    ensure!(got.0 == 201, "exactly the limit fits: {got:?}");
    let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
    ensure!(pkg["file_count"] == 1, "{pkg}");
    Ok(())
}

pub async fn authz_matrix(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let t = &app.tokens;
    // No token, unknown token: 401 everywhere but /health.
    let r = app.req(Method::GET, None, "/health").send().await?;
    ensure!(r.status() == 200);
    for path in ["/packages", "/backends", "/audit"] {
        let got = read_json(app.req(Method::GET, None, path).send().await?).await?;
        assert_problem(&got, 401, "unauthorized");
        let got = read_json(app.req(Method::GET, Some("nope"), path).send().await?).await?;
        assert_problem(&got, 401, "unauthorized");
    }
    // A producer creates only for its producers.
    let body = json!({"name": "n", "producer": OTHER_PRODUCER, "subject": "s", "retention_class": "transient"});
    let got = app.post_json(&t.producer, "/packages", &body).await?;
    assert_problem(&got, 403, "forbidden");
    let got = app.post_json(&t.reader, "/packages", &body).await?;
    assert_problem(&got, 403, "forbidden");

    let mine = app.create_package("mine", "transient").await?;
    let mid = id(&mine);
    let (_, f) = app
        .put_file(&t.producer, &mid, "a.txt", b"a".to_vec())
        .await?;
    let fid = id(&f);
    let theirs = app
        .create_package_as(
            &t.other_producer,
            OTHER_PRODUCER,
            "theirs",
            "transient",
            json!({}),
        )
        .await?;
    let tid = id(&theirs);

    // Reads: own producer, reader of it, reader of all, operator: yes. Others: 404.
    for token in [&t.producer, &t.reader, &t.reader_all, &t.operator] {
        let (s, _) = app.get_json(token, &format!("/packages/{mid}")).await?;
        ensure!(s == 200, "may read mine: {s}");
        let (s, _) = app.download(token, &fid).await?;
        ensure!(s == 200, "may download mine: {s}");
    }
    for token in [&t.producer, &t.reader] {
        let got = app.get_json(token, &format!("/packages/{tid}")).await?;
        assert_problem(&got, 404, "not_found");
    }
    let got = app
        .get_json(&t.other_producer, &format!("/packages/{mid}"))
        .await?;
    assert_problem(&got, 404, "not_found");
    let (s, _) = app.download(&t.other_producer, &fid).await?;
    ensure!(s == 404, "other producer may not download: {s}");
    // Upload into another producer's package: 404 (its existence is not leaked).
    let got = app
        .put_file(&t.other_producer, &mid, "x.txt", b"x".to_vec())
        .await?;
    assert_problem(&got, 404, "not_found");
    // A reader may not upload, finalize, hold or sweep.
    let got = app
        .put_file(&t.reader, &mid, "r.txt", b"r".to_vec())
        .await?;
    assert_problem(&got, 403, "forbidden");
    let got = app.finalize(&t.reader, &mid).await?;
    assert_problem(&got, 403, "forbidden");
    let got = app
        .post_json(
            &t.producer,
            &format!("/packages/{mid}/retention/holds"),
            &json!({"reason": "r"}),
        )
        .await?;
    assert_problem(&got, 403, "forbidden");
    let got = app
        .post_json(&t.producer, "/admin/sweeps", &json!({}))
        .await?;
    assert_problem(&got, 403, "forbidden");
    let got = app.get_json(&t.reader, "/audit").await?;
    assert_problem(&got, 403, "forbidden");
    // Lists show only readable packages.
    let (_, list) = app.get_json(&t.reader, "/packages").await?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    ensure!(names == ["mine"], "reader sees only guide-board: {names:?}");
    let (_, list) = app.get_json(&t.operator, "/packages").await?;
    ensure!(list["items"].as_array().unwrap().len() == 2);
    // The operator may hold.
    let (s, hold) = app
        .post_json(
            &t.operator,
            &format!("/packages/{mid}/retention/holds"),
            &json!({"reason": "legal"}),
        )
        .await?;
    ensure!(s == 201 && hold["created_by"] == "ops-team", "{s} {hold}");
    Ok(())
}

/// With every store up (issue 19, item 4), `/backends` lists each configured backend,
/// `kv` first, with its kind, whether new uploads go there and `ok`; `/health` says `ok`
/// for the service, the metadata store and each backend.
pub async fn backends_and_health_when_all_is_up(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let s3 = app.config.bytes == Bytes::S3;
    let mut want = vec![json!({"id": "kv", "kind": "kv", "default": !s3, "status": "ok"})];
    if s3 {
        want.push(json!({"id": "s3", "kind": "s3", "default": true, "status": "ok"}));
    }

    let (s, list) = app.get_json(&app.tokens.reader, "/backends").await?;
    ensure!(s == 200, "{s} {list}");
    let mut listed = list.as_array().context("an array")?.clone();
    // `detail` is free text for operators: present, and naming the bucket on S3.
    for b in &mut listed {
        let detail = b
            .as_object_mut()
            .and_then(|o| o.remove("detail"))
            .context("detail")?;
        let detail = detail.as_str().context("detail is a string")?;
        ensure!(!detail.is_empty(), "{b}: empty detail");
        if b["id"] == "s3" {
            let env = s3_env()?.context("s3")?;
            ensure!(detail.contains(&env.bucket), "names the bucket: {detail}");
            ensure!(!detail.contains(&env.secret_key), "no secret in: {detail}");
        }
    }
    ensure!(listed == want, "backends: {list}");

    let (s, health) = app.get_json(&app.tokens.reader, "/health").await?;
    let backends: Vec<Value> = want
        .iter()
        .map(|b| json!({"id": b["id"], "kind": b["kind"], "status": "ok"}))
        .collect();
    let want_health = json!({"status": "ok", "metadata": "ok", "backends": backends});
    ensure!(s == 200 && health == want_health, "health: {s} {health}");
    Ok(())
}

pub async fn range_requests(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("ranges", "transient").await?);
    let bytes = pseudo_random(7, 3 * MIB + 17);
    let (s, f) = app.put_file(&p, &pid, "r.bin", bytes.clone()).await?;
    ensure!(s == 201);
    let fid = id(&f);
    let n = bytes.len() as u64;
    let get = |range: String| {
        app.req(Method::GET, Some(&p), &format!("/files/{fid}/download"))
            .header("range", range)
            .send()
    };
    let cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-99".into(), 0, 99),
        (format!("bytes={}-", n - 10), n - 10, n - 1),
        ("bytes=-5".into(), n - 5, n - 1),
        (
            format!("bytes=1048570-{}", 2 * MIB + 5),
            1048570,
            2 * MIB as u64 + 5,
        ),
        (format!("bytes=100-{}", n + 1000), 100, n - 1),
    ];
    for (range, start, end) in cases {
        let r = get(range.clone()).await?;
        ensure!(r.status() == 206, "{range}: {}", r.status());
        let cr = r.headers()["content-range"].to_str()?.to_string();
        ensure!(cr == format!("bytes {start}-{end}/{n}"), "{range}: {cr}");
        let body = r.bytes().await?;
        ensure!(
            body[..] == bytes[start as usize..=end as usize],
            "{range} bytes"
        );
    }
    for range in [format!("bytes={n}-"), format!("bytes={}-{}", n + 5, n + 10)] {
        let r = get(range.clone()).await?;
        ensure!(r.status() == 416, "{range}: {}", r.status());
        ensure!(r.headers()["content-range"] == format!("bytes */{n}").as_str());
    }
    // Several ranges are not served (no multipart/byteranges): the contract ignores the
    // header ("Other forms are ignored (200)"), so the whole file comes back.
    let (s, cr, body) = app.download_range(&p, &fid, "bytes=0-1,5-6").await?;
    ensure!(s == 200, "multi-range answers 200: {s}");
    ensure!(cr.is_none(), "no Content-Range on a 200: {cr:?}");
    ensure!(body == bytes, "multi-range serves the whole file");
    Ok(())
}

/// `?redirect=1` answers by the file's backend (issue 19, item 2): S3 gives a 302 to a
/// presigned URL; kv has no URL to give, so the file streams with 200 as without the
/// parameter. The retrieval is recorded with the redirect given. Other values are 422.
pub async fn redirect_follows_the_backend(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("redirected", "transient").await?);
    let bytes = pseudo_random(12, 200_000);
    let (s, f) = app.put_file(&p, &pid, "r.bin", bytes.clone()).await?;
    ensure!(s == 201, "{f}");
    let fid = id(&f);
    let r = app
        .req(
            Method::GET,
            Some(&app.tokens.reader),
            &format!("/files/{fid}/download?redirect=1"),
        )
        .send()
        .await?;
    let status = r.status().as_u16();
    let location = r.headers().get("location").cloned();
    let body = r.bytes().await?;
    let redirected = match app.config.bytes {
        Bytes::Kv => {
            ensure!(status == 200, "kv streams instead: {status}");
            ensure!(location.is_none(), "no Location on kv: {location:?}");
            ensure!(body[..] == bytes[..], "the whole file");
            false
        }
        Bytes::S3 => {
            ensure!(status == 302, "S3 redirects: {status}");
            let url = location.context("Location")?.to_str()?.to_string();
            ensure!(url.contains("X-Amz-Signature="), "presigned: {url}");
            ensure!(body.is_empty(), "a redirect carries no bytes");
            true
        }
    };
    let got = app
        .get_json(
            &app.tokens.reader,
            &format!("/files/{fid}/download?redirect=yes"),
        )
        .await?;
    assert_problem(&got, 422, "invalid_query");
    // One retrieval (the refused one records nothing), with the redirect it was given.
    let events = app.audit_events(&pid, "retrieval_requested").await?;
    ensure!(events.len() == 1, "one retrieval: {events:?}");
    ensure!(
        events[0]["details"]["redirect"] == redirected,
        "recorded redirect {redirected}: {}",
        events[0]
    );
    Ok(())
}

/// The same bytes uploaded twice (in two packages) are stored once.
pub async fn dedupe_same_bytes(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let bytes = pseudo_random(11, 2 * MIB + 3);
    let a = id(&app.create_package("a", "transient").await?);
    let b = id(&app.create_package("b", "transient").await?);
    let objects_before = count_objects(&app)?;
    let (s, fa) = app.put_file(&p, &a, "x.bin", bytes.clone()).await?;
    ensure!(s == 201);
    let (s, fb) = app.put_file(&p, &b, "copy/x.bin", bytes.clone()).await?;
    ensure!(s == 201);
    let objects_after = count_objects(&app)?;
    ensure!(
        objects_after == objects_before + 1,
        "one object for two identical files: {objects_before} -> {objects_after}"
    );
    if app.config.bytes == Bytes::Kv {
        // The bytes themselves are stored once (the kv promotion moves the staged chunks,
        // the second upload's are freed), and the one staging entry left is the promoted
        // upload's forwarding entry, which lives as long as the object it points at.
        let chunk_bytes = app.kv_chunk_bytes()?;
        ensure!(
            chunk_bytes as usize == bytes.len(),
            "chunks hold {chunk_bytes} bytes for one {}-byte object",
            bytes.len()
        );
        let conn = rusqlite::Connection::open(app.blobs_path())?;
        let mut stmt = conn.prepare(
            "SELECT value FROM spin_key_value WHERE store = 'blobs' \
             AND key LIKE 'staging/%' AND key NOT LIKE '%/c/%'",
        )?;
        let staging: Vec<Value> = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect::<Result<_>>()?;
        let digest = sha256_hex(&bytes);
        ensure!(
            staging.len() == 1
                && staging[0]["moved_to"]
                    .as_str()
                    .is_some_and(|k| k.ends_with(&digest)),
            "only the forwarding entry to the object is left: {staging:?}"
        );
    }
    for f in [&fa, &fb] {
        let (s, got) = app.download(&p, &id(f)).await?;
        ensure!(s == 200 && got == bytes);
    }
    Ok(())
}

/// Objects at content-addressed keys in the app's backend.
fn count_objects(app: &TestApp) -> Result<usize> {
    match app.config.bytes {
        Bytes::S3 => {
            let env = s3_env()?.context("s3")?;
            let prefix = app.s3_prefix.clone().unwrap_or_default();
            Ok(s3::list_keys(&env, &format!("{prefix}sha256/"))?.len())
        }
        Bytes::Kv => {
            // Both hosts keep the `blobs` store in Spin's SQLite format; count objects (meta
            // entries, not chunks).
            let db = app.blobs_path();
            let conn = rusqlite::Connection::open(&db)
                .with_context(|| format!("opening {}", db.display()))?;
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM spin_key_value WHERE store = 'blobs' \
                 AND key LIKE 'sha256/%' AND key NOT LIKE '%/c/%'",
                [],
                |r| r.get(0),
            )?;
            Ok(n as usize)
        }
    }
}

pub async fn audit_chain_detects_tampering(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("audited", "transient").await?);
    for i in 0..3 {
        let (s, _) = app
            .put_file(
                &p,
                &pid,
                &format!("f{i}.txt"),
                format!("file {i}").into_bytes(),
            )
            .await?;
        ensure!(s == 201);
    }
    app.finalize(&p, &pid).await?;
    let v = app.verify_audit().await?;
    ensure!(v["valid"] == true, "valid after a flow: {v}");
    let checked = v["events_checked"].as_u64().unwrap_or(0);
    ensure!(checked >= 5, "events checked: {v}");

    // Delete the newest event: the rest still links up, but no longer ends at the head.
    let newest = "DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)";
    ensure!(
        run_sql(&app, newest).await? == 1,
        "deleted the newest event"
    );
    let v = app.verify_audit().await?;
    ensure!(v["valid"] == false, "truncation detected: {v}");
    ensure!(v["first_invalid_id"].is_null(), "{v}");
    ensure!(
        v["detail"].as_str().unwrap_or_default().contains("head"),
        "{v}"
    );

    // Change one recorded actor behind the app's back.
    let sql = "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3";
    ensure!(run_sql(&app, sql).await? == 1, "tampered one row");
    let v = app.verify_audit().await?;
    ensure!(v["valid"] == false, "tampering detected: {v}");
    let (_, list) = app
        .get_json(&app.tokens.operator, "/audit?limit=1000")
        .await?;
    let third = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == 3)
        .context("seq 3")?;
    ensure!(
        v["first_invalid_id"] == third["id"],
        "first invalid is seq 3: {v}"
    );
    Ok(())
}

/// The seed the checkpoint scenario signs with.
const CHECKPOINT_SEED: [u8; 32] = [0x42; 32];

/// A signed checkpoint (issue 12, item 8) proves the log up to it was not rewritten, even
/// by someone who recomputes every hash in the database, which plain verification cannot
/// tell.
pub async fn signed_checkpoint_catches_a_rewritten_log(cfg: Config) -> Result<()> {
    use artifact_store_core::model::AuditEvent;
    use ed25519_dalek::{Signature, SigningKey, Verifier};
    let app = start!(cfg.var("audit_signing_key", hex::encode(CHECKPOINT_SEED)));
    let op = app.tokens.operator.clone();
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("checkpointed", "transient").await?);
    for i in 0..2 {
        let (s, _) = app
            .put_file(&p, &pid, &format!("f{i}.txt"), vec![b'a' + i; 10])
            .await?;
        ensure!(s == 201);
    }

    let (s, cp) = app.get_json(&op, "/audit/checkpoint").await?;
    ensure!(s == 200, "{s} {cp}");
    let key = SigningKey::from_bytes(&CHECKPOINT_SEED).verifying_key();
    ensure!(cp["public_key"] == hex::encode(key.as_bytes()), "{cp}");
    let message = cp["message"].as_str().context("message")?;
    let signature: [u8; 64] = hex::decode(cp["signature"].as_str().context("signature")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a 64-byte signature"))?;
    key.verify(message.as_bytes(), &Signature::from_bytes(&signature))
        .context("the signature verifies")?;
    let signed: serde_json::Value = serde_json::from_str(message)?;
    let (_, newest) = app.get_json(&op, "/audit?limit=1").await?;
    let newest = &newest["items"][0];
    ensure!(
        signed["seq"] == newest["seq"] && signed["hash"] == newest["hash"],
        "the checkpoint is the chain's head: {signed} {newest}"
    );
    ensure!(
        signed["seq"] == cp["seq"] && signed["hash"] == cp["hash"],
        "{cp}"
    );
    let at = format!(
        "/audit/verify?checkpoint_seq={}&checkpoint_hash={}",
        cp["seq"],
        cp["hash"].as_str().unwrap_or_default()
    );

    // The log goes on; the checkpoint still holds.
    let (s, _) = app
        .put_file(&p, &pid, "later.txt", b"later".to_vec())
        .await?;
    ensure!(s == 201);
    let (s, v) = app.get_json(&op, &at).await?;
    ensure!(s == 200 && v["valid"] == true, "{s} {v}");

    // Rewrite event 2 and re-link everything after it, head included.
    let (_, all) = app.get_json(&op, "/audit?limit=1000").await?;
    let mut events: Vec<AuditEvent> = serde_json::from_value(all["items"].clone())?;
    events.sort_by_key(|e| e.seq);
    events[1].actor = "mallory".into();
    for i in 1..events.len() {
        events[i].prev_hash = events[i - 1].hash.clone();
        events[i].hash = artifact_store_core::audit::hash_event(&events[i]);
        let e = &events[i];
        let sql = format!(
            "UPDATE audit_events SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            e.actor, e.prev_hash, e.hash, e.seq
        );
        ensure!(run_sql(&app, &sql).await? == 1, "{sql}");
    }
    let head = events.last().context("events")?;
    let sql = format!(
        "UPDATE audit_chain_head SET last_hash = '{}' WHERE id = 1",
        head.hash
    );
    ensure!(run_sql(&app, &sql).await? == 1, "{sql}");
    let v = app.verify_audit().await?;
    ensure!(v["valid"] == true, "links alone cannot tell: {v}");
    let (s, v) = app.get_json(&op, &at).await?;
    ensure!(
        s == 200 && v["valid"] == false,
        "the checkpoint can: {s} {v}"
    );
    ensure!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("checkpoint"),
        "{v}"
    );

    let got = app.get_json(&op, "/audit/verify?checkpoint_seq=3").await?;
    assert_problem(&got, 422, "invalid_query");
    let got = app.get_json(&p, "/audit/checkpoint").await?;
    assert_problem(&got, 403, "forbidden");
    Ok(())
}

/// Without `audit_signing_key`, no checkpoint is offered.
pub async fn no_checkpoint_without_a_signing_key(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let got = app
        .get_json(&app.tokens.operator, "/audit/checkpoint")
        .await?;
    assert_problem(&got, 404, "not_found");
    Ok(())
}

/// Runs one statement on the app's metadata database behind its back; rows changed.
async fn run_sql(app: &TestApp, sql: &str) -> Result<u64> {
    Ok(match app.config.metadata {
        Metadata::Sqlite => rusqlite::Connection::open(app.sqlite_path())?.execute(sql, [])? as u64,
        Metadata::Postgres => {
            let url = artifact_store_tests::services::pg_url(app.pg_database.as_ref().unwrap());
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.execute(sql, &[]).await?
        }
    })
}

/// Makes every append to the audit log fail, behind the app's back, as a full disk or a
/// broken table would: a trigger that refuses inserts into `audit_events`.
async fn refuse_audit_appends(app: &TestApp) -> Result<()> {
    const REFUSED: &str = "audit log refused by the test";
    match app.config.metadata {
        Metadata::Sqlite => {
            let sql = format!(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
            );
            run_sql(app, &sql).await?;
        }
        Metadata::Postgres => {
            let function = format!(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$"
            );
            run_sql(app, &function).await?;
            run_sql(
                app,
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            )
            .await?;
        }
    }
    Ok(())
}

/// Undoes `refuse_audit_appends`.
async fn allow_audit_appends(app: &TestApp) -> Result<()> {
    let sql = match app.config.metadata {
        Metadata::Sqlite => "DROP TRIGGER refuse_audit",
        Metadata::Postgres => "DROP TRIGGER refuse_audit ON audit_events",
    };
    run_sql(app, sql).await?;
    Ok(())
}

/// A GET as the reader: status, whether a Location came, content type, body.
async fn get_raw(app: &TestApp, path: &str) -> Result<(u16, bool, String, Vec<u8>)> {
    let r = app
        .req(Method::GET, Some(&app.tokens.reader), path)
        .send()
        .await?;
    let status = r.status().as_u16();
    let location = r.headers().contains_key("location");
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    Ok((status, location, content_type, r.bytes().await?.to_vec()))
}

/// No audit record, no action (issue 19, item 7): when the audit event cannot be
/// appended, a download (plain or `?redirect=1`) answers 503 and sends none of the file's
/// bytes, and an upload (either form) answers 503 and commits no file.
pub async fn audit_write_failure_serves_and_commits_nothing(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("unaudited", "transient").await?);
    let bytes = pseudo_random(13, 300_000);
    let (s, f) = app.put_file(&p, &pid, "kept.bin", bytes.clone()).await?;
    ensure!(s == 201, "{f}");
    let fid = id(&f);
    refuse_audit_appends(&app).await?;

    for path in [
        format!("/files/{fid}/download"),
        format!("/files/{fid}/download?redirect=1"),
    ] {
        let (status, location, content_type, body) = get_raw(&app, &path).await?;
        let problem = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_problem(&(status, problem), 503, "backend_unavailable");
        ensure!(
            content_type == "application/problem+json",
            "{path}: {content_type}"
        );
        ensure!(!location, "{path}: no redirect without its record");
        ensure!(
            !body.windows(32).any(|w| w == &bytes[..32]),
            "{path}: none of the file's bytes sent"
        );
    }

    let later = pseudo_random(14, 200_000);
    let got = app.put_file(&p, &pid, "put.bin", later.clone()).await?;
    assert_problem(&got, 503, "backend_unavailable");
    let got = app
        .post_file(&p, &pid, "form.bin", later.clone(), None)
        .await?;
    assert_problem(&got, 503, "backend_unavailable");
    let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
    ensure!(
        pkg["file_count"] == 1 && pkg["total_bytes"] == bytes.len() as u64,
        "only the file from before: {pkg}"
    );

    allow_audit_appends(&app).await?;
    // Nothing was half-committed: the same paths take the same bytes now (no 409).
    let (s, f) = app.put_file(&p, &pid, "put.bin", later.clone()).await?;
    ensure!(s == 201, "put after: {s} {f}\n{}", app.log_tail());
    let (s, f) = app
        .post_file(&p, &pid, "form.bin", later.clone(), None)
        .await?;
    ensure!(s == 201, "form after: {s} {f}\n{}", app.log_tail());
    let types = app.audit_types(&pid).await?;
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    ensure!(
        count("file_uploaded") == 3 && count("retrieval_requested") == 0,
        "{types:?}"
    );
    ensure!(app.verify_audit().await?["valid"] == true);
    Ok(())
}

/// A client that drops the connection mid-upload leaves nothing committed.
pub async fn dropped_upload_commits_nothing(cfg: Config) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("dropped", "transient").await?);
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await?;
    let total = 40 * MIB;
    let head = format!(
        "PUT /packages/{pid}/files/partial.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {p}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    let chunk = pseudo_random(5, MIB);
    for _ in 0..20 {
        sock.write_all(&chunk).await?;
    }
    sock.flush().await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(sock);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
    ensure!(pkg["file_count"] == 0, "nothing committed: {pkg}");
    let types = app.audit_types(&pid).await?;
    ensure!(!types.iter().any(|t| t == "file_uploaded"), "{types:?}");
    // The next upload of the same path works.
    let (s, f) = app
        .put_file(&p, &pid, "partial.bin", pseudo_random(6, 3 * MIB))
        .await?;
    ensure!(s == 201, "next upload works: {s} {f}\n{}", app.log_tail());
    Ok(())
}

pub async fn search_and_pagination(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let t = &app.tokens;
    let mut created = Vec::new();
    for i in 0..12 {
        let class = if i % 3 == 0 {
            "summary-evidence"
        } else {
            "transient"
        };
        let meta = json!({"run_id": format!("r-{i}"), "environment": if i % 2 == 0 { "prod" } else { "staging" }});
        let pkg = app
            .create_package_as(&t.producer, PRODUCER, &format!("pkg-{i}"), class, meta)
            .await?;
        created.push(id(&pkg));
    }
    app.create_package_as(
        &t.other_producer,
        OTHER_PRODUCER,
        "other",
        "transient",
        json!({}),
    )
    .await?;
    app.finalize(&t.producer, &created[0]).await?;

    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v) = app
        .get_json(&t.operator, "/packages?metadata.run_id=r-7")
        .await?;
    ensure!(s == 200 && names(&v) == ["pkg-7"], "metadata filter: {v}");
    let (_, v) = app
        .get_json(
            &t.operator,
            "/packages?metadata.environment=prod&retention_class=summary-evidence",
        )
        .await?;
    ensure!(
        names(&v) == ["pkg-6", "pkg-0"],
        "two filters, newest first: {v}"
    );
    let (_, v) = app
        .get_json(&t.operator, &format!("/packages?producer={OTHER_PRODUCER}"))
        .await?;
    ensure!(names(&v) == ["other"]);
    let (_, v) = app
        .get_json(&t.operator, "/packages?status=finalized")
        .await?;
    ensure!(names(&v) == ["pkg-0"]);
    let (_, v) = app.get_json(&t.operator, "/packages?name=pkg-3").await?;
    ensure!(names(&v) == ["pkg-3"]);
    let (_, v) = app
        .get_json(&t.operator, "/packages?subject=run%2042&limit=1000")
        .await?;
    ensure!(names(&v).len() == 13);
    let (_, v) = app
        .get_json(
            &t.operator,
            "/packages?created_after=2000-01-01T00:00:00Z&created_before=2000-01-02T00:00:00Z",
        )
        .await?;
    ensure!(names(&v).is_empty(), "time window: {v}");
    let got = app.get_json(&t.operator, "/packages?limit=1001").await?;
    assert_problem(&got, 422, "invalid_query");
    let got = app.get_json(&t.operator, "/packages?cursor=%%%").await?;
    assert_problem(&got, 422, "invalid_query");

    // Pages of 5 stay stable while packages are being created.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/packages?producer={PRODUCER}&limit=5&cursor={c}"),
            None => format!("/packages?producer={PRODUCER}&limit=5"),
        };
        let (s, v) = app.get_json(&t.operator, &path).await?;
        ensure!(s == 200, "{v}");
        seen.extend(names(&v));
        app.create_package_as(
            &t.producer,
            PRODUCER,
            &format!("late-{extra}"),
            "transient",
            json!({}),
        )
        .await?;
        extra += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("pkg-{i}")).collect();
    ensure!(
        seen == expected,
        "every package once, newest first, none of the late ones: {seen:?}"
    );
    Ok(())
}

/// A `guide-board` package whose `created_at` is moved to `at` behind the app's back
/// (the API stamps the present; ties and older rows have to be made). Returns its id.
async fn package_created_at(
    app: &TestApp,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<String> {
    let pid = id(&app.create_package(name, "transient").await?);
    let sql = format!(
        "UPDATE artifact_packages SET created_at = '{}', created_epoch = {} WHERE id = '{pid}'",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.timestamp()
    );
    ensure!(run_sql(app, &sql).await? == 1, "{sql}");
    Ok(pid)
}

/// One page of `guide-board` package ids, and the next cursor.
async fn package_page(
    app: &TestApp,
    limit: u32,
    cursor: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    let mut path = format!("/packages?producer={PRODUCER}&limit={limit}");
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={c}"));
    }
    let (s, v) = app.get_json(&app.tokens.operator, &path).await?;
    ensure!(s == 200, "{path}: {s} {v}");
    let ids = v["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(id)
        .collect();
    Ok((ids, v["next_cursor"].as_str().map(str::to_string)))
}

/// Keyset pages stay exact where timestamps tie (issue 19, item 5): packages sharing one
/// `created_at` second are split across pages by id, older ones follow, and packages
/// written mid-listing move nothing already listed: each row is listed once, none is
/// skipped, and a late row shows up exactly when it sorts after the cursor.
pub async fn pagination_is_stable_across_equal_and_older_timestamps(cfg: Config) -> Result<()> {
    use chrono::{Duration, SubsecRound, Utc};
    let app = start!(cfg);
    let tie = Utc::now().trunc_subsecs(0) - Duration::days(1);
    let older = tie - Duration::seconds(60);
    // (created_at, id): the list's order is this, descending.
    let mut rows = Vec::new();
    for i in 0..7 {
        rows.push((
            tie,
            package_created_at(&app, &format!("tie-{i}"), tie).await?,
        ));
    }
    for i in 0..3 {
        rows.push((
            older,
            package_created_at(&app, &format!("old-{i}"), older).await?,
        ));
    }
    let in_order = |rows: &[(chrono::DateTime<Utc>, String)]| -> Vec<String> {
        let mut sorted = rows.to_vec();
        sorted.sort_by(|a, b| b.cmp(a));
        sorted.into_iter().map(|(_, pid)| pid).collect()
    };
    let (all, next) = package_page(&app, 1000, None).await?;
    ensure!(
        next.is_none() && all == in_order(&rows),
        "one page: {all:?}"
    );

    // Pages of 3: the first two boundaries fall inside the tied second.
    let (first, cursor) = package_page(&app, 3, None).await?;
    ensure!(first == all[..3], "first page: {first:?}");
    let cursor_key = rows
        .iter()
        .find(|(_, pid)| *pid == first[2])
        .context("the first page's last row")?
        .clone();
    // Written mid-listing: one in the tied second (a newer id), one older than all.
    let late_tie = (tie, package_created_at(&app, "late-tie", tie).await?);
    let late_old = older - Duration::hours(1);
    let late_old = (
        late_old,
        package_created_at(&app, "late-old", late_old).await?,
    );
    rows.push(late_tie.clone());
    rows.push(late_old.clone());

    let mut seen = first;
    let mut cursor = cursor;
    while let Some(c) = cursor {
        let (ids, next) = package_page(&app, 3, Some(&c)).await?;
        seen.extend(ids);
        cursor = next;
    }
    // After the first page, exactly the rows that sort after its last one, in order.
    let mut want = all[..3].to_vec();
    let after: Vec<_> = rows.iter().filter(|r| **r < cursor_key).cloned().collect();
    want.extend(in_order(&after));
    ensure!(seen == want, "pages: {seen:?}\nwant: {want:?}");
    ensure!(
        !seen.contains(&late_tie.1),
        "a newer id in the tied second sorts before the cursor: not listed"
    );
    ensure!(
        seen.iter().filter(|pid| **pid == late_old.1).count() == 1,
        "the late older row is listed once"
    );
    let (all, _) = package_page(&app, 1000, None).await?;
    ensure!(
        all == in_order(&rows),
        "every row, late ones included: {all:?}"
    );
    Ok(())
}

pub async fn retention_extensions_and_holds(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let t = &app.tokens;
    let pkg = app.create_package("kept", "raw-evidence").await?;
    let pid = id(&pkg);
    let created = chrono::DateTime::parse_from_rfc3339(pkg["created_at"].as_str().unwrap())?;
    let expires = chrono::DateTime::parse_from_rfc3339(pkg["expires_at"].as_str().unwrap())?;
    ensure!(
        (expires - created).num_days() == 90,
        "raw-evidence is 90 days: {pkg}"
    );
    let perm = app.create_package("forever", "permanent-record").await?;
    ensure!(perm["expires_at"].is_null(), "{perm}");

    let later =
        (expires + chrono::Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let earlier =
        (expires - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ext = format!("/packages/{pid}/retention/extensions");
    let got = app
        .post_json(
            &t.operator,
            &ext,
            &json!({"new_expires_at": earlier, "reason": "shorter"}),
        )
        .await?;
    ensure!(got.0 == 422, "an extension never shortens: {got:?}");
    let (s, ev) = app
        .post_json(
            &t.operator,
            &ext,
            &json!({"new_expires_at": later, "reason": "audit"}),
        )
        .await?;
    ensure!(s == 201 && ev["event_type"] == "extended", "{s} {ev}");
    ensure!(
        ev["previous_expires_at"] == pkg["expires_at"] && ev["new_expires_at"] == later.as_str()
    );
    let now = app
        .get_json(&t.operator, &format!("/packages/{pid}"))
        .await?
        .1;
    ensure!(now["expires_at"] == later.as_str(), "{now}");

    let holds = format!("/packages/{pid}/retention/holds");
    let (s, h1) = app
        .post_json(&t.operator, &holds, &json!({"reason": "legal"}))
        .await?;
    ensure!(s == 201 && h1["released_at"].is_null());
    let (s, _) = app
        .post_json(&t.operator, &holds, &json!({"reason": "incident"}))
        .await?;
    ensure!(s == 201);
    let pkg_now = app
        .get_json(&t.operator, &format!("/packages/{pid}"))
        .await?
        .1;
    ensure!(pkg_now["holds"].as_array().unwrap().len() == 2, "{pkg_now}");
    let (s, r1) = app
        .post_json(
            &t.operator,
            &format!("{holds}/{}/release", id(&h1)),
            &json!({"reason": "closed"}),
        )
        .await?;
    ensure!(s == 200 && r1["released_at"].is_string(), "{s} {r1}");
    let got = app
        .post_json(
            &t.operator,
            &format!("{holds}/{}/release", id(&h1)),
            &json!({"reason": "again"}),
        )
        .await?;
    ensure!(got.0 == 409, "releasing twice: {got:?}");
    let got = app
        .post_json(
            &t.operator,
            &format!("{holds}/0190b9a2-0000-7000-8000-000000000000/release"),
            &json!({"reason": "x"}),
        )
        .await?;
    ensure!(got.0 == 404, "{got:?}");

    let (s, events) = app
        .get_json(&t.reader, &format!("/packages/{pid}/retention/events"))
        .await?;
    ensure!(s == 200, "{events}");
    let items = events.get("items").unwrap_or(&events);
    let types: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for want in [
        "default_rule_applied",
        "extended",
        "hold_applied",
        "hold_released",
    ] {
        ensure!(types.contains(&want), "{want} in {types:?}");
    }
    let audit = app.audit_types(&pid).await?;
    for want in ["retention_extended", "hold_applied", "hold_released"] {
        ensure!(audit.iter().any(|t| t == want), "{want} in {audit:?}");
    }
    Ok(())
}

/// Extends a package's retention as the operator; the `extended` retention event.
async fn extend(app: &TestApp, pid: &str, new_expires_at: &str, reason: &str) -> Result<Value> {
    let (s, ev) = app
        .post_json(
            &app.tokens.operator,
            &format!("/packages/{pid}/retention/extensions"),
            &json!({"new_expires_at": new_expires_at, "reason": reason}),
        )
        .await?;
    ensure!(s == 201, "extension: {s} {ev}");
    Ok(ev)
}

/// `at` plus `days`, in the contract's timestamp form.
fn days_after(at: &str, days: i64) -> Result<String> {
    let t = chrono::DateTime::parse_from_rfc3339(at)? + chrono::Duration::days(days);
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Extensions are recorded exactly (issue 19, item 3): each `retention_extended` audit
/// event carries the previous and new expiry and the reason byte for byte as sent, and the
/// manifest lists the extensions, oldest first, with the package's new `expires_at`.
pub async fn extensions_are_audited_and_in_the_manifest(cfg: Config) -> Result<()> {
    let app = start!(cfg);
    let p = app.tokens.producer.clone();
    let pkg = app.create_package("extended", "raw-evidence").await?;
    let pid = id(&pkg);
    let (s, f) = app.put_file(&p, &pid, "run.json", b"{}".to_vec()).await?;
    ensure!(s == 201, "{f}");
    let (s, fin) = app.finalize(&p, &pid).await?;
    ensure!(s == 200, "{fin}");

    let original = pkg["expires_at"]
        .as_str()
        .context("expires_at")?
        .to_string();
    // Reasons with what a careless store would change: spaces at the ends, a newline, a
    // tab, non-ASCII, quotes.
    let steps = [
        (
            days_after(&original, 30)?,
            "legal review: case #42\n\tsee \"ticket\" ünïcödé ✓",
        ),
        (days_after(&original, 45)?, "  incident 7, kept longer  "),
    ];
    let mut extensions = Vec::new();
    for (new_expires_at, reason) in &steps {
        let ev = extend(&app, &pid, new_expires_at, reason).await?;
        ensure!(ev["reason"] == *reason, "the event's reason: {ev}");
        extensions.push(ev);
    }

    let audited = app.audit_events(&pid, "retention_extended").await?;
    ensure!(
        audited.len() == steps.len(),
        "one audit event each: {audited:?}"
    );
    // Each extension starts from the expiry the one before it left.
    let previous = std::iter::once(original).chain(steps.iter().map(|(at, _)| at.clone()));
    for ((ev, (new_expires_at, reason)), previous) in extensions.iter().zip(&steps).zip(previous) {
        let audit = audited
            .iter()
            .find(|a| a["details"]["retention_event_id"] == ev["id"])
            .with_context(|| format!("audit event of {ev}"))?;
        let want = json!({
            "retention_event_id": ev["id"],
            "previous_expires_at": previous,
            "new_expires_at": new_expires_at,
            "reason": reason,
        });
        ensure!(audit["details"] == want, "details: {audit}\nwant: {want}");
        ensure!(audit["actor"] == "ops-team", "{audit}");
    }

    let (s, m) = app
        .get_json(&app.tokens.reader, &format!("/packages/{pid}/manifest"))
        .await?;
    ensure!(s == 200, "manifest: {s} {m}");
    let newest = steps.last().map(|(at, _)| at.as_str());
    ensure!(
        m["retention"]["expires_at"].as_str() == newest
            && m["package"]["expires_at"].as_str() == newest,
        "the manifest's expiry is the last extension's: {m}"
    );
    ensure!(
        m["retention"]["extensions"] == json!(extensions),
        "the manifest's extensions: {}\nwant: {}",
        m["retention"]["extensions"],
        json!(extensions)
    );
    Ok(())
}

/// Standard base64 with padding, written out so the test does not share the app's encoder.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group.len();
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
