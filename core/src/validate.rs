//! Input rules for everything a client names: packages, producers, subjects, metadata,
//! relative paths, media types and digests.
//!
//! Each function either returns the (normalized) value or a `DomainError` whose code names
//! the field, so handlers never invent codes. Decisions beyond the contract:
//! - names and producers: 1..=128 bytes of `[A-Za-z0-9._-]`, starting alphanumeric (they
//!   appear in URLs, logs and token configuration);
//! - subjects: 1..=256 chars of printable UTF-8 (no control characters);
//! - relative paths: the contract's rules, plus a first segment that starts like a Windows
//!   drive (`C:`) is rejected, because a consumer unpacking the package on Windows would
//!   treat it as absolute, and so are bidirectional text controls, which make a name
//!   display as another. Percent-encoding is *not* decoded: `%2e%2e` is a literal,
//!   harmless file name (the HTTP layer decodes URL paths once, before calling this);
//! - metadata: a JSON object, at most 64 keys, at most 8 KiB as compact JSON, no empty key;
//!   secret-looking keys are looked for at every depth (nested objects, also inside arrays),
//!   case-insensitively and ignoring `-`, `_`, `.` and spaces, so `API-Key` is caught too.

use serde_json::Value;

use crate::error::{DomainError, ErrorCode};
use crate::model::{Metadata, RetentionClass};

pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_SUBJECT_CHARS: usize = 256;
pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_METADATA_KEYS: usize = 64;
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const MAX_REASON_CHARS: usize = 1024;
pub const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// Substrings (after normalization) that mark a metadata key as naming a secret.
const SECRET_WORDS: [&str; 6] = [
    "password",
    "secret",
    "token",
    "privatekey",
    "credential",
    "apikey",
];

fn err(code: ErrorCode, detail: impl Into<String>) -> DomainError {
    DomainError::new(code, detail)
}

fn identifier(value: &str, what: &str, code: ErrorCode) -> Result<(), DomainError> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return Err(err(
            code,
            format!("{what} must be 1..={MAX_NAME_BYTES} characters"),
        ));
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(err(
            code,
            format!("{what} must start with a letter or digit"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(err(
            code,
            format!("{what} may only contain A-Z a-z 0-9 . _ - (found {c:?})"),
        ));
    }
    Ok(())
}

/// A package name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn package_name(name: &str) -> Result<(), DomainError> {
    identifier(name, "name", ErrorCode::InvalidName)
}

/// A producer: same grammar as a package name.
pub fn producer(producer: &str) -> Result<(), DomainError> {
    identifier(producer, "producer", ErrorCode::InvalidProducer)
}

/// A subject: 1..=256 characters, no control characters, not only whitespace.
pub fn subject(subject: &str) -> Result<(), DomainError> {
    let n = subject.chars().count();
    if n == 0 || n > MAX_SUBJECT_CHARS || subject.trim().is_empty() {
        return Err(err(
            ErrorCode::InvalidSubject,
            format!("subject must be 1..={MAX_SUBJECT_CHARS} characters"),
        ));
    }
    if subject.chars().any(char::is_control) {
        return Err(err(
            ErrorCode::InvalidSubject,
            "subject contains a control character",
        ));
    }
    Ok(())
}

/// A retention or hold reason: 1..=1024 characters, not blank, no control characters
/// other than newline and tab.
pub fn reason(reason: &str) -> Result<(), DomainError> {
    let n = reason.chars().count();
    if reason.trim().is_empty() || n > MAX_REASON_CHARS {
        return Err(err(
            ErrorCode::InvalidReason,
            format!("reason must be 1..={MAX_REASON_CHARS} characters and not blank"),
        ));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(err(
            ErrorCode::InvalidReason,
            "reason contains a control character",
        ));
    }
    Ok(())
}

/// `transient`, `raw-evidence`, ... (the contract's spelling).
pub fn retention_class(s: &str) -> Result<RetentionClass, DomainError> {
    RetentionClass::parse(s).ok_or_else(|| {
        err(
            ErrorCode::InvalidRetentionClass,
            format!(
                "retention_class must be one of transient, raw-evidence, summary-evidence, \
                 release-evidence, permanent-record (got {s:?})"
            ),
        )
    })
}

/// Validates request metadata (`None`/`null` = empty object) and returns it as a map.
pub fn metadata(value: Option<&Value>) -> Result<Metadata, DomainError> {
    match value {
        None | Some(Value::Null) => Ok(Metadata::new()),
        Some(Value::Object(map)) => {
            metadata_map(map)?;
            Ok(map.clone())
        }
        Some(_) => Err(err(
            ErrorCode::InvalidMetadata,
            "metadata must be a JSON object",
        )),
    }
}

