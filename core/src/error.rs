//! The contract's problem `code`s, defined once.
//!
//! Every failure a client can see maps to exactly one `ErrorCode`, which fixes its HTTP
//! status and title. Handlers never build codes from strings: typed errors in core and
//! in the adapters convert into `Problem` through `ErrorCode`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400
    BadRequest,
    InvalidJson,
    // 401 / 403
    Unauthorized,
    Forbidden,
    // 404
    NotFound,
    // 405
    MethodNotAllowed,
    // 409
    PackageFinalized,
    PackageNotFinalized,
    DuplicatePath,
    InvalidState,
    HoldReleased,
    HoldActive,
    /// The file's stored bytes failed verification (the scrubber found them changed or
    /// missing): the registry refuses to serve them. 409: the file's state, not the request,
    /// is the problem, and it lasts until an operator repairs the object.
    ObjectCorrupt,
    // 410
    Gone,
    // 413
    PayloadTooLarge,
    // 415
    UnsupportedMediaType,
    // 416
    RangeNotSatisfiable,
    // 422
    InvalidName,
    InvalidProducer,
    InvalidSubject,
    InvalidRetentionClass,
    InvalidMetadata,
    SecretMetadataKey,
    InvalidPath,
    InvalidMediaType,
    InvalidDigest,
    DigestMismatch,
    /// An upload session's part: number out of range, or not the length the plan says.
    InvalidPart,
    SizeMismatch,
    InvalidExtension,
    InvalidReason,
    InvalidQuery,
    // 500
    ObjectMissing,
    Internal,
    // 503
    BackendUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidJson => "invalid_json",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PackageFinalized => "package_finalized",
            Self::PackageNotFinalized => "package_not_finalized",
            Self::DuplicatePath => "duplicate_path",
            Self::InvalidState => "invalid_state",
            Self::HoldReleased => "hold_released",
            Self::HoldActive => "hold_active",
            Self::ObjectCorrupt => "object_corrupt",
            Self::Gone => "gone",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::InvalidName => "invalid_name",
            Self::InvalidProducer => "invalid_producer",
            Self::InvalidSubject => "invalid_subject",
            Self::InvalidRetentionClass => "invalid_retention_class",
            Self::InvalidMetadata => "invalid_metadata",
            Self::SecretMetadataKey => "secret_metadata_key",
            Self::InvalidPath => "invalid_path",
            Self::InvalidMediaType => "invalid_media_type",
            Self::InvalidDigest => "invalid_digest",
            Self::DigestMismatch => "digest_mismatch",
            Self::InvalidPart => "invalid_part",
            Self::SizeMismatch => "size_mismatch",
            Self::InvalidExtension => "invalid_extension",
            Self::InvalidReason => "invalid_reason",
            Self::InvalidQuery => "invalid_query",
            Self::ObjectMissing => "object_missing",
            Self::Internal => "internal",
            Self::BackendUnavailable => "backend_unavailable",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidJson => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PackageFinalized
            | Self::PackageNotFinalized
            | Self::DuplicatePath
            | Self::InvalidState
            | Self::HoldReleased
            | Self::HoldActive
            | Self::ObjectCorrupt => 409,
            Self::Gone => 410,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::InvalidName
            | Self::InvalidProducer
            | Self::InvalidSubject
            | Self::InvalidRetentionClass
            | Self::InvalidMetadata
            | Self::SecretMetadataKey
            | Self::InvalidPath
            | Self::InvalidMediaType
            | Self::InvalidDigest
            | Self::DigestMismatch
            | Self::InvalidPart
            | Self::SizeMismatch
            | Self::InvalidExtension
            | Self::InvalidReason
            | Self::InvalidQuery => 422,
            Self::ObjectMissing | Self::Internal => 500,
            Self::BackendUnavailable => 503,
        }
    }

    pub fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            410 => "Gone",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            416 => "Range Not Satisfiable",
            422 => "Unprocessable Content",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }
}

/// An RFC 9457 problem, as served with `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: ErrorCode,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("https://artifact-store.dev/problems/{}", code.as_str()),
            title: code.title().to_string(),
            status: code.status(),
            detail: detail.into(),
            code,
        }
    }
}

/// A domain rule was broken: the code says which, the detail says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub detail: String,
}

impl DomainError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> DomainError {
        DomainError {
            code,
            detail: detail.into(),
        }
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Problem {
        Problem::new(e.code, e.detail)
    }
}
