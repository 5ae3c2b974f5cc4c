//! End-to-end tests: real guest components (tests/fixtures), real HTTP, real SQLite/Postgres.

mod common;

use common::{fixtures, manifest, repo_root, temp_dir};
use futures::StreamExt;
use harness::{App, AppOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One compile cache for all tests, so each component is compiled once per run.
fn shared_cache() -> PathBuf {
    repo_root().join("target/harness-tests/cache")
}

/// Tests hold this shared; the memory test holds it exclusively so that no other test's work
/// (compiles, buffers) lands in its peak-RSS window.
static MEMORY_QUIET: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn options(dir: &Path) -> AppOptions {
    AppOptions {
        state_dir: Some(dir.join(".spin")),
        variables: vec![("token".into(), "s3cret".into())],
        env: Some(Default::default()),
        cache_dir: Some(shared_cache()),
        runtime_config: None,
        limits: Default::default(),
    }
}

async fn start(name: &str, cron_expr: &str) -> (App, harness::RunningApp, PathBuf) {
    let dir = temp_dir(name);
    let app = App::load(manifest(&dir, cron_expr), options(&dir)).expect("load app");
    let running = app.serve("127.0.0.1:0").await.expect("serve");
    (app, running, dir)
}

/// A schedule that never fires in practice (Feb 31st).
const NEVER: &str = "0 0 0 31 2 *";

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_and_spin_headers() {
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running, _) = start("routes", NEVER).await;
    let base = running.base_url();
    assert_eq!(
        get(&format!("{base}/exact")).await,
        (200, "hello from /exact".into())
    );
    let (s, body) = get(&format!("{base}/items/42/headers")).await;
    assert_eq!(s, 200);
    // /items/42/headers is not /items/:id (one segment) so the fallback /... serves it.
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-path-info"], "/items/42/headers");

    let (_, body) = get(&format!("{base}/api/a/headers?x=1")).await;
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    println!("spin headers: {h}");
    assert_eq!(h["spin-matched-route"], "/api/...");
    assert_eq!(h["spin-component-route"], "/api");
    assert_eq!(h["spin-raw-component-route"], "/api/...");
    assert_eq!(h["spin-path-info"], "/a/headers");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(
        h["spin-full-url"],
        format!("{base}/api/a/headers?x=1").as_str()
    );
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    // A `:id` route: the guest sees the param header (its own path ends in the id).
    let r = reqwest::get(format!("{base}/items/headers")).await.unwrap();
    let h: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(h["spin-matched-route"], "/items/:id");
    assert_eq!(h["spin-path-match-id"], "headers");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_kv_variables_round_trip_and_access_denied() {
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running, dir) = start("state", NEVER).await;
    let base = running.base_url();
    let (s, body) = get(&format!("{base}/sqlite")).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("cols=body,data,r,n"), "{body}");
    assert!(
        body.contains("Text(\"hello\")") && body.contains("Blob([1, 2, 3])"),
        "{body}"
    );
    assert!(
        body.contains("Real(1.5)") && body.contains("n=Value::Null") && body.contains("changes=1"),
        "{body}"
    );
    assert!(dir.join(".spin/sqlite_db.db").exists());

    // The grant is one database: no other file may be attached or written.
    let elsewhere = dir.join("elsewhere.db");
    for sql in [
        format!("ATTACH DATABASE '{}' AS other", elsewhere.display()),
        format!("VACUUM INTO '{}'", elsewhere.display()),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/sqlite-exec"))
            .body(sql.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            status == 500 && body.contains("attached"),
            "{sql}: {status} {body}"
        );
        assert!(!elsewhere.exists(), "{sql} created {}", elsewhere.display());
    }
    let r = reqwest::Client::new()
        .post(format!("{base}/sqlite-exec"))
        .body("CREATE TABLE IF NOT EXISTS granted (x)")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "its own database stays writable");

    let (s, body) = get(&format!("{base}/sqlite?db=other")).await;
    assert!(s == 403 && body.contains("AccessDenied"), "{s} {body}");
    let (s, body) = get(&format!("{base}/restricted/sqlite")).await;
    assert!(s == 403 && body.contains("AccessDenied"), "{s} {body}");

    let (s, body) = get(&format!("{base}/kv")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        "v1=Some(\"v1\") big=Some(1048576) exists=true gone=true keys=[\"k2\"]"
    );
    let (s, body) = get(&format!("{base}/kv?store=other")).await;
    assert!(s == 403 && body.contains("AccessDenied"), "{s} {body}");
    let (s, body) = get(&format!("{base}/restricted/kv")).await;
    assert!(s == 403 && body.contains("AccessDenied"), "{s} {body}");

    assert_eq!(
        get(&format!("{base}/var?name=greeting")).await,
        (200, "hi there".into())
    );
    assert_eq!(
        get(&format!("{base}/var?name=token")).await,
        (200, "s3cret".into())
    );
    assert_eq!(
        get(&format!("{base}/config?name=greeting")).await,
        (200, "hi there".into())
    );
    let (s, body) = get(&format!("{base}/var?name=nope")).await;
    assert_eq!(s, 404);
    assert!(body.contains("Undefined"), "{body}");
    assert_eq!(
        get(&format!("{base}/config?name=nope")).await,
        (404, "none".into())
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sqlite_writers_wait_instead_of_failing() {
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running, _) = start("sqlite-concurrent", NEVER).await;
    let base = running.base_url();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let url = format!("{base}/sqlite");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for t in tasks {
        let (s, body) = t.await.unwrap();
        assert_eq!(s, 200, "{body}");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn variables_precedence_and_required() {
    let _shared = MEMORY_QUIET.read().await;
    let dir = temp_dir("vars");
    let path = manifest(&dir, NEVER);
    // Missing required variable fails at start, naming it.
    let err = App::load(
        &path,
        AppOptions {
            state_dir: Some(dir.join(".spin")),
            cache_dir: Some(shared_cache()),
            runtime_config: None,
            variables: vec![],
            env: Some(Default::default()),
            limits: Default::default(),
        },
    )
    .err()
    .expect("required variable must fail");
    assert!(format!("{err:#}").contains("token"), "{err:#}");
    // Environment beats default; flag beats environment.
    let env = [
        ("SPIN_VARIABLE_GREETING".to_string(), "env".to_string()),
        ("SPIN_VARIABLE_TOKEN".to_string(), "t".to_string()),
    ]
    .into_iter()
    .collect();
    let app = App::load(
        &path,
        AppOptions {
            state_dir: Some(dir.join(".spin")),
            cache_dir: Some(shared_cache()),
            runtime_config: None,
            variables: vec![],
            env: Some(env),
            limits: Default::default(),
        },
    )
    .unwrap();
    let running = app.serve("127.0.0.1:0").await.unwrap();
    let base = running.base_url();
    assert_eq!(
        get(&format!("{base}/var?name=greeting")).await,
        (200, "env there".into())
    );
    running.shutdown().await;
    let app = App::load(
        &path,
        AppOptions {
            state_dir: Some(dir.join(".spin")),
            cache_dir: Some(shared_cache()),
            runtime_config: None,
            variables: vec![
                ("greeting".into(), "flag".into()),
                ("token".into(), "t".into()),
            ],
            env: Some(
                [("SPIN_VARIABLE_GREETING".to_string(), "env".to_string())]
                    .into_iter()
                    .collect(),
            ),
            limits: Default::default(),
        },
    )
    .unwrap();
    let running = app.serve("127.0.0.1:0").await.unwrap();
    let base = running.base_url();
    assert_eq!(
        get(&format!("{base}/var?name=greeting")).await,
        (200, "flag there".into())
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_manifest_names_the_field() {
    let _shared = MEMORY_QUIET.read().await;
    let dir = temp_dir("invalid");
    let path = manifest(&dir, NEVER);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("[component.exact]", "[component.exact]\nbogus_key = 1"),
    )
    .unwrap();
    let err = App::load(&path, options(&dir)).err().expect("must fail");
    assert!(format!("{err:#}").contains("bogus_key"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_import_fails_at_start_naming_it() {
    let _shared = MEMORY_QUIET.read().await;
    let dir = temp_dir("import");
    std::fs::copy(&fixtures().redis, dir.join("redis_guest.wasm")).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(
        &path,
        "spin_manifest_version = 2\n[application]\nname = \"r\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"r\"\n[component.r]\nsource = \"redis_guest.wasm\"\n",
    )
    .unwrap();
    let opts = AppOptions {
        state_dir: Some(dir.join(".spin")),
        ..Default::default()
    };
    let err = App::load(&path, opts).err().expect("must fail");
    let msg = format!("{err:#}");
    println!("{msg}");
    assert!(msg.contains("fermyon:spin/redis@2.0.0"), "{msg}");
    assert!(msg.contains("component `r`"), "{msg}");
}

/// A local upstream for outbound HTTP.
async fn upstream() -> std::net::SocketAddr {
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"pong"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_allowed_and_denied() {
    let _shared = MEMORY_QUIET.read().await;
    let up = upstream().await;
    let (_app, running, _) = start("outbound", NEVER).await;
    let base = running.base_url();
    let (s, body) = get(&format!("{base}/outbound?url=http://{up}/ping")).await;
    assert_eq!((s, body.as_str()), (200, "200 pong"));
    let (s, body) = get(&format!("{base}/restricted/outbound?url=http://{up}/ping")).await;
    assert_eq!(s, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // Scheme mismatch is denied as well (only http://127.0.0.1:* is granted).
    let (s, body) = get(&format!("{base}/outbound?url=https://{up}/ping")).await;
    assert_eq!(s, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_answers_500_and_server_keeps_serving() {
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running, _) = start("trap", NEVER).await;
    let base = running.base_url();
    for _ in 0..3 {
        let (s, _) = get(&format!("{base}/trap")).await;
        assert_eq!(s, 500);
        assert_eq!(get(&format!("{base}/exact")).await.0, 200);
    }
    running.shutdown().await;
}

fn proc_status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const STREAM_BYTES: u64 = 256 * 1024 * 1024;

fn body_stream() -> reqwest::Body {
    let chunk = bytes::Bytes::from(vec![b'a'; 256 * 1024]);
    let n = STREAM_BYTES / chunk.len() as u64;
    reqwest::Body::wrap_stream(futures::stream::iter(
        (0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}

fn expected_sha() -> String {
    let chunk = vec![b'a'; 256 * 1024];
    let mut h = Sha256::new();
    for _ in 0..STREAM_BYTES / chunk.len() as u64 {
        h.update(&chunk);
    }
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_256_mib_both_ways_with_bounded_memory() {
    let _quiet = MEMORY_QUIET.write().await;
    let (_app, running, _) = start("stream", NEVER).await;
    let base = running.base_url();
    let client = reqwest::Client::new();
    // Warm up (first instantiation, pools) before taking the baseline.
    let r = client
        .post(format!("{base}/hash"))
        .body("warm")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let expected = expected_sha();
    // Reset the peak-RSS counter (Linux: "5" > clear_refs) so VmHWM measures this window
    // only. Without the reset the peak could predate the window and hide its growth.
    std::fs::write("/proc/self/clear_refs", "5").expect("peak RSS reset (Linux clear_refs)");
    let hwm_before = proc_status_kib("VmHWM:");
    let rss_before = proc_status_kib("VmRSS:");
    assert!(
        hwm_before <= rss_before + 8 * 1024,
        "after the reset the peak is the current RSS: {hwm_before} KiB against {rss_before} KiB"
    );

    // Upload: the guest hashes the stream.
    let r = client
        .post(format!("{base}/hash"))
        .body(body_stream())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("{expected} {STREAM_BYTES}")
    );

    // Echo: upload and download at once; the client hashes the response stream.
    let r = client
        .post(format!("{base}/echo"))
        .body(body_stream())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    assert_eq!(n, STREAM_BYTES);
    assert_eq!(hex::encode(h.finalize()), expected);

    // Download only.
    let r = client
        .get(format!("{base}/download?size={STREAM_BYTES}"))
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len() as u64;
    }
    assert_eq!(n, STREAM_BYTES);

    let hwm_after = proc_status_kib("VmHWM:");
    let rss_after = proc_status_kib("VmRSS:");
    let growth_mib = (hwm_after.saturating_sub(hwm_before)) as f64 / 1024.0;
    println!(
        "RSS: before {rss_before} KiB, after {rss_after} KiB; peak (VmHWM) before {hwm_before} KiB, after {hwm_after} KiB; peak growth {growth_mib:.1} MiB while streaming 3 x 256 MiB"
    );
    assert!(growth_mib < 64.0, "peak RSS grew by {growth_mib:.1} MiB");
    running.shutdown().await;
}

/// Makes sure 127.0.0.1:5432 answers and database `test` exists.
async fn ensure_postgres() -> bool {
    let url = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
    let mut connected = tokio_postgres::connect(url, tokio_postgres::NoTls).await;
    if connected.is_err() {
        if let Ok(entries) = std::fs::read_dir("/etc/postgresql") {
            for e in entries.flatten() {
                let _ = std::process::Command::new("pg_ctlcluster")
                    .args(["--skip-systemctl-redirect"])
                    .arg(e.file_name())
                    .args(["main", "start"])
                    .status();
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        connected = tokio_postgres::connect(url, tokio_postgres::NoTls).await;
    }
    let Ok((client, conn)) = connected else {
        return false;
    };
    tokio::spawn(conn);
    let _ = client.batch_execute("CREATE DATABASE test").await;
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_round_trip_and_access_denied() {
    let _shared = MEMORY_QUIET.read().await;
    assert!(
        ensure_postgres().await,
        "postgres on 127.0.0.1:5432 is not reachable"
    );
    let (_app, running, _) = start("pg", NEVER).await;
    let base = running.base_url();
    let addr = "postgres://postgres@127.0.0.1:5432/test";
    let (s, body) = get(&format!("{base}/pg?addr={addr}")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, "inserted=1 name=alpha n=42 ok=true");
    let (s, body) = get(&format!("{base}/restricted/pg?addr={addr}")).await;
    assert_eq!(s, 403);
    assert!(body.contains("access denied"), "{body}");
    // `hostaddr` is where the client connects: a granted host name does not cover it.
    let bypass = "host=127.0.0.1 hostaddr=127.0.0.2 port=5432 user=postgres dbname=test";
    let (s, body) = get(&format!("{base}/pg?addr={}", bypass.replace(' ', "%20"))).await;
    assert!(s == 403 && body.contains("access denied"), "{s} {body}");
    running.shutdown().await;
}

fn cron_rows(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join(".spin/sqlite_db.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = 'cron_runs'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .and_then(|exists| {
        if exists == 0 {
            Ok(0)
        } else {
            conn.query_row("SELECT count(*) FROM cron_runs", [], |r| r.get(0))
        }
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_fires_now_and_on_schedule() {
    let _shared = MEMORY_QUIET.read().await;
    // Fire once through the library (what `harness cron <component>` does).
    let dir = temp_dir("cron-now");
    let app = App::load(manifest(&dir, NEVER), options(&dir)).unwrap();
    app.fire_cron("cron").await.unwrap();
    assert_eq!(cron_rows(&dir), 1);
    assert!(app.fire_cron("main").await.is_err());

    // Every second while serving.
    let (_app, running, dir) = start("cron-schedule", "* * * * * *").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    running.shutdown().await;
    let n = cron_rows(&dir);
    assert!((2..=5).contains(&n), "expected about 3 cron runs, got {n}");
}

/// An app with small limits (issue 12, item 6): timeouts of 1 s, one PostgreSQL connection,
/// four instances, request bodies up to 1 MiB.
async fn start_limited(name: &str) -> (App, harness::RunningApp) {
    let dir = temp_dir(name);
    let options = AppOptions {
        limits: harness::Limits {
            header_read: Duration::from_secs(1),
            body_idle: Duration::from_secs(1),
            pg_wait: Duration::from_millis(300),
            pg_max_open: 1,
            max_instances: 4,
            request_deadline: Duration::from_secs(3),
            max_request_bytes: Some(1 << 20),
        },
        ..options(&dir)
    };
    let app = App::load(manifest(&dir, NEVER), options).expect("load app");
    let running = app.serve("127.0.0.1:0").await.expect("serve");
    (app, running)
}

/// A serverless host's body cap: a declared length over it is refused before any guest
/// runs; a body without one fails where it passes the cap; a body within it passes.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_request_cap_are_refused() {
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running) = start_limited("body-cap").await;
    let base = running.base_url();
    let http = reqwest::Client::new();
    let post = |body: reqwest::Body| http.post(format!("{base}/hash")).body(body).send();
    let within = post(vec![7u8; 1 << 20].into()).await.unwrap();
    assert_eq!(within.status().as_u16(), 200);
    let declared = post(vec![7u8; (1 << 20) + 1].into()).await.unwrap();
    assert_eq!(declared.status().as_u16(), 413);
    // No Content-Length: a stream of 2 MiB in 64 KiB chunks.
    let chunks = (0..32).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 * 1024]));
    let streamed = post(reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    if let Ok(r) = streamed {
        assert_ne!(r.status().as_u16(), 200, "a body past the cap is not taken");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_past_their_deadline_are_stopped() {
    use tokio::io::AsyncWriteExt;
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running) = start_limited("deadline").await;
    let base = running.base_url();

    // A guest that never yields is interrupted (epoch deadline), not left spinning.
    for _ in 0..2 {
        let t = std::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(15), get(&format!("{base}/spin")))
            .await
            .expect("a spinning guest is stopped at its deadline");
        assert_eq!(got.0, 503, "{got:?}");
        // The deadline counts epoch ticks: the first tick can come at any moment after the
        // start, so the request may end up to one tick early (a rehearsal saw 2.997 s).
        assert!(
            t.elapsed() >= Duration::from_secs(3) - harness::limits::EPOCH_TICK,
            "{:?}",
            t.elapsed()
        );
        assert_eq!(get(&format!("{base}/hello")).await.0, 200);
    }

    // A guest waiting on a client that keeps sending, slower than the deadline allows, is
    // stopped too (the body never idles long enough for `body_idle`).
    let s = tokio::net::TcpStream::connect(running.local_addr())
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if wr.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    let head = String::from_utf8_lossy(&reply);
    assert!(head.starts_with("HTTP/1.1 503"), "trickled body: {head:?}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    running.shutdown().await;
}

/// Reads what the server sends until it closes or `within` passes: (bytes, closed).
async fn read_until_closed(sock: &mut tokio::net::TcpStream, within: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_bounded_and_the_host_keeps_answering() {
    use tokio::io::AsyncWriteExt;
    let _shared = MEMORY_QUIET.read().await;
    let (_app, running) = start_limited("limits").await;
    let base = running.base_url();
    let addr = running.local_addr();

    // 100 half-open connections (heads never finished) cost nothing that others need, and
    // the host drops them once `header_read` passes.
    let mut half_open = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        half_open.push(s);
    }
    let t = std::time::Instant::now();
    assert_eq!(get(&format!("{base}/hello")).await.0, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    for s in half_open.iter_mut().take(5) {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(
            closed,
            "a half-open connection is dropped after header_read"
        );
    }

    // A body that stops sending fails after `body_idle`: the guest sees an error (this one
    // traps, so 500), instead of holding its instance forever.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 500"), "idle body: {head:?}");

    // Every PostgreSQL connection busy: the next request waits `pg_wait`, then fails.
    if ensure_postgres().await {
        let pg = "postgres://postgres@127.0.0.1:5432/test";
        let hold_url = format!("{base}/pg-hold?addr={pg}&ms=2000");
        let hold = get(&hold_url);
        let next = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = std::time::Instant::now();
            let got = get(&format!("{base}/pg?addr={pg}")).await;
            (got, t.elapsed())
        };
        let (held, ((s, body), waited)) = futures::join!(hold, next);
        assert_eq!(held, (200, "held".into()));
        assert!(s == 403 && body.contains("busy"), "{s} {body}");
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
    }

    // Every instance busy (slow readers of big downloads): one more answers 503 at once,
    // and once they go, requests are served again.
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /download?size=1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        readers.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = std::time::Instant::now();
    let r = reqwest::get(format!("{base}/hello")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(readers);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if get(&format!("{base}/hello")).await.0 == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "instances came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await;
}
