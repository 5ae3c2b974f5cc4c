//! The registry over HTTP: bearer auth, problem+json errors, and retries.
//!
//! Decision: every request goes through `Client::send`, which retries what a later attempt
//! can fix (503/502/504/429, honouring `Retry-After`, and connection errors) with
//! exponential backoff, and nothing else. A request is rebuilt for each attempt (a file
//! body is reopened from disk), so a retry never holds a file in memory. Cost: a request
//! that failed mid-body is sent again whole.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The contract's error body, kept typed so callers can act on its `code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The `ApiError` behind `err`, if the server answered one.
pub fn api_error(err: &anyhow::Error) -> Option<&ApiError> {
    err.chain().find_map(|e| e.downcast_ref::<ApiError>())
}

/// How hard `send` tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    pub base: Duration,
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// Backoff before retry `n` (0-based): base * 2^n with up to 25% jitter, capped; a
    /// `Retry-After` from the server wins (capped by `max_wait` too).
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_wait);
        }
        let exp = self.base.saturating_mul(1u32 << n.min(16));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = exp.mul_f64(f64::from(nanos % 250) / 1000.0);
        (exp + jitter).min(self.max_wait)
    }
}

/// Statuses a later attempt may turn into a success.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Transport failures worth another attempt: the connection could not be made, broke, or
/// timed out (nothing the server refused on purpose).
pub fn retryable_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// The answer's `Retry-After` in seconds, if it has one.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    pub retry: RetryPolicy,
}

impl Client {
    pub fn new(base: &str, token: Option<String>, retry: RetryPolicy) -> Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("the registry URL must start with http:// or https:// (got {base:?})");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("artifact-store-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base,
            token,
            retry,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// A request to `url`: a path on the registry (with the bearer token), or an absolute
    /// URL elsewhere (a presigned one: no token).
    pub fn request_to(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        if url.starts_with("http://") || url.starts_with("https://") {
            self.http.request(method, url)
        } else {
            self.request(method, url)
        }
    }

    /// Sends the request `build` makes, again after a retryable failure, and returns the
    /// first answer that is not retryable (or the last one). Each retry is logged on
    /// stderr (what failed, how long until the next attempt).
    pub async fn send<F>(&self, mut build: F) -> Result<reqwest::Response>
    where
        F: FnMut() -> Result<reqwest::RequestBuilder>,
    {
        let mut attempt = 0;
        loop {
            let result = build()?.send().await;
            let (why, wait) = match result {
                Ok(resp) if retryable_status(resp.status().as_u16()) => {
                    let wait = retry_after(&resp);
                    if attempt >= self.retry.retries {
                        return Ok(resp);
                    }
                    (format!("HTTP {}", resp.status().as_u16()), wait)
                }
                Ok(resp) => return Ok(resp),
                Err(e) if retryable_error(&e) && attempt < self.retry.retries => {
                    (format!("{e}"), None)
                }
                Err(e) => return Err(e.into()),
            };
            let wait = self.retry.wait(attempt, wait);
            log_retry(&why, attempt + 1, self.retry.retries, wait);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `send`, then a non-2xx answer as an `ApiError`.
    pub async fn send_ok<F>(&self, build: F) -> Result<reqwest::Response>
    where
        F: FnMut() -> Result<reqwest::RequestBuilder>,
    {
        check(self.send(build).await?).await
    }

    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self
            .send_ok(|| Ok(self.request(reqwest::Method::GET, path)))
            .await?;
        Ok(resp.json().await?)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .send_ok(|| Ok(self.request(reqwest::Method::POST, path).json(body)))
            .await?;
        Ok(resp.json().await?)
    }
}

/// Retries are worth a line on stderr even without progress bars: CI logs show them.
fn log_retry(why: &str, n: u32, of: u32, wait: Duration) {
    eprintln!(
        "retrying ({n}/{of}) in {:.1} s after: {why}",
        wait.as_secs_f64()
    );
}

/// A 2xx answer as is; anything else as an `ApiError` (from its problem+json body when it
/// has one).
pub async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = body["code"].as_str().unwrap_or("http_error").to_string();
    let detail = body["detail"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(ApiError {
        status,
        code,
        detail,
    }
    .into())
}

/// `path` with each `/`-separated segment percent-encoded (everything but RFC 3986's
/// unreserved characters), for `PUT /packages/{id}/files/{relative_path}`.
pub fn encode_path(path: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// One query parameter, encoded.
pub fn query_pair(key: &str, value: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    format!(
        "{}={}",
        utf8_percent_encode(key, NON_ALPHANUMERIC),
        utf8_percent_encode(value, NON_ALPHANUMERIC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("a/b c/ü.json"), "a/b%20c/%C3%BC.json");
        assert_eq!(encode_path("x%2F/y?#"), "x%252F/y%3F%23");
        assert_eq!(encode_path("run-1_a.~"), "run-1_a.~");
    }

    #[test]
    fn backoff_grows_is_capped_and_yields_to_retry_after() {
        let p = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(2),
        };
        assert!(p.wait(0, None) >= Duration::from_millis(100));
        assert!(p.wait(0, None) < Duration::from_millis(126));
        assert!(p.wait(3, None) >= Duration::from_millis(800));
        assert_eq!(p.wait(10, None), Duration::from_secs(2));
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        assert!(retryable_status(503) && retryable_status(429));
        assert!(!retryable_status(500) && !retryable_status(409));
    }
}
