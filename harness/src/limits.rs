//! How long and how much one client or request may hold, so slow or hostile clients cannot
//! wedge the host: past a limit the request fails or answers 503 at once, never hangs.
//!
//! - a client must send a request's whole head within `header_read` (hyper then closes
//!   the connection), so half-open connections do not pile up;
//! - a request body that sends nothing for `body_idle` fails (the guest reads an error);
//! - once `pg_max_open` PostgreSQL connections to an address are busy, a request waits at
//!   most `pg_wait` for one, then fails (the app answers 503 with `Retry-After`);
//! - at most `max_instances` component instances run at once; one more answers 503 with
//!   `Retry-After` instead of waiting;
//! - a request (or cron event) runs at most `request_deadline`, guest code included: the
//!   engine's epoch ticks every `EPOCH_TICK`, so a guest spinning in a loop traps at its
//!   next check, and a guest waiting on the host is dropped at the deadline. A request
//!   stopped before its response head answers 503; one stopped while streaming its body
//!   is cut off (the client sees a truncated body, never a clean end).

use std::time::Duration;

use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read: Duration,
    pub body_idle: Duration,
    pub pg_wait: Duration,
    pub pg_max_open: usize,
    pub max_instances: u32,
    pub request_deadline: Duration,
    /// Request bodies larger than this are refused (413 when `Content-Length` says so up
    /// front, else the body fails where it passes the cap), as serverless hosts do.
    pub max_request_bytes: Option<u64>,
}

/// How often the engine's epoch advances: the granularity of `request_deadline`.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

impl Limits {
    /// The request deadline in epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.request_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(30),
            body_idle: Duration::from_secs(60),
            pg_wait: Duration::from_secs(5),
            pg_max_open: 16,
            max_instances: 128,
            // Long enough for a 5 GiB upload at about 1.5 MiB/s; stuck requests end anyway.
            request_deadline: Duration::from_secs(3600),
            max_request_bytes: None,
        }
    }
}

/// A request or cron event ran past `Limits::request_deadline`.
#[derive(Debug)]
pub struct DeadlineExceeded(pub Duration);

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request deadline of {:?} exceeded", self.0)
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Runs `work` for at most `deadline`: a guest waiting on the host is dropped when it
/// passes, and a guest that traps on its epoch deadline is reported the same way.
pub async fn within_deadline<T>(
    deadline: Duration,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(deadline, work).await {
        Ok(Err(e))
            if e.chain().any(|c| {
                c.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
            }) =>
        {
            Err(e.context(DeadlineExceeded(deadline)))
        }
        Ok(result) => result,
        Err(_) => Err(DeadlineExceeded(deadline).into()),
    }
}

/// A request body that fails once no frame arrived for `idle`.
pub struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Bytes passed so far, and how many may pass.
    seen: u64,
    cap: u64,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration, cap: Option<u64>) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            seen: 0,
            cap: cap.unwrap_or(u64::MAX),
        }
    }
}

impl<B> http_body::Body for IdleTimeoutBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<ErrorCode>,
{
    type Data = B::Data;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                if let Some(Ok(f)) = &frame
                    && let Some(data) = f.data_ref()
                {
                    this.seen += bytes::Buf::remaining(data) as u64;
                    if this.seen > this.cap {
                        return Poll::Ready(Some(Err(ErrorCode::HttpRequestBodySize(Some(
                            this.seen,
                        )))));
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
