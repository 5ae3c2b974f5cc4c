//! The S3 backend against the real S3 server (Ceph RGW by default): failure modes and the
//! features only it has. The registry suite itself runs on S3 in `api.rs`.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::proxy::Proxy;
use artifact_store_tests::{
    Bytes, Config, Metadata, TestApp, content_key, id, pseudo_random, read_json, s3, s3_env,
    sha256_hex, start,
};
use std::time::Duration;

fn s3_cfg() -> Config {
    Config::new(Metadata::Sqlite, Bytes::S3)
}

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_answers_503_and_writes_nothing() {
    check(
        async {
            let app = start!(s3_cfg().var("s3_secret_access_key", "definitely-not-the-secret"));
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("denied", "transient").await?);
            let r = app
                .req(
                    reqwest::Method::PUT,
                    Some(&p),
                    &format!("/packages/{pid}/files/a.bin"),
                )
                .body(pseudo_random(1, 100_000))
                .send()
                .await?;
            ensure!(
                r.headers().contains_key("retry-after"),
                "503 carries Retry-After"
            );
            let got = read_json(r).await?;
            artifact_store_tests::assert_problem(&got, 503, "backend_unavailable");
            let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
            ensure!(pkg["file_count"] == 0);
            let env = s3_env()?.context("s3")?;
            let keys = s3::list_keys(&env, app.s3_prefix.as_ref().unwrap())?;
            ensure!(keys.is_empty(), "nothing written: {keys:?}");
            // Health shows the backend down but the service up.
            let (s, health) = app.get_json(&p, "/health").await?;
            ensure!(s == 200, "{health}");
            ensure!(
                health["status"] == "degraded" && health["metadata"] == "ok",
                "{health}"
            );
            let s3b = health["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["id"] == "s3")
                .context("s3 in health")?;
            ensure!(s3b["status"] == "unavailable", "{health}");
            ensure!(
                !app.log_tail().contains("definitely-not-the-secret"),
                "secret never logged"
            );
            Ok(())
        }
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_redirect_and_prefix() {
    check(
        async {
            let app = start!(s3_cfg());
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("redirect", "transient").await?);
            let bytes = pseudo_random(2, 1_500_000);
            let (s, f) = app.put_file(&p, &pid, "r.bin", bytes.clone()).await?;
            ensure!(s == 201, "{f}");
            let r = app
                .req(
                    reqwest::Method::GET,
                    Some(&app.tokens.reader),
                    &format!("/files/{}/download?redirect=1", id(&f)),
                )
                .send()
                .await?;
            ensure!(r.status() == 302, "redirect: {}", r.status());
            let location = r.headers()["location"].to_str()?.to_string();
            ensure!(
                location.contains("X-Amz-Signature="),
                "presigned: {location}"
            );
            let got = reqwest::get(&location).await?;
            ensure!(got.status() == 200);
            ensure!(sha256_hex(&got.bytes().await?) == sha256_hex(&bytes));
            // Unauthorized callers get no URL.
            let r = app
                .req(
                    reqwest::Method::GET,
                    Some(&app.tokens.other_producer),
                    &format!("/files/{}/download?redirect=1", id(&f)),
                )
                .send()
                .await?;
            ensure!(r.status() == 404);
            let types = app.audit_types(&pid).await?;
            ensure!(
                types.iter().any(|t| t == "retrieval_requested"),
                "{types:?}"
            );
            // The object lives under the configured prefix at its content address.
            let env = s3_env()?.context("s3")?;
            let prefix = app.s3_prefix.clone().unwrap();
            let keys = s3::list_keys(&env, &prefix)?;
            let want = content_key(&prefix, &sha256_hex(&bytes));
            ensure!(keys.contains(&want), "{want} in {keys:?}");
            ensure!(
                keys.iter().all(|k| !k.contains("staging/")),
                "no staging leftovers: {keys:?}"
            );
            // ... and only there: the bucket has no copy at the unprefixed address.
            let bare = want.strip_prefix(&prefix).context("prefixed key")?;
            let unprefixed = s3::list_keys(&env, bare)?;
            ensure!(
                unprefixed.is_empty(),
                "no object outside the prefix: {unprefixed:?}"
            );
            Ok(())
        }
        .await,
    )
}

/// The presigned URL `?redirect=1` answers with (302), as the reader.
async fn presigned_url(app: &TestApp, file_id: &str) -> Result<String> {
    let r = app
        .req(
            reqwest::Method::GET,
            Some(&app.tokens.reader),
            &format!("/files/{file_id}/download?redirect=1"),
        )
        .send()
        .await?;
    ensure!(r.status() == 302, "redirect: {}", r.status());
    Ok(r.headers()["location"].to_str()?.to_string())
}

/// A presigned URL stops working once `s3_presign_seconds` have passed: S3 itself refuses
/// it with 403, so a leaked URL is good for that long only (issue 19, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_url_expires_after_s3_presign_seconds() {
    check(
        async {
            // 3 s, not less: the signature's date has whole seconds, so a URL lives at
            // least 2 s, time for the first fetch on a busy machine.
            let app = start!(s3_cfg().var("s3_presign_seconds", "3"));
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("expiring", "transient").await?);
            let bytes = pseudo_random(31, 100_000);
            let (s, f) = app.put_file(&p, &pid, "e.bin", bytes.clone()).await?;
            ensure!(s == 201, "{f}");
            let url = presigned_url(&app, &id(&f)).await?;
            ensure!(url.contains("X-Amz-Expires=3&"), "signed for 3 s: {url}");
            let fresh = reqwest::get(&url).await?;
            ensure!(
                fresh.status() == 200,
                "a fresh URL works: {}",
                fresh.status()
            );
            ensure!(fresh.bytes().await?[..] == bytes[..]);
            tokio::time::sleep(Duration::from_secs(5)).await;
            let expired = reqwest::get(&url).await?;
            ensure!(
                expired.status() == 403,
                "an expired URL is refused: {}",
                expired.status()
            );
            Ok(())
        }
        .await,
    )
}

