//! Slow clients against the whole app (issue 12, item 6): readers that stop reading big
//! downloads must not starve everyone else of the host's few PostgreSQL connections.

use anyhow::{Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, TestApp, id, pseudo_random};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

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

    for path in ["/health".to_string(), format!("/packages/{pid}")] {
        let t = Instant::now();
        let (s, v) = app.get_json(&p, &path).await?;
        let took = t.elapsed();
        ensure!(
            s == 200 && took < Duration::from_secs(1),
            "{path} beside 20 stalled downloads: {s} in {took:?}: {v}\n{}",
            app.log_tail()
        );
    }
    drop(readers);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_do_not_starve_the_metadata_store() {
    if let Err(e) = slow_readers_leave_the_metadata_store_to_others().await {
        panic!("{e:#}");
    }
}
