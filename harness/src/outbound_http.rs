//! Outbound network policy (`allowed_outbound_hosts`) and the outbound HTTP hook.
//!
//! Decision: patterns are parsed once at start (after template expansion) into
//! `scheme://host:port` triples as Spin does (`*` for any scheme/host/port, `*.domain` host
//! suffixes, `a..b` port ranges, default port from the scheme); wasi-http's own client does the
//! I/O, the harness only vetoes requests in `send_request` with `HttpRequestDenied`.

use anyhow::{Result, bail};
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    patterns: Vec<Pattern>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parses expanded patterns like `https://*.example.com`, `http://127.0.0.1:*`.
    pub fn parse(entries: &[String]) -> Result<Self> {
        let mut patterns = Vec::new();
        for e in entries {
            patterns.push(parse_pattern(e)?);
        }
        Ok(Self { patterns })
    }

    /// Whether a connection to `scheme://host:port` is allowed (`port` None = scheme default).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.patterns.iter().any(|p| {
            p.scheme.as_deref().is_none_or(|s| s == scheme)
                && match &p.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Suffix(s) => host.ends_with(s.as_str()),
                }
                && match p.port {
                    PortPattern::Any => true,
                    PortPattern::Range(a, b) => (a..=b).contains(&port),
                }
        })
    }
}

fn parse_pattern(entry: &str) -> Result<Pattern> {
    let Some((scheme, rest)) = entry.split_once("://") else {
        bail!("allowed_outbound_hosts: `{entry}` must include a scheme (e.g. https://{entry})");
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        bail!("allowed_outbound_hosts: `{entry}` must not contain a path");
    }
    let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
    // Split host and port, honouring bracketed IPv6 literals.
    let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
        let Some((h, after)) = stripped.split_once(']') else {
            bail!("allowed_outbound_hosts: `{entry}`: unterminated `[`");
        };
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(s) = host.strip_prefix("*.") {
        HostPattern::Suffix(format!(".{s}"))
    } else if host.is_empty() || host.contains('*') {
        bail!("allowed_outbound_hosts: `{entry}`: invalid host");
    } else {
        HostPattern::Exact(host)
    };
    let port = match port.as_deref() {
        Some("*") => PortPattern::Any,
        Some(p) => {
            let (a, b) = p
                .split_once("..")
                .or_else(|| p.split_once('-'))
                .unwrap_or((p, p));
            match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) if a <= b => PortPattern::Range(a, b),
                _ => bail!("allowed_outbound_hosts: `{entry}`: invalid port `{p}`"),
            }
        }
        None => match scheme.as_deref().and_then(default_port) {
            Some(d) => PortPattern::Range(d, d),
            None => bail!("allowed_outbound_hosts: `{entry}`: a port is required for this scheme"),
        },
    };
    Ok(Pattern { scheme, host, port })
}

/// wasi-http hooks enforcing a component's outbound policy.
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
}

impl OutboundHooks {
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self { allowed }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<(), HttpError>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let allowed = uri
            .host()
            .is_some_and(|h| self.allowed.allows(&scheme, h, uri.port_u16()));
        if !allowed {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(p: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_like_spin() {
        let h = hosts(&[
            "https://example.com",
            "http://127.0.0.1:*",
            "postgres://db:5432",
        ]);
        assert!(h.allows("https", "example.com", None));
        assert!(h.allows("https", "example.com", Some(443)));
        assert!(!h.allows("https", "example.com", Some(8443)));
        assert!(!h.allows("http", "example.com", None));
        assert!(h.allows("http", "127.0.0.1", Some(9999)));
        assert!(h.allows("postgres", "db", None));
        let w = hosts(&["*://*.s3.local:1000..2000"]);
        assert!(w.allows("https", "b.s3.local", Some(1500)));
        assert!(!w.allows("https", "s3.local", Some(1500)));
        assert!(AllowedHosts::parse(&["example.com".into()]).is_err());
    }
}