/// Once its package is deleted, a file's redirect answers 410 `gone` and hands out no URL;
/// a URL handed out before no longer finds the object (S3 answers 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_of_a_deleted_package_is_gone() {
    check(
        async {
            let app = start!(s3_cfg().var("retention_transient_seconds", "1"));
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("deleted", "transient").await?);
            let (s, f) = app
                .put_file(&p, &pid, "d.bin", pseudo_random(32, 100_000))
                .await?;
            ensure!(s == 201, "{f}");
            let fid = id(&f);
            let (s, fin) = app.finalize(&p, &pid).await?;
            ensure!(s == 200, "{fin}");
            let before = presigned_url(&app, &fid).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let report = app.sweep().await?;
            ensure!(report["deleted"] == 1, "{report}");

            let r = app
                .req(
                    reqwest::Method::GET,
                    Some(&app.tokens.reader),
                    &format!("/files/{fid}/download?redirect=1"),
                )
                .send()
                .await?;
            ensure!(!r.headers().contains_key("location"), "no URL handed out");
            artifact_store_tests::assert_problem(&read_json(r).await?, 410, "gone");
            let old = reqwest::get(&before).await?;
            ensure!(
                old.status() == 404,
                "the object is gone from S3: {}",
                old.status()
            );
            Ok(())
        }
        .await,
    )
}

