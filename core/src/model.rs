//! The seed's things, with serde shapes exactly as in the API contract.
//!
//! These are plain data: every rule about them (validation, retention, state changes) lives
//! in its own module so one concept has one home.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Timestamps are RFC 3339 UTC with second precision (`2026-11-28T12:00:00Z`).
pub type Timestamp = DateTime<Utc>;

/// Free-form package metadata: a JSON object (validated by `validate::metadata`).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetentionClass {
    Transient,
    RawEvidence,
    SummaryEvidence,
    ReleaseEvidence,
    PermanentRecord,
}

impl RetentionClass {
    pub const ALL: [RetentionClass; 5] = [
        RetentionClass::Transient,
        RetentionClass::RawEvidence,
        RetentionClass::SummaryEvidence,
        RetentionClass::ReleaseEvidence,
        RetentionClass::PermanentRecord,
    ];

    /// The contract's spelling: `raw-evidence`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionClass::Transient => "transient",
            RetentionClass::RawEvidence => "raw-evidence",
            RetentionClass::SummaryEvidence => "summary-evidence",
            RetentionClass::ReleaseEvidence => "release-evidence",
            RetentionClass::PermanentRecord => "permanent-record",
        }
    }

    pub fn parse(s: &str) -> Option<RetentionClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    Open,
    Finalized,
    Deleting,
    Deleted,
}

impl PackageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Open => "open",
            PackageStatus::Finalized => "finalized",
            PackageStatus::Deleting => "deleting",
            PackageStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<PackageStatus> {
        [Self::Open, Self::Finalized, Self::Deleting, Self::Deleted]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub producer: String,
    pub subject: String,
    pub retention_class: RetentionClass,
    pub status: PackageStatus,
    pub created_at: Timestamp,
    pub finalized_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub metadata: Metadata,
    pub file_count: u64,
    pub total_bytes: u64,
    pub holds: Vec<Hold>,
    /// Computed at response time by `retention::deletion_eligible`, never stored.
    pub deletion_eligible: bool,
}

/// A file of a package (the contract's `File`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub id: String,
    pub package_id: String,
    pub relative_path: String,
    pub media_type: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: Timestamp,
}

/// Where a file's bytes live: a backend and a content-addressed object key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageLocation {
    pub backend_id: String,
    pub object_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub package_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub released_at: Option<Timestamp>,
}

impl Hold {
    pub fn is_active(&self) -> bool {
        self.released_at.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionEventType {
    DefaultRuleApplied,
    Extended,
    HoldApplied,
    HoldReleased,
    DeletionEligible,
    Deleted,
}

impl RetentionEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DefaultRuleApplied => "default_rule_applied",
            Self::Extended => "extended",
            Self::HoldApplied => "hold_applied",
            Self::HoldReleased => "hold_released",
            Self::DeletionEligible => "deletion_eligible",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::DefaultRuleApplied,
            Self::Extended,
            Self::HoldApplied,
            Self::HoldReleased,
            Self::DeletionEligible,
            Self::Deleted,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionEvent {
    pub id: String,
    pub package_id: String,
    pub event_type: RetentionEventType,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub previous_expires_at: Option<Timestamp>,
    pub new_expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEventType {
    PackageCreated,
    FileUploaded,
    PackageFinalized,
    RetrievalRequested,
    RetentionExtended,
    HoldApplied,
    HoldReleased,
    DeletionRequested,
    DeletionCompleted,
    DeletionFailed,
    /// Served bytes did not match the stored digest (download verification).
    CorruptionDetected,
    /// A sweep ran; `details` carries its counts.
    SweepCompleted,
    /// Bytes of an upload that never committed were removed by a sweep.
    OrphanRemoved,
    /// An upload session's assembled bytes did not hash to its declared sha256: they were
    /// deleted and the session ended.
    UploadFailed,
}

impl AuditEventType {
    pub const ALL: [AuditEventType; 14] = [
        Self::PackageCreated,
        Self::FileUploaded,
        Self::PackageFinalized,
        Self::RetrievalRequested,
        Self::RetentionExtended,
        Self::HoldApplied,
        Self::HoldReleased,
        Self::DeletionRequested,
        Self::DeletionCompleted,
        Self::DeletionFailed,
        Self::CorruptionDetected,
        Self::SweepCompleted,
        Self::OrphanRemoved,
        Self::UploadFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PackageCreated => "package_created",
            Self::FileUploaded => "file_uploaded",
            Self::PackageFinalized => "package_finalized",
            Self::RetrievalRequested => "retrieval_requested",
            Self::RetentionExtended => "retention_extended",
            Self::HoldApplied => "hold_applied",
            Self::HoldReleased => "hold_released",
            Self::DeletionRequested => "deletion_requested",
            Self::DeletionCompleted => "deletion_completed",
            Self::DeletionFailed => "deletion_failed",
            Self::CorruptionDetected => "corruption_detected",
            Self::SweepCompleted => "sweep_completed",
            Self::OrphanRemoved => "orphan_removed",
            Self::UploadFailed => "upload_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One link of the append-only audit chain (see `audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub seq: u64,
    pub event_type: AuditEventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    pub actor: String,
    pub created_at: Timestamp,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// A page of a list endpoint: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
