//! A small closed-loop HTTP/1.1 load generator for `bench`: `connections` threads, each on
//! one keep-alive connection, sending the same GET for a fixed time and recording every
//! latency. Plain std (no async runtime, no crate) keeps xtask quick to build; it is no
//! match for wrk on raw speed, but the same client measures both hosts in one run.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Requests per second and latency percentiles of one run.
pub struct LoadResult {
    pub requests: usize,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// GETs `path` from `addr` (`host:port`) with a bearer `token`, for `duration`.
pub fn run(
    addr: &str,
    path: &str,
    token: &str,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let addr = addr.to_string();
            let request = request.clone();
            std::thread::spawn(move || worker(&addr, &request, started + duration))
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(
            w.join()
                .map_err(|_| anyhow::anyhow!("load worker panicked"))??,
        );
    }
    let elapsed = started.elapsed();
    if latencies.is_empty() {
        bail!("no request completed");
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(LoadResult {
        requests: latencies.len(),
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

fn worker(addr: &str, request: &str, until: Instant) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let mut conn = connect(addr)?;
    while Instant::now() < until {
        let t = Instant::now();
        let ok = conn
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(anyhow::Error::from)
            .and_then(|_| read_response(&mut conn));
        match ok {
            Ok(true) => latencies.push(t.elapsed()),
            // The server closed the connection (or answered non-2xx): reconnect.
            Ok(false) | Err(_) => conn = connect(addr)?,
        }
    }
    Ok(latencies)
}

fn connect(addr: &str) -> Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(BufReader::new(s))
}

/// Reads one response; `Ok(true)` for a 2xx the connection can be reused after.
fn read_response(conn: &mut BufReader<TcpStream>) -> Result<bool> {
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let ok = line
        .split_whitespace()
        .nth(1)
        .is_some_and(|s| s.starts_with('2'));
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            bail!("connection closed in the headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        } else if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).context("chunk size")?;
            let mut skip = vec![0u8; n + 2];
            conn.read_exact(&mut skip)?;
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; length.context("response without a length")?];
        conn.read_exact(&mut body)?;
    }
    Ok(ok && !close)
}