/// The SSE header goes out, signed, on writes when `s3_sse` is set (seen on the wire
/// through a forwarding proxy in front of the real server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_header_is_sent_when_configured() {
    check(
        async {
            let Some(env) = s3_env()? else { return Ok(()) };
            let upstream = env.endpoint.trim_start_matches("http://").to_string();
            // Two proxies in a row: the first sees the header, the second sees it among
            // the signed headers of the Authorization header (`;`-separated, sorted).
            let signed = Proxy::start(&upstream, ";x-amz-server-side-encryption").await?;
            let signed_addr = signed.addr.to_string();
            let proxy = Proxy::start(&signed_addr, "x-amz-server-side-encryption: AES256").await?;
            let app = start!(
                s3_cfg()
                    .var("s3_endpoint", format!("http://{}", proxy.addr))
                    .var("s3_sse", "AES256")
            );
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("sse", "transient").await?);
            let got = app
                .put_file(&p, &pid, "s.bin", pseudo_random(3, 10_000))
                .await?;
            // Ceph RGW 16 refuses SSE over plain HTTP (400 InvalidRequest): the upload must
            // fail as a backend refusal, never answer 201 for bytes that were not stored.
            ensure!(
                got.0 == 503 && got.1["code"] == "backend_unavailable",
                "SSE refused by this Ceph: {got:?}\n{}",
                app.log_tail()
            );
            ensure!(
                proxy.hits() >= 1,
                "SSE header seen on the wire:\n{}",
                app.log_tail()
            );
            ensure!(
                signed.hits() >= 1 && signed.hits() == proxy.hits(),
                "the SSE header is signed on every request that carries it: {} of {}",
                signed.hits(),
                proxy.hits()
            );
            // Without the setting, no SSE header.
            let plain = Proxy::start(&upstream, "x-amz-server-side-encryption").await?;
            let app2 = start!(s3_cfg().var("s3_endpoint", format!("http://{}", plain.addr)));
            let pid = id(&app2.create_package("plain", "transient").await?);
            let (s, _) = app2
                .put_file(
                    &app2.tokens.producer,
                    &pid,
                    "p.bin",
                    pseudo_random(4, 10_000),
                )
                .await?;
            ensure!(s == 201);
            ensure!(plain.hits() == 0, "no SSE header unless configured");
            Ok(())
        }
        .await,
    )
}

/// Multipart uploads (files over the threshold, here 5 MiB), with small parts to exercise many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_round_trip() {
    check(
        async {
            let app = start!(
                s3_cfg()
                    .var("s3_multipart_threshold", "5242880")
                    .var("s3_part_size", "5242880")
            );
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("multipart", "transient").await?);
            let bytes = pseudo_random(8, 23 * 1024 * 1024 + 5);
            // Staged (no declared digest): a raw PUT with one would be a single PutObject.
            let (s, f) = app
                .post_file(&p, &pid, "m.bin", bytes.clone(), None)
                .await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            let (s, got) = app.download(&p, &id(&f)).await?;
            ensure!(s == 200 && sha256_hex(&got) == sha256_hex(&bytes));
            let env = s3_env()?.context("s3")?;
            let etag = s3::etag(&env, &object_key(&app, &bytes))?;
            ensure!(etag.ends_with("-5\""), "stored as 5 parts: {etag}");
            let uploads = s3::list_multipart_uploads(&env, app.s3_prefix.as_ref().unwrap())?;
            ensure!(
                uploads.is_empty(),
                "no multipart upload left open: {uploads:?}"
            );
            Ok(())
        }
        .await,
    )
}

/// S3's smallest part, used as threshold and part size so a file is stored in parts.
const PART: u64 = 5 * 1024 * 1024;

