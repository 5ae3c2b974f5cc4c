//! Guest stdout/stderr, prefixed with the component id like `spin up` does.
//!
//! Decision: a tiny line-buffered WASI output stream; complete lines go straight to the host's
//! stdout/stderr (writes are small and never block for long), a partial line is kept (bounded)
//! until its newline or the instance ends.

use bytes::Bytes;
use std::io::Write;
use std::sync::Arc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest partial line kept before it is written anyway.
const MAX_PENDING: usize = 16 * 1024;

#[derive(Clone)]
pub struct PrefixedStdio {
    prefix: Arc<str>,
    stderr: bool,
}

impl PrefixedStdio {
    pub fn new(component: &str, stderr: bool) -> Self {
        Self {
            prefix: Arc::from(format!("[{component}] ")),
            stderr,
        }
    }
}

impl IsTerminal for PrefixedStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PrefixedStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            out: self.clone(),
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; they are not supported by the harness (WASI 0.2 only).
        if self.stderr {
            Box::new(tokio::io::stderr())
        } else {
            Box::new(tokio::io::stdout())
        }
    }
}

struct LineWriter {
    out: PrefixedStdio,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let mut buf = Vec::with_capacity(self.out.prefix.len() + line.len() + 1);
        buf.extend_from_slice(self.out.prefix.as_bytes());
        buf.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            buf.push(b'\n');
        }
        // Output is best effort: a closed host stdout must not fail the guest.
        if self.out.stderr {
            let _ = std::io::stderr().lock().write_all(&buf);
        } else {
            let _ = std::io::stdout().lock().write_all(&buf);
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.pending.extend_from_slice(&bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.emit(&line);
        }
        if self.pending.len() > MAX_PENDING {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}
