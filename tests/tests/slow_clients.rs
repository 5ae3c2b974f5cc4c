//! Slow clients against the whole app (issue 12, item 6): readers that stop reading big
//! downloads, and writers that stop sending big uploads, must not starve everyone else of
//! the host's few PostgreSQL connections.

use anyhow::{Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, TestApp, id, pseudo_random, sha256_hex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

/// `/health` and a metadata read of package `pid` answer 200 within a second, `beside`
/// whatever holds the host.
async fn still_answers(app: &TestApp, pid: &str, beside: &str) -> Result<()> {
    for path in ["/health".to_string(), format!("/packages/{pid}")] {
        let t = Instant::now();
        let (s, v) = app.get_json(&app.tokens.producer, &path).await?;
        let took = t.elapsed();
        ensure!(
            s == 200 && took < Duration::from_secs(1),
            "{path} beside {beside}: {s} in {took:?}: {v}\n{}",
            app.log_tail()
        );
    }
    Ok(())
}

async fn slow_readers_leave_the_metadata_store_to_others() -> Result<()> {
    let Some(app) = TestApp::start(Config::new(Metadata::Postgres, Bytes::Kv)).await? else {
        return Ok(());
    };
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("slow", "transient").await?);
    let (s, f) = app
        .put_file(&p, &pid, "big.bin", pseudo_random(9, 32 * MIB))
        .await?;
    ensure!(s == 201, "{f}");
    let file_id = id(&f);

    // More stalled downloads than the host has PostgreSQL connections (16): each asks for
    // 32 MiB and reads nothing, so its instance blocks writing the body.
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut readers = Vec::new();
    for _ in 0..20 {
        let mut sock = tokio::net::TcpStream::connect(&addr).await?;
        let head = format!(
            "GET /files/{file_id}/download HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {p}\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await?;
        readers.push(sock);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    still_answers(&app, &pid, "20 stalled downloads").await?;
    drop(readers);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_do_not_starve_the_metadata_store() {
    if let Err(e) = slow_readers_leave_the_metadata_store_to_others().await {
        panic!("{e:#}");
    }
}

/// More stalled uploads than the host has PostgreSQL connections (16), on the staged path
/// (kv, no declared digest) and on the fast path (S3, declared digest): each sends its head
/// and a little of its body, then nothing (for less than the body idle limit).
async fn slow_writers_leave_the_metadata_store_to_others(bytes: Bytes) -> Result<()> {
    let Some(app) = TestApp::start(Config::new(Metadata::Postgres, bytes)).await? else {
        return Ok(());
    };
    let p = app.tokens.producer.clone();
    let pid = id(&app.create_package("slow-up", "transient").await?);
    let body = pseudo_random(11, MIB);
    let digest = match bytes {
        Bytes::S3 => format!("x-artifact-sha256: {}\r\n", sha256_hex(&body)),
        Bytes::Kv => String::new(),
    };
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut writers = Vec::new();
    for i in 0..20 {
        let mut sock = tokio::net::TcpStream::connect(&addr).await?;
        let head = format!(
            "PUT /packages/{pid}/files/w{i}.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {p}\r\nContent-Length: {}\r\n{digest}\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(&body[..4096]).await?;
        writers.push(sock);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    still_answers(&app, &pid, &format!("20 stalled uploads ({bytes:?})")).await?;
    // The stalled uploads still finish once their clients send the rest.
    for sock in writers.iter_mut().take(3) {
        sock.write_all(&body[4096..]).await?;
    }
    for (i, mut sock) in writers.into_iter().enumerate().take(3) {
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await?;
        let head = String::from_utf8_lossy(&reply);
        ensure!(
            head.starts_with("HTTP/1.1 201"),
            "upload w{i} after its stall: {head}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_writers_do_not_starve_the_metadata_store() {
    for bytes in [Bytes::Kv, Bytes::S3] {
        if let Err(e) = slow_writers_leave_the_metadata_store_to_others(bytes).await {
            panic!("{e:#}");
        }
    }
}