/// Ranges on an object S3 stores in parts (issue 19, item 1): inside one part, across a
/// part boundary, suffix and open-ended ranges, each compared byte for byte; several
/// ranges in one header are ignored, as the contract says, and the whole file answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_on_a_multipart_object() {
    check(
        async {
            let app = start!(
                s3_cfg()
                    .var("s3_multipart_threshold", PART.to_string())
                    .var("s3_part_size", PART.to_string())
            );
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("parts", "transient").await?);
            // Two whole parts and a short third.
            let bytes = pseudo_random(30, (2 * PART + 1_000_003) as usize);
            // The form upload is staged through the multipart path (a raw PUT with a
            // declared digest would be one PutObject).
            let (s, f) = app
                .post_file(&p, &pid, "parts.bin", bytes.clone(), None)
                .await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            let fid = id(&f);
            let env = s3_env()?.context("s3")?;
            let etag = s3::etag(&env, &object_key(&app, &bytes))?;
            ensure!(etag.ends_with("-3\""), "stored as 3 parts: {etag}");

            let n = bytes.len() as u64;
            let cases = [
                ("inside part 1", 1000, 2000),
                ("inside part 2", PART + 100, PART + 199),
                ("across parts 1|2", PART - 10, PART + 9),
                ("part 2 and a byte either side", PART - 1, 2 * PART),
                ("exactly part 2", PART, 2 * PART - 1),
                ("across parts 2|3 to the end", 2 * PART - 3, n - 1),
            ];
            for (what, start, end) in cases {
                let range = if end == n - 1 {
                    format!("bytes={start}-")
                } else {
                    format!("bytes={start}-{end}")
                };
                check_range(&app, &fid, &bytes, &range, start, end)
                    .await
                    .context(what)?;
            }
            // Suffixes: within the last part, and reaching back across a boundary.
            check_range(&app, &fid, &bytes, "bytes=-100", n - 100, n - 1).await?;
            let back = n - (PART - 50);
            let range = format!("bytes=-{back}");
            check_range(&app, &fid, &bytes, &range, PART - 50, n - 1).await?;

            let (s, cr, body) = app.download_range(&p, &fid, "bytes=0-1,5-6").await?;
            ensure!(s == 200 && cr.is_none(), "multi-range: {s} {cr:?}");
            ensure!(body == bytes, "multi-range serves the whole file");
            Ok(())
        }
        .await,
    )
}

/// One range answers 206, `Content-Range: bytes start-end/size` and exactly those bytes.
async fn check_range(
    app: &TestApp,
    file_id: &str,
    bytes: &[u8],
    range: &str,
    start: u64,
    end: u64,
) -> Result<()> {
    let (s, cr, body) = app
        .download_range(&app.tokens.reader, file_id, range)
        .await?;
    ensure!(s == 206, "{range}: {s}");
    let want = format!("bytes {start}-{end}/{}", bytes.len());
    ensure!(cr.as_deref() == Some(want.as_str()), "{range}: {cr:?}");
    ensure!(
        body[..] == bytes[start as usize..=end as usize],
        "{range}: the bytes differ"
    );
    Ok(())
}

/// The object key of `bytes` under the app's S3 prefix.
fn object_key(app: &TestApp, bytes: &[u8]) -> String {
    content_key(app.s3_prefix.as_ref().unwrap(), &sha256_hex(bytes))
}

/// A raw PUT with a declared digest goes to S3 in one request that S3 checks: a wrong
/// digest answers 422 and leaves no object (none staged either), a body cut off mid-way
/// leaves nothing, the right digest stores the bytes once, at their content address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_digest_is_checked_by_s3_and_nothing_is_staged() {
    check(
        async {
            let app = start!(s3_cfg());
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("declared", "transient").await?);
            let env = s3_env()?.context("s3")?;
            let prefix = app.s3_prefix.clone().unwrap();
            let bytes = pseudo_random(3, 3_000_000);

            let r = app
                .req(
                    reqwest::Method::PUT,
                    Some(&p),
                    &format!("/packages/{pid}/files/d.bin"),
                )
                .header("x-artifact-sha256", sha256_hex(b"not these bytes"))
                .body(bytes.clone())
                .send()
                .await?;
            artifact_store_tests::assert_problem(&read_json(r).await?, 422, "digest_mismatch");
            let keys = s3::list_keys(&env, &prefix)?;
            ensure!(keys.is_empty(), "a refused upload leaves nothing: {keys:?}");

            // Half the body, then the connection closes.
            {
                use tokio::io::AsyncWriteExt;
                let addr = app.base_url.trim_start_matches("http://").to_string();
                let mut sock = tokio::net::TcpStream::connect(&addr).await?;
                let head = format!(
                    "PUT /packages/{pid}/files/d.bin HTTP/1.1\r\nHost: {addr}\r\n\
                     Authorization: Bearer {p}\r\nx-artifact-sha256: {}\r\n\
                     Content-Length: {}\r\n\r\n",
                    sha256_hex(&bytes),
                    bytes.len()
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&bytes[..bytes.len() / 2]).await?;
                sock.flush().await?;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let keys = s3::list_keys(&env, &prefix)?;
            ensure!(keys.is_empty(), "a cut-off upload leaves nothing: {keys:?}");
            let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
            ensure!(pkg["file_count"] == 0, "{pkg}");

            let (s, f) = app.put_file(&p, &pid, "d.bin", bytes.clone()).await?;
            ensure!(s == 201, "{f}");
            ensure!(f["size_bytes"] == bytes.len() as u64 && f["sha256"] == sha256_hex(&bytes));
            let keys = s3::list_keys(&env, &prefix)?;
            ensure!(
                keys == vec![object_key(&app, &bytes)],
                "one object at the content address: {keys:?}"
            );
            let (s, got) = app.download(&app.tokens.reader, &id(&f)).await?;
            ensure!(s == 200 && got == bytes, "download intact");
            ensure!(app.verify_audit().await?["valid"] == true);
            Ok(())
        }
        .await,
    )
}

