//! Upload sessions: one big file sent as numbered parts, so that no request is larger than
//! a serverless host allows (about 10 MiB and 30 s on Akamai Functions or Fermyon Cloud).
//!
//! This module holds the rules a session follows wherever it runs: how a file is cut into
//! parts, which part may be sent, and the resumable sha256 that lets the registry verify
//! the whole file without reading it back when parts arrive in order (the running digest
//! is stored between requests, so any instance continues it).

use crate::error::{DomainError, ErrorCode};
use crate::model::Timestamp;
use sha2_resumable::Digest;
use sha2_resumable::digest::common::hazmat::SerializableState;

const MIB: u64 = 1024 * 1024;
/// Every request stays under a 10 MiB body cap with room for headers.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// S3 refuses parts under 5 MiB (but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// A part through the gateway is held in memory once; this bounds it.
pub const MAX_PART_SIZE: u64 = 64 * MIB;
/// Part sizes are whole MiB: a kv part is whole chunks, and a sha256 state between parts
/// never holds a partial block.
pub const PART_ALIGN: u64 = MIB;
/// S3's limit on the parts of one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// How long a session may stay open (the sweep aborts it afterwards).
pub const SESSION_SECS: i64 = 24 * 3600;

/// How a file of `size_bytes` is cut: `part_count` parts of `part_size`, the last shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size_bytes: u64,
    pub part_size: u64,
    pub part_count: u32,
}

fn invalid_part(detail: impl Into<String>) -> DomainError {
    DomainError::new(ErrorCode::InvalidPart, detail)
}

impl PartPlan {
    /// The plan for a file of `size_bytes`, with the client's `part_size` or the default
    /// (grown to stay within `MAX_PARTS`).
    pub fn new(size_bytes: u64, part_size: Option<u64>) -> Result<PartPlan, DomainError> {
        if size_bytes == 0 {
            return Err(invalid_part(
                "size_bytes must be at least 1 (send an empty file with a plain upload)",
            ));
        }
        let part_size = match part_size {
            Some(p) => p,
            None => {
                DEFAULT_PART_SIZE.max(size_bytes.div_ceil(MAX_PARTS).next_multiple_of(PART_ALIGN))
            }
        };
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) || part_size % PART_ALIGN != 0 {
            return Err(invalid_part(format!(
                "part_size must be a whole number of MiB from {} to {} MiB",
                MIN_PART_SIZE / MIB,
                MAX_PART_SIZE / MIB
            )));
        }
        let count = size_bytes.div_ceil(part_size);
        if count > MAX_PARTS {
            return Err(invalid_part(format!(
                "{count} parts of {part_size} bytes: at most {MAX_PARTS} parts"
            )));
        }
        Ok(PartPlan {
            size_bytes,
            part_size,
            part_count: count as u32,
        })
    }

    /// Byte offset of part `number` (1-based) in the file.
    pub fn offset(&self, number: u32) -> u64 {
        u64::from(number.saturating_sub(1)) * self.part_size
    }

    /// The exact length part `number` must have; `invalid_part` for a number outside
    /// `1..=part_count`.
    pub fn part_len(&self, number: u32) -> Result<u64, DomainError> {
        if number == 0 || number > self.part_count {
            return Err(invalid_part(format!(
                "part numbers run from 1 to {}, not {number}",
                self.part_count
            )));
        }
        Ok(self.part_size.min(self.size_bytes - self.offset(number)))
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Receiving parts.
    Open,
    /// The parts are one object at the staging key (S3's multipart upload is completed):
    /// only verification and the commit are left.
    Assembled,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Assembled => "assembled",
        }
    }

    pub fn parse(s: &str) -> Option<SessionState> {
        match s {
            "open" => Some(SessionState::Open),
            "assembled" => Some(SessionState::Assembled),
            _ => None,
        }
    }
}

/// How a session's bytes reach the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Parts through the registry (`PUT /uploads/{id}/parts/{n}`), hashed on the way.
    Gateway,
    /// One presigned PUT of the whole file straight to the backend's staging key, signed
    /// with the declared sha256: the storage server checks every byte and keeps nothing
    /// else, so the registry neither sees nor reads back the bytes.
    Direct,
}

