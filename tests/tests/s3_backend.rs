//! The S3 backend against the real S3 server (Ceph RGW by default): failure modes and the
//! features only it has. The registry suite itself runs on S3 in `api.rs`.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::proxy::Proxy;
use artifact_store_tests::{
    Bytes, Config, Metadata, content_key, id, pseudo_random, read_json, s3, s3_env, sha256_hex,
    start,
};

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
            let s3b = health["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["id"] == "s3")
                .context("s3 in health")?;
            ensure!(s3b["status"] != "ok", "{health}");
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
            let (s, f) = app.put_file(&p, &pid, "m.bin", bytes.clone()).await?;
            ensure!(s == 201, "{f}\n{}", app.log_tail());
            let (s, got) = app.download(&p, &id(&f)).await?;
            ensure!(s == 200 && sha256_hex(&got) == sha256_hex(&bytes));
            let env = s3_env()?.context("s3")?;
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

/// The object key of `bytes` under the app's S3 prefix.
fn object_key(app: &artifact_store_tests::TestApp, bytes: &[u8]) -> String {
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