/// An S3 server that takes connections and bytes but never answers (a hung RGW, a black
/// hole in the network) fails each request after `s3_timeout_seconds`, 503 with
/// `Retry-After`, instead of holding it: uploads on both paths (declared digest, spliced;
/// staged through the guest) and downloads. Once the server answers again, so does the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_s3_fails_requests_instead_of_hanging_them() {
    check(
        async {
            let Some(env) = s3_env()? else { return Ok(()) };
            let upstream = env.endpoint.trim_start_matches("http://").to_string();
            let proxy = Proxy::start(&upstream, "x-amz-date").await?;
            let app = start!(
                s3_cfg()
                    .var("s3_endpoint", format!("http://{}", proxy.addr))
                    .var("s3_timeout_seconds", "2")
            );
            let p = app.tokens.producer.clone();
            let pid = id(&app.create_package("silent", "transient").await?);
            let kept = pseudo_random(20, 300_000);
            let (s, f) = app.put_file(&p, &pid, "kept.bin", kept.clone()).await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            let kept_id = id(&f);

            proxy.set_silent(true);
            // Far longer than the timeout (and its retries) but short of a hang.
            let bounded = std::time::Duration::from_secs(45);
            let declared = tokio::time::timeout(
                bounded,
                app.put_file(&p, &pid, "declared.bin", pseudo_random(21, 300_000)),
            )
            .await
            .context("the spliced upload hung on a silent S3")??;
            ensure!(
                declared.0 == 503 && declared.1["code"] == "backend_unavailable",
                "spliced upload: {declared:?}\n{}",
                app.log_tail()
            );
            let staged = tokio::time::timeout(bounded, async {
                let r = app
                    .req(
                        reqwest::Method::PUT,
                        Some(&p),
                        &format!("/packages/{pid}/files/staged.bin"),
                    )
                    .body(pseudo_random(22, 300_000))
                    .send()
                    .await?;
                ensure!(
                    r.headers().contains_key("retry-after"),
                    "503 carries Retry-After"
                );
                read_json(r).await
            })
            .await
            .context("the staged upload hung on a silent S3")??;
            ensure!(
                staged.0 == 503 && staged.1["code"] == "backend_unavailable",
                "staged upload: {staged:?}\n{}",
                app.log_tail()
            );
            let download = tokio::time::timeout(bounded, app.download(&p, &kept_id))
                .await
                .context("the download hung on a silent S3")??;
            ensure!(download.0 == 503, "download: {}", download.0);

            proxy.set_silent(false);
            let again = pseudo_random(23, 300_000);
            let (s, f) = app.put_file(&p, &pid, "again.bin", again.clone()).await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            let (s, got) = app.download(&p, &id(&f)).await?;
            ensure!(s == 200 && got == again, "download after recovery");
            let (s, got) = app.download(&p, &kept_id).await?;
            ensure!(s == 200 && got == kept, "the earlier file is intact");
            let pkg = app.get_json(&p, &format!("/packages/{pid}")).await?.1;
            ensure!(
                pkg["file_count"] == 2,
                "only the answered uploads exist: {pkg}"
            );
            Ok(())
        }
        .await,
    )
}