/// The metadata rules on an already-parsed object.
pub fn metadata_map(map: &Metadata) -> Result<(), DomainError> {
    if map.len() > MAX_METADATA_KEYS {
        return Err(err(
            ErrorCode::InvalidMetadata,
            format!("metadata has {} keys (max {MAX_METADATA_KEYS})", map.len()),
        ));
    }
    if map.keys().any(|k| k.is_empty()) {
        return Err(err(
            ErrorCode::InvalidMetadata,
            "metadata keys must not be empty",
        ));
    }
    find_secret_key(map)?;
    let json = serde_json::to_string(map);
    // PostgreSQL's jsonb refuses `\u0000`: refuse it on every store alike.
    if json.as_ref().is_ok_and(|j| j.contains("\\u0000")) {
        return Err(err(
            ErrorCode::InvalidMetadata,
            "metadata must not contain NUL characters",
        ));
    }
    let size = json.map_or(usize::MAX, |j| j.len());
    if size > MAX_METADATA_BYTES {
        return Err(err(
            ErrorCode::InvalidMetadata,
            format!("metadata is {size} bytes as JSON (max {MAX_METADATA_BYTES})"),
        ));
    }
    Ok(())
}

/// `true` when a metadata key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_WORDS.iter().any(|w| folded.contains(w))
}

fn find_secret_key(map: &Metadata) -> Result<(), DomainError> {
    // Iterative walk: a deeply nested document cannot overflow the stack.
    let mut todo: Vec<&Value> = Vec::new();
    let mut next: Option<&Metadata> = Some(map);
    loop {
        if let Some(m) = next.take() {
            if let Some(k) = m.keys().find(|k| is_secret_key(k)) {
                return Err(err(
                    ErrorCode::SecretMetadataKey,
                    format!("metadata key {k:?} names a secret; secrets must not be stored"),
                ));
            }
            todo.extend(m.values());
        }
        match todo.pop() {
            None => return Ok(()),
            Some(Value::Object(m)) => next = Some(m),
            Some(Value::Array(items)) => todo.extend(items.iter()),
            Some(_) => {}
        }
    }
}

