//! What handlers read from a request: method, path segments, query, headers, JSON bodies.
//!
//! Decision: routes are matched on the request path itself (decoded segment by segment)
//! rather than on Spin's `spin-path-match-*` headers, so a component behaves the same
//! under Spin and under any host that only forwards the path; the headers are a fallback
//! when the path is absent. Small JSON bodies are read whole (capped at `MAX_JSON_BYTES`);
//! file bodies never go through here (see `body` and `multipart`).

use artifact_store_core::error::ErrorCode;
use artifact_store_core::ports::{ByteStream, PageRequest};
use serde_json::{Map, Value};
use spin_sdk::http::{IncomingRequest, Method};

use crate::body::{RawBody, RequestBody};
use crate::problem::ApiError;

pub const MAX_JSON_BYTES: usize = 1024 * 1024;
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

pub struct Request {
    pub method: String,
    /// Decoded path segments (`/packages/a%2Fb` -> `["packages", "a/b"]`).
    pub segments: Vec<String>,
    /// The raw path (without the query).
    pub path: String,
    pub query: Vec<(String, String)>,
    headers: Vec<(String, Vec<u8>)>,
    incoming: Option<IncomingRequest>,
}

impl Request {
    pub fn new(req: IncomingRequest) -> Result<Request, ApiError> {
        let method = method_name(&req.method());
        let headers: Vec<(String, Vec<u8>)> = req
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let path_with_query = req.path_with_query().unwrap_or_else(|| {
            headers
                .iter()
                .find(|(k, _)| k == "spin-path-info")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| "/".to_string())
        });
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_string(), parse_query(q)),
            None => (path_with_query.clone(), Vec::new()),
        };
        let segments = path_segments(&path)?;
        // No store keeps a NUL in text (PostgreSQL refuses it): an id, filter or cursor with
        // one is bad input, the same 400 on every store.
        if segments.iter().any(|s| s.contains('\0'))
            || query
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "the URL contains a NUL character",
            ));
        }
        Ok(Request {
            method,
            segments,
            path,
            query,
            headers,
            incoming: Some(req),
        })
    }

    /// Segments as `&str`, for `match`.
    pub fn route(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    /// The first value of a header (names are case-insensitive), as UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// A path parameter Spin matched (`:name`), when the host set it.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.header(&format!("spin-path-match-{name}"))
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The body as a stream (once).
    pub fn body(&mut self) -> Result<RequestBody, ApiError> {
        self.incoming
            .take()
            .map(RequestBody::new)
            .ok_or_else(|| ApiError::internal("request body read twice"))
    }

    /// The body as the host's stream, to be moved host-side (once).
    pub fn raw_body(&mut self) -> Result<RawBody, ApiError> {
        self.incoming
            .take()
            .ok_or_else(|| ApiError::internal("request body read twice"))
            .and_then(|req| RawBody::new(req).map_err(ApiError::internal))
    }

    /// The body as a JSON object: 415 unless `application/json`, 413 past the cap,
    /// 400 `invalid_json` unless it parses to an object.
    pub async fn json_object(&mut self) -> Result<Map<String, Value>, ApiError> {
        if !is_json_content_type(self.header("content-type")) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
        if self
            .content_length()
            .is_some_and(|n| n > MAX_JSON_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = self.body()?;
        let mut bytes = Vec::new();
        while let Some(c) = body.next_chunk().await? {
            if bytes.len() + c.len() > MAX_JSON_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&c);
        }
        parse_json_object(&bytes)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("JSON bodies are limited to {MAX_JSON_BYTES} bytes"),
    )
}

pub fn method_name(m: &Method) -> String {
    m.to_string()
}

/// `application/json`, optionally with parameters, or any `+json` type.
pub fn is_json_content_type(ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return false };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// A string member of a JSON object; absent or not a string -> `code` (422).
pub fn str_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    code: ErrorCode,
) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::new(code, format!("`{name}` must be a string"))),
        None => Err(ApiError::new(code, format!("`{name}` is required"))),
    }
}

/// Splits and percent-decodes a path; a segment that is not UTF-8 after decoding is 400.
pub fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode(s, false)
                .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "the path is not valid UTF-8"))
        })
        .collect()
}

/// `a=1&b=x+y&c=%2F` -> pairs; `+` is a space in queries.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_decode(s, true)
                    .unwrap_or_else(|| String::from_utf8_lossy(s.as_bytes()).into_owned())
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Percent-decodes; `None` when the result is not UTF-8. A `%` not followed by two hex
/// digits is kept literally.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len()
                && hex_val(b[i + 1]).is_some()
                && hex_val(b[i + 2]).is_some() =>
            {
                out.push(hex_val(b[i + 1])? * 16 + hex_val(b[i + 2])?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `?limit=` (default 50, 1..=1000, else 422 `invalid_query`) and `?cursor=`.
pub fn page_request(query: &[(String, String)]) -> Result<PageRequest, ApiError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("`limit` must be an integer from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let cursor = get("cursor").filter(|c| !c.is_empty()).map(str::to_string);
    Ok(PageRequest { limit, cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded() {
        assert_eq!(
            parse_query("a=1&b=x+y&c=%2F%zz&&metadata.run_id=r%201&flag"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "/%zz".into()),
                ("metadata.run_id".into(), "r 1".into()),
                ("flag".into(), "".into()),
            ]
        );
    }

    #[test]
    fn path_is_split_and_decoded() {
        assert_eq!(
            path_segments("/packages/abc/files/reports%2Fa+b.json").unwrap(),
            vec!["packages", "abc", "files", "reports/a+b.json"]
        );
        assert_eq!(path_segments("/").unwrap(), Vec::<String>::new());
        assert!(path_segments("/a%ff").is_err());
        assert_eq!(percent_decode("100%", false).as_deref(), Some("100%"));
        assert_eq!(percent_decode("%4", false).as_deref(), Some("%4"));
    }

    #[test]
    fn limits() {
        let q = |s: &str| parse_query(s);
        assert_eq!(page_request(&q("")).unwrap().limit, 50);
        assert_eq!(page_request(&q("limit=1000")).unwrap().limit, 1000);
        for bad in ["limit=0", "limit=1001", "limit=x", "limit=-1", "limit="] {
            assert_eq!(
                page_request(&q(bad)).unwrap_err().code(),
                ErrorCode::InvalidQuery,
                "{bad}"
            );
        }
        assert_eq!(
            page_request(&q("cursor=abc")).unwrap().cursor.as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn json_bodies() {
        assert!(is_json_content_type(Some(
            "application/json; charset=utf-8"
        )));
        assert!(is_json_content_type(Some("application/merge-patch+json")));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(None));
        assert_eq!(
            parse_json_object(b"{").unwrap_err().code(),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            parse_json_object(b"[1]").unwrap_err().code(),
            ErrorCode::InvalidJson
        );
        let o = parse_json_object(br#"{"name":"x","n":1}"#).unwrap();
        assert_eq!(str_field(&o, "name", ErrorCode::InvalidName).unwrap(), "x");
        assert_eq!(
            str_field(&o, "n", ErrorCode::InvalidName)
                .unwrap_err()
                .status(),
            422
        );
    }
}