/// A form with `relative_path`, then `fields`, then `file` holding `bytes`.
async fn post_form(
    app: &TestApp,
    pid: &str,
    path: &str,
    fields: &[(&str, String)],
    bytes: &[u8],
) -> Result<(u16, serde_json::Value)> {
    let mut all = vec![("relative_path", path.to_string())];
    all.extend(fields.iter().cloned());
    app.post_form(&app.tokens.producer, pid, &all, bytes).await
}

/// A form that declares its file's `sha256` and `size` before the file goes straight to
/// S3 as one PutObject that S3 checks, like a raw PUT with a declared digest: no staging
/// copy (no `x-amz-copy-source` on the wire), while a form declaring the digest alone is
/// staged and copied. A declared size the file does not have stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_declaring_size_and_digest_goes_straight_to_s3() {
    check(
        async {
            let Some(env) = s3_env()? else { return Ok(()) };
            let upstream = env.endpoint.trim_start_matches("http://").to_string();
            let copies = Proxy::start(&upstream, "x-amz-copy-source").await?;
            let app = start!(s3_cfg().var("s3_endpoint", format!("http://{}", copies.addr)));
            let pid = id(&app.create_package("form", "transient").await?);
            let prefix = app.s3_prefix.clone().unwrap();
            let bytes = pseudo_random(21, 3_000_017);
            let n = bytes.len();
            let declare = |sha: &[u8], size: usize| {
                vec![("sha256", sha256_hex(sha)), ("size", size.to_string())]
            };

            let (s, f) = post_form(&app, &pid, "a.bin", &declare(&bytes, n), &bytes).await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            ensure!(
                f["size_bytes"] == n as u64 && f["sha256"] == sha256_hex(&bytes),
                "{f}"
            );
            ensure!(copies.hits() == 0, "declared: nothing staged and copied");
            let keys = s3::list_keys(&env, &prefix)?;
            ensure!(keys == vec![object_key(&app, &bytes)], "{keys:?}");
            let (s, got) = app.download(&app.tokens.reader, &id(&f)).await?;
            ensure!(s == 200 && got == bytes, "download intact");

            // The digest alone: staged, then copied to the content address.
            let other = pseudo_random(22, 100_000);
            let digest_only = vec![("sha256", sha256_hex(&other))];
            let (s, f) = post_form(&app, &pid, "b.bin", &digest_only, &other).await?;
            ensure!(
                s == 201 && copies.hits() > 0,
                "staged: {f} {}",
                copies.hits()
            );

            // A size larger than the file: the bytes S3 is sent run into the form's end,
            // so they do not hash to the digest and S3 stores nothing.
            let third = pseudo_random(23, 200_000);
            let (s, v) = post_form(
                &app,
                &pid,
                "c.bin",
                &declare(&third, third.len() + 10),
                &third,
            )
            .await?;
            ensure!(s == 422 && v["code"] == "digest_mismatch", "{s} {v}");
            // A file longer than declared (the digest is of its declared prefix): S3 takes
            // the prefix, but the form does not end there, so nothing is committed.
            let (s, v) = post_form(
                &app,
                &pid,
                "d.bin",
                &declare(&third[..third.len() - 1], third.len() - 1),
                &third,
            )
            .await?;
            ensure!(s == 400 && v["code"] == "bad_request", "{s} {v}");
            // Staged (no digest), a wrong size is 422 `size_mismatch`.
            let size_only = vec![("size", (third.len() + 1).to_string())];
            let (s, v) = post_form(&app, &pid, "e.bin", &size_only, &third).await?;
            ensure!(s == 422 && v["code"] == "size_mismatch", "{s} {v}");

            let pkg = app
                .get_json(&app.tokens.producer, &format!("/packages/{pid}"))
                .await?
                .1;
            ensure!(pkg["file_count"] == 2, "only the two good files: {pkg}");
            ensure!(app.verify_audit().await?["valid"] == true);
            Ok(())
        }
        .await,
    )
}