/// A file's `relative_path`, per the contract (see the module doc for the extra rule).
pub fn relative_path(path: &str) -> Result<(), DomainError> {
    let bad = |why: &str| Err(err(ErrorCode::InvalidPath, format!("relative_path {why}")));
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return bad(&format!("must be 1..={MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return bad("must not start with '/'");
    }
    if path.contains('\\') {
        return bad("must not contain a backslash");
    }
    if path.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if path.chars().any(is_bidi_control) {
        return bad("must not contain bidirectional text controls");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("must not contain an empty segment ('//' or a trailing '/')"),
            "." | ".." => return bad("must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    let b = path.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return bad("must not start with a drive prefix like 'C:'");
    }
    Ok(())
}

/// Characters that reorder how text displays (Unicode bidi embeddings, overrides,
/// isolates and marks): in a file name they make `evil\u{202e}gpj.exe` show as `evilexe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A media type `type/subtype[; param=value]*`; `None` or blank means
/// `application/octet-stream`. Returns the value trimmed, type and subtype lower-cased.
pub fn media_type(value: Option<&str>) -> Result<String, DomainError> {
    let raw = value.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(DEFAULT_MEDIA_TYPE.to_string());
    }
    let bad = || {
        err(
            ErrorCode::InvalidMediaType,
            format!("media_type must be type/subtype[; param=value] (got {raw:?})"),
        )
    };
    if raw.len() > 255 || raw.chars().any(char::is_control) {
        return Err(bad());
    }
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let (ty, sub) = essence.split_once('/').ok_or_else(bad)?;
    if !is_token(ty) || !is_token(sub) {
        return Err(bad());
    }
    let mut out = format!("{}/{}", ty.to_ascii_lowercase(), sub.to_ascii_lowercase());
    for param in parts {
        let (k, v) = param.trim().split_once('=').ok_or_else(bad)?;
        let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        if !is_token(k) || !(is_token(v) || quoted) {
            return Err(bad());
        }
        out.push_str("; ");
        out.push_str(&k.to_ascii_lowercase());
        out.push('=');
        out.push_str(v);
    }
    Ok(out)
}

/// RFC 9110 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// 64 hex digits; upper case is accepted and normalized to lower case.
pub fn sha256_hex(value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(err(
            ErrorCode::InvalidDigest,
            format!("sha256 must be 64 hex digits (got {value:?})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code<T: std::fmt::Debug>(r: Result<T, DomainError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn names_and_producers() {
        for ok in ["a", "guide-board", "A.b_c-1", &"x".repeat(128)] {
            package_name(ok).unwrap();
            producer(ok).unwrap();
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "ä", &"x".repeat(129)] {
            assert_eq!(code(package_name(bad)), ErrorCode::InvalidName, "{bad}");
            assert_eq!(code(producer(bad)), ErrorCode::InvalidProducer, "{bad}");
        }
    }

    #[test]
    fn subjects() {
        subject("Guide board / release 2026.11 — ünïcode").unwrap();
        subject(&"é".repeat(256)).unwrap();
        for bad in ["", "   ", "a\nb", "a\u{7f}", &"x".repeat(257)] {
            assert_eq!(code(subject(bad)), ErrorCode::InvalidSubject, "{bad:?}");
        }
    }

    #[test]
    fn reasons_and_classes() {
        reason("legal hold\nticket 42").unwrap();
        assert_eq!(code(reason(" ")), ErrorCode::InvalidReason);
        assert_eq!(code(reason("a\u{0}")), ErrorCode::InvalidReason);
        assert_eq!(
            retention_class("raw-evidence").unwrap(),
            RetentionClass::RawEvidence
        );
        assert_eq!(
            code(retention_class("raw_evidence")),
            ErrorCode::InvalidRetentionClass
        );
    }

    #[test]
    fn metadata_rules() {
        assert!(metadata(None).unwrap().is_empty());
        assert!(metadata(Some(&Value::Null)).unwrap().is_empty());
        let ok = json!({"repo_slug": "a/b", "run_id": 7, "tool_versions": {"x": "1"}});
        assert_eq!(metadata(Some(&ok)).unwrap().len(), 3);
        assert_eq!(
            code(metadata(Some(&json!([1])))),
            ErrorCode::InvalidMetadata
        );
        assert_eq!(
            code(metadata(Some(&json!({"": 1})))),
            ErrorCode::InvalidMetadata
        );
        let many: Metadata = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(code(metadata_map(&many)), ErrorCode::InvalidMetadata);
        let big = json!({"blob": "x".repeat(8 * 1024)});
        assert_eq!(code(metadata(Some(&big))), ErrorCode::InvalidMetadata);
    }

    #[test]
    fn secret_keys_at_any_depth() {
        for key in [
            "password",
            "DB_PASSWORD",
            "ApiKey",
            "api-key",
            "private_key",
            "gh_token",
            "Credentials",
            "client.secret",
        ] {
            assert_eq!(
                code(metadata(Some(&json!({ key: "x" })))),
                ErrorCode::SecretMetadataKey,
                "{key}"
            );
        }
        let nested = json!({"environment": {"vars": [{"AWS_SECRET_ACCESS_KEY": "x"}]}});
        assert_eq!(code(metadata(Some(&nested))), ErrorCode::SecretMetadataKey);
        // Values are not keys: a value mentioning a secret word is fine.
        metadata(Some(&json!({"note": "password rotated"}))).unwrap();
    }

    #[test]
    fn paths() {
        for ok in [
            "a",
            "run.json",
            "reports/report.md",
            "a/b/c.d",
            ".hidden",
            "..a",
            "a..",
            "%2e%2e/x",
            "ab:c",
            "x/C:/y",
            "ü/ß",
        ] {
            relative_path(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long = "a".repeat(1025);
        for bad in [
            "", "/a", "a/", "a//b", "./a", "a/./b", "../a", "a/..", "a\\b", "a\0b", "a\nb", "C:/x",
            "c:x", "a:b", &long,
        ] {
            assert_eq!(code(relative_path(bad)), ErrorCode::InvalidPath, "{bad:?}");
        }
        relative_path(&"a".repeat(1024)).unwrap();
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(None).unwrap(), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type(Some(" ")).unwrap(), DEFAULT_MEDIA_TYPE);
        assert_eq!(media_type(Some("Text/Markdown")).unwrap(), "text/markdown");
        assert_eq!(
            media_type(Some("text/plain;charset=utf-8")).unwrap(),
            "text/plain; charset=utf-8"
        );
        media_type(Some("application/vnd.api+json")).unwrap();
        media_type(Some("multipart/x; boundary=\"a b\"")).unwrap();
        for bad in [
            "text",
            "/plain",
            "text/",
            "te xt/plain",
            "text/plain; charset",
            "a/b\u{7}",
            "a/b/c",
        ] {
            assert_eq!(
                code(media_type(Some(bad))),
                ErrorCode::InvalidMediaType,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digests() {
        let d = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(sha256_hex(d).unwrap(), d.to_ascii_lowercase());
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(code(sha256_hex(bad)), ErrorCode::InvalidDigest);
        }
    }

    #[test]
    fn metadata_with_nul_anywhere_is_refused() {
        for bad in [
            serde_json::json!({"k": "a\u{0}b"}),
            serde_json::json!({"k\u{0}": "v"}),
            serde_json::json!({"k": {"deep": ["x", "\u{0}"]}}),
        ] {
            assert_eq!(
                metadata(Some(&bad)).unwrap_err().code,
                ErrorCode::InvalidMetadata,
                "{bad}"
            );
        }
        assert!(metadata(Some(&serde_json::json!({"k": "tab\there"}))).is_ok());
    }
}
