//! Every failure a handler returns, as one type that renders to `application/problem+json`.
//!
//! Decision: handlers return `Result<_, ApiError>` and use `?` on core's `DomainError`, the
//! metadata store's `MetadataError` and the object stores' `StorageError`; the mapping
//! from those typed errors to the contract's codes lives here and nowhere else. The
//! codes themselves (status, title) are core's `ErrorCode`.

use artifact_store_core::error::{DomainError, ErrorCode, Problem};
use artifact_store_core::ports::{MetadataError, StorageError};

/// Seconds a client should wait before retrying a 503.
pub const DEFAULT_RETRY_AFTER: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub problem: Problem,
    /// `Retry-After` seconds (set on every 503).
    pub retry_after: Option<u32>,
    /// Extra response headers (e.g. `Content-Range` on a 416, `Allow` on a 405).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        let retry_after = (code.status() == 503).then_some(DEFAULT_RETRY_AFTER);
        ApiError {
            problem: Problem::new(code, detail),
            retry_after,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ApiError {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn status(&self) -> u16 {
        self.problem.status
    }

    pub fn code(&self) -> ErrorCode {
        self.problem.code
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn method_not_allowed(allow: &[&str]) -> ApiError {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        )
        .with_header("allow", allow.join(", "))
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, detail)
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem).unwrap_or_default()
    }

    /// All response headers (content type, retry-after, extras).
    pub fn response_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![(
            "content-type".to_string(),
            "application/problem+json".to_string(),
        )];
        if let Some(secs) = self.retry_after {
            h.push(("retry-after".to_string(), secs.to_string()));
        }
        h.extend(self.headers.iter().cloned());
        h
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        ApiError::new(e.code, e.detail)
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> ApiError {
        match e {
            MetadataError::Domain(d) => d.into(),
            MetadataError::Unavailable(detail) => {
                log_error("metadata store", &detail);
                ApiError::new(
                    ErrorCode::BackendUnavailable,
                    "the metadata store is unavailable",
                )
            }
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::NotFound(key) => {
                // A recorded file whose bytes are gone: ours to fix, not the client's.
                log_error("object store", &format!("object missing: {key}"));
                ApiError::new(ErrorCode::ObjectMissing, "the file's bytes are missing")
            }
            StorageError::TooLarge { limit } => ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than {limit} bytes"),
            ),
            StorageError::Source(detail) => ApiError::new(ErrorCode::BadRequest, detail),
            StorageError::DigestMismatch(detail) => {
                ApiError::new(ErrorCode::DigestMismatch, detail)
            }
            StorageError::Unavailable {
                detail,
                retry_after_secs,
            } => {
                log_error("object store", &detail);
                let mut e = ApiError::new(
                    ErrorCode::BackendUnavailable,
                    "the storage backend is unavailable",
                );
                e.retry_after = Some(retry_after_secs.max(1));
                e
            }
            StorageError::Backend(detail) => {
                log_error("object store", &detail);
                ApiError::new(
                    ErrorCode::BackendUnavailable,
                    "the storage backend answered unexpectedly",
                )
            }
        }
    }
}

/// Operator-facing log line (stderr ends up in the host's log); never carries tokens.
pub fn log_error(stage: &str, detail: &str) {
    eprintln!("artifact-store: {stage}: {detail}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_gets_retry_after() {
        let e: ApiError = MetadataError::Unavailable("db down".into()).into();
        assert_eq!(e.status(), 503);
        assert!(
            e.response_headers()
                .contains(&("retry-after".into(), "5".into()))
        );
        assert!(!String::from_utf8(e.body()).unwrap().contains("db down"));
    }

    #[test]
    fn storage_errors_map_to_contract_codes() {
        let e: ApiError = StorageError::TooLarge { limit: 3 }.into();
        assert_eq!(e.code(), ErrorCode::PayloadTooLarge);
        let e: ApiError = StorageError::Source("x".into()).into();
        assert_eq!(e.status(), 400);
        let e: ApiError = StorageError::Unavailable {
            detail: "x".into(),
            retry_after_secs: 30,
        }
        .into();
        assert_eq!(e.retry_after, Some(30));
    }

    #[test]
    fn body_is_a_problem() {
        let e = ApiError::new(ErrorCode::DigestMismatch, "nope");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["code"], "digest_mismatch");
        assert_eq!(v["status"], 422);
        assert_eq!(
            v["type"],
            "https://artifact-store.dev/problems/digest_mismatch"
        );
    }
}
