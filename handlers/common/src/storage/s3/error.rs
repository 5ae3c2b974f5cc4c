//! S3 error replies mapped onto core's `StorageError`.
//!
//! Decision: the mapping is by the S3 error `Code` first and the HTTP status second (HEAD
//! replies have no body). Everything the operator must fix or wait for (unreachable,
//! throttled, 5xx, rejected credentials, missing bucket, skewed clock) becomes `Unavailable`
//! with a detail naming the cause, so the API answers 503 and the caller logs the detail.
//! Credentials themselves never appear in a detail.

use artifact_store_core::ports::StorageError;

use super::xml;

/// Seconds a client should wait after a transient failure when the server did not say.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
/// Wait after a configuration problem (credentials, bucket): an operator must act.
const CONFIG_RETRY_AFTER_SECS: u32 = 60;

/// The `<Error>` document of an S3 reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3ErrorBody {
    pub code: String,
    pub message: String,
}

/// Parses an S3 `<Error>` body; `None` when the body is not one.
pub fn parse_error(body: &[u8]) -> Option<S3ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Error>") {
        return None;
    }
    Some(S3ErrorBody {
        code: xml::text(text, "Code").unwrap_or_default(),
        message: xml::text(text, "Message").unwrap_or_default(),
    })
}

/// The request never got an answer (DNS, refused connection, timeout, reset).
pub fn connection_failed(op: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable {
        detail: format!("s3 {op}: cannot reach the endpoint: {detail}"),
        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
    }
}

/// Whether a reply with this status and error code is worth sending again.
pub fn is_transient(status: u16, code: Option<&str>) -> bool {
    status >= 500 || status == 429 || matches!(code, Some("SlowDown" | "RequestTimeout"))
}

/// Maps a non-success reply of `op` on `key` (status, `Retry-After` header, body).
pub fn map_reply(
    op: &str,
    key: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> StorageError {
    let parsed = parse_error(body).unwrap_or_default();
    let code = parsed.code.as_str();
    let retry_after_secs = retry_after
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
    let unavailable = |cause: &str, retry_after_secs: u32| StorageError::Unavailable {
        detail: format!("s3 {op}: {cause} (HTTP {status}{})", code_suffix(code)),
        retry_after_secs,
    };
    match code {
        "NoSuchKey" => return StorageError::NotFound(key.to_string()),
        "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId" => {
            return unavailable(
                "credentials rejected: check s3_access_key_id, s3_secret_access_key and the \
                 key's bucket permissions",
                CONFIG_RETRY_AFTER_SECS,
            );
        }
        "NoSuchBucket" => {
            return unavailable(
                "bucket does not exist: check s3_bucket",
                CONFIG_RETRY_AFTER_SECS,
            );
        }
        // The payload did not hash to the signed `x-amz-content-sha256` (or `Content-MD5`):
        // the server kept nothing.
        "XAmzContentSHA256Mismatch" | "BadDigest" => {
            return StorageError::DigestMismatch(format!(
                "the body does not match its declared digest (s3 {op}: HTTP {status} {code})"
            ));
        }
        "RequestTimeTooSkewed" => {
            return unavailable("clock skew too large", CONFIG_RETRY_AFTER_SECS);
        }
        _ => {}
    }
    if is_transient(status, Some(code)) {
        return unavailable("server busy or failing", retry_after_secs);
    }
    match status {
        // HEAD replies carry no body: judge by status alone.
        404 if code.is_empty() => StorageError::NotFound(key.to_string()),
        401 | 403 if code.is_empty() => unavailable("access refused", CONFIG_RETRY_AFTER_SECS),
        _ => StorageError::Backend(format!(
            "s3 {op} failed: HTTP {status}{}{}",
            code_suffix(code),
            if parsed.message.is_empty() {
                String::new()
            } else {
                format!(": {}", parsed.message)
            }
        )),
    }
}

fn code_suffix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(" {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
            .into_bytes()
    }

    #[test]
    fn maps_codes() {
        assert!(matches!(
            map_reply(
                "PutObject",
                "k",
                400,
                None,
                &body("XAmzContentSHA256Mismatch")
            ),
            StorageError::DigestMismatch(_)
        ));
        assert_eq!(
            map_reply("GetObject", "k", 404, None, &body("NoSuchKey")),
            StorageError::NotFound("k".into())
        );
        let StorageError::Unavailable { detail, .. } =
            map_reply("PutObject", "k", 403, None, &body("SignatureDoesNotMatch"))
        else {
            panic!("credentials must map to Unavailable")
        };
        assert!(
            detail.contains("credentials rejected") && detail.contains("SignatureDoesNotMatch")
        );
        assert_eq!(
            map_reply("PutObject", "k", 503, Some("7"), &body("SlowDown")),
            StorageError::Unavailable {
                detail: "s3 PutObject: server busy or failing (HTTP 503 SlowDown)".into(),
                retry_after_secs: 7
            }
        );
        assert!(matches!(
            map_reply("UploadPart", "k", 404, None, &body("NoSuchUpload")),
            StorageError::Backend(_)
        ));
        assert_eq!(
            map_reply("HeadObject", "k", 404, None, b""),
            StorageError::NotFound("k".into())
        );
        assert!(matches!(
            map_reply("HeadObject", "k", 500, None, b""),
            StorageError::Unavailable { .. }
        ));
    }
}