impl Transfer {
    pub fn as_str(self) -> &'static str {
        match self {
            Transfer::Gateway => "gateway",
            Transfer::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Transfer> {
        match s {
            "gateway" => Some(Transfer::Gateway),
            "direct" => Some(Transfer::Direct),
            _ => None,
        }
    }
}

/// An upload session. Its id is also the id of the pending upload that carries its staging
/// key, pin and orphan handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub package_id: String,
    pub relative_path: String,
    pub media_type: String,
    pub sha256: String,
    pub plan: PartPlan,
    pub transfer: Transfer,
    pub backend_id: String,
    pub staging_key: String,
    /// The backend's own id for the parts (S3's `UploadId`; empty on kv).
    pub backend_upload_id: String,
    pub actor: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub state: SessionState,
    /// Parts `1..=hashed_parts` are in `hash_state`.
    pub hashed_parts: u32,
    /// `ResumableSha256::to_hex` of the file's first `hashed_parts` parts (empty: none).
    pub hash_state: String,
}

impl UploadSession {
    /// The pending upload the session rides on (same id, staging key and package).
    pub fn pending_upload(&self) -> crate::ports::PendingUpload {
        crate::ports::PendingUpload {
            id: self.id.clone(),
            package_id: self.package_id.clone(),
            backend_id: self.backend_id.clone(),
            staging_key: self.staging_key.clone(),
            started_at: self.created_at,
        }
    }
}

/// A part the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPart {
    pub number: u32,
    pub size_bytes: u64,
    pub sha256: String,
    /// What the backend needs to assemble it (S3's ETag; empty on kv).
    pub etag: String,
}

/// A sha256 whose state can be stored between requests and continued elsewhere.
/// (sha2 0.11 serializes its state; 0.10, used elsewhere, cannot.)
#[derive(Clone, Default)]
pub struct ResumableSha256(sha2_resumable::Sha256);

impl ResumableSha256 {
    pub fn new() -> ResumableSha256 {
        ResumableSha256::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The state as hex (hash words, length and any partial block).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.serialize())
    }

    /// `None` for a string that is no stored state; the empty string is a fresh state.
    pub fn from_hex(s: &str) -> Option<ResumableSha256> {
        if s.is_empty() {
            return Some(ResumableSha256::new());
        }
        let bytes = hex::decode(s).ok()?;
        let state = bytes.as_slice().try_into().ok()?;
        sha2_resumable::Sha256::deserialize(state)
            .ok()
            .map(ResumableSha256)
    }

    /// The digest of everything fed in, as lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn default_plan_cuts_8_mib_parts() {
        let p = PartPlan::new(20 * MIB + 1, None).unwrap();
        assert_eq!((p.part_size, p.part_count), (8 * MIB, 3));
        assert_eq!(p.part_len(1).unwrap(), 8 * MIB);
        assert_eq!(p.part_len(3).unwrap(), 4 * MIB + 1);
        assert_eq!(p.offset(3), 16 * MIB);
        assert_eq!(p.part_len(0).unwrap_err().code, ErrorCode::InvalidPart);
        assert_eq!(p.part_len(4).unwrap_err().code, ErrorCode::InvalidPart);
    }

    #[test]
    fn huge_files_get_bigger_parts_within_the_part_limit() {
        let size = 200 * 1024 * MIB;
        let p = PartPlan::new(size, None).unwrap();
        assert!(u64::from(p.part_count) <= MAX_PARTS);
        assert_eq!(p.part_size % PART_ALIGN, 0);
        assert!(p.part_size > DEFAULT_PART_SIZE);
    }

    #[test]
    fn part_sizes_are_whole_mib_in_range() {
        for bad in [MIB, 5 * MIB + 1, 65 * MIB] {
            assert_eq!(
                PartPlan::new(100 * MIB, Some(bad)).unwrap_err().code,
                ErrorCode::InvalidPart,
                "{bad}"
            );
        }
        assert!(PartPlan::new(100 * MIB, Some(5 * MIB)).is_ok());
        assert!(PartPlan::new(0, None).is_err());
        assert!(PartPlan::new(MAX_PARTS * 5 * MIB + 1, Some(5 * MIB)).is_err());
    }

    #[test]
    fn a_stored_state_continues_to_the_same_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 4096, 9_999, 10_000] {
            let mut first = ResumableSha256::new();
            first.update(&data[..cut]);
            let stored = first.to_hex();
            let mut resumed = ResumableSha256::from_hex(&stored).expect("state");
            resumed.update(&data[cut..]);
            assert_eq!(
                resumed.finish_hex(),
                hex::encode(sha2::Sha256::digest(&data)),
                "cut at {cut}"
            );
        }
        assert!(ResumableSha256::from_hex("00").is_none());
        assert_eq!(
            ResumableSha256::from_hex("").expect("fresh").finish_hex(),
            hex::encode(sha2::Sha256::digest(b""))
        );
        assert!(ResumableSha256::from_hex("zz").is_none());
    }
}
