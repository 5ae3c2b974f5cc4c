//! A byte-forwarding TCP proxy that counts what passes from the app to a server: the
//! tests' eyes on the wire (was a header really sent?) without touching the code under test.
//! Made silent, it plays a server that hangs: it takes connections and bytes and never
//! answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: String,
    needle_hits: Arc<AtomicUsize>,
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `upstream` (host:port), counting occurrences of
    /// `needle` (case-insensitive) in the client-to-server bytes.
    pub async fn start(upstream: &str, needle: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let needle = needle.to_ascii_lowercase().into_bytes();
        let upstream = upstream.to_string();
        let counter = hits.clone();
        let silent = Arc::new(AtomicBool::new(false));
        let hush = silent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, needle, counter) =
                    (upstream.clone(), needle.clone(), counter.clone());
                let silent = hush.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if silent {
                        swallow(client).await;
                    } else if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = pipe(client, server, &needle, &counter).await;
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            needle_hits: hits,
            silent,
            task,
        })
    }

    /// Connections made from now on are accepted and read but never answered (or, with
    /// `false`, forwarded again).
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.needle_hits.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads whatever the client sends, answers nothing, and keeps the connection open until
/// the client closes it.
async fn swallow(mut client: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    needle: &[u8],
    hits: &AtomicUsize,
) -> std::io::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let mut buf = vec![0u8; 64 * 1024];
    // Keep the last needle.len()-1 bytes so a needle split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut window = std::mem::take(&mut tail);
        window.extend_from_slice(&buf[..n]);
        let lower = window.to_ascii_lowercase();
        hits.fetch_add(
            lower.windows(needle.len()).filter(|w| *w == needle).count(),
            Ordering::SeqCst,
        );
        let keep = needle.len().saturating_sub(1).min(window.len());
        tail = window[window.len() - keep..].to_vec();
        sw.write_all(&buf[..n]).await?;
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
    Ok(())
}
