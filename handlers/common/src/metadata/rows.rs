//! Decoding result rows into the model, column by column in `SELECT` order.
//!
//! Decision: queries name their columns explicitly and the decoders read them positionally
//! through `Cols`, so one `PACKAGE_COLUMNS` list serves every package query. A row that does
//! not decode is a broken store, reported as `Unavailable` (never a panic).

use artifact_store_core::model::{
    AuditEvent, AuditEventType, File, Hold, Package, PackageStatus, RetentionClass, RetentionEvent,
    RetentionEventType, StorageLocation, Timestamp,
};
use artifact_store_core::ports::{MetaResult, MetadataError, PendingUpload};
use artifact_store_core::time;

use super::conn::{SqlRow, SqlValue};

pub(crate) fn corrupt(what: &str) -> MetadataError {
    MetadataError::Unavailable(format!("metadata row does not decode: {what}"))
}

/// Reads a row's columns left to right.
pub(crate) struct Cols<'a> {
    row: &'a [SqlValue],
    at: usize,
}

impl<'a> Cols<'a> {
    pub(crate) fn new(row: &'a SqlRow) -> Cols<'a> {
        Cols { row, at: 0 }
    }

    fn next(&mut self) -> MetaResult<&'a SqlValue> {
        let v = self
            .row
            .get(self.at)
            .ok_or_else(|| corrupt("missing column"))?;
        self.at += 1;
        Ok(v)
    }

    pub(crate) fn opt_text(&mut self) -> MetaResult<Option<String>> {
        match self.next()? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s.clone())),
            SqlValue::Blob(b) => String::from_utf8(b.clone())
                .map(Some)
                .map_err(|_| corrupt("text column")),
            SqlValue::Int(i) => Ok(Some(i.to_string())),
        }
    }

    pub(crate) fn text(&mut self) -> MetaResult<String> {
        self.opt_text()?.ok_or_else(|| corrupt("null text"))
    }

    pub(crate) fn opt_int(&mut self) -> MetaResult<Option<i64>> {
        match self.next()? {
            SqlValue::Null => Ok(None),
            SqlValue::Int(i) => Ok(Some(*i)),
            SqlValue::Text(s) => s.parse().map(Some).map_err(|_| corrupt("integer column")),
            SqlValue::Blob(_) => Err(corrupt("integer column")),
        }
    }

    pub(crate) fn int(&mut self) -> MetaResult<i64> {
        self.opt_int()?.ok_or_else(|| corrupt("null integer"))
    }

    pub(crate) fn u64(&mut self) -> MetaResult<u64> {
        u64::try_from(self.int()?).map_err(|_| corrupt("negative count"))
    }

    pub(crate) fn opt_time(&mut self) -> MetaResult<Option<Timestamp>> {
        self.opt_text()?
            .map(|s| time::parse(&s).map_err(|_| corrupt("timestamp")))
            .transpose()
    }

    pub(crate) fn time(&mut self) -> MetaResult<Timestamp> {
        self.opt_time()?.ok_or_else(|| corrupt("null timestamp"))
    }
}

/// Columns of `artifact_packages p` that `package` decodes (holds are loaded separately).
pub(crate) const PACKAGE_COLUMNS: &str = "p.id, p.name, p.producer, p.subject, \
    p.retention_class, p.status, p.created_at, p.finalized_at, p.expires_at, p.metadata, \
    p.file_count, p.total_bytes";

pub(crate) fn package(row: &SqlRow) -> MetaResult<Package> {
    let mut c = Cols::new(row);
    let id = c.text()?;
    let name = c.text()?;
    let producer = c.text()?;
    let subject = c.text()?;
    let retention_class =
        RetentionClass::parse(&c.text()?).ok_or_else(|| corrupt("retention_class"))?;
    let status = PackageStatus::parse(&c.text()?).ok_or_else(|| corrupt("status"))?;
    let created_at = c.time()?;
    let finalized_at = c.opt_time()?;
    let expires_at = c.opt_time()?;
    let metadata = match serde_json::from_str(&c.text()?) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("metadata")),
    };
    Ok(Package {
        id,
        name,
        producer,
        subject,
        retention_class,
        status,
        created_at,
        finalized_at,
        expires_at,
        metadata,
        file_count: c.u64()?,
        total_bytes: c.u64()?,
        holds: Vec::new(),
        deletion_eligible: false,
    })
}

pub(crate) const HOLD_COLUMNS: &str =
    "h.id, h.package_id, h.reason, h.created_by, h.created_at, h.released_at";

pub(crate) fn hold(row: &SqlRow) -> MetaResult<Hold> {
    let mut c = Cols::new(row);
    Ok(Hold {
        id: c.text()?,
        package_id: c.text()?,
        reason: c.text()?,
        created_by: c.text()?,
        created_at: c.time()?,
        released_at: c.opt_time()?,
    })
}

/// Columns of `artifact_files f JOIN storage_locations l` that `file_with_location` decodes.
pub(crate) const FILE_COLUMNS: &str = "f.id, f.package_id, f.relative_path, f.media_type, \
    f.size_bytes, f.sha256, f.created_at, l.backend_id, l.object_key";

pub(crate) fn file_with_location(c: &mut Cols<'_>) -> MetaResult<(File, StorageLocation)> {
    let file = File {
        id: c.text()?,
        package_id: c.text()?,
        relative_path: c.text()?,
        media_type: c.text()?,
        size_bytes: c.u64()?,
        sha256: c.text()?,
        created_at: c.time()?,
    };
    let location = StorageLocation {
        backend_id: c.text()?,
        object_key: c.text()?,
    };
    Ok((file, location))
}

pub(crate) const RETENTION_EVENT_COLUMNS: &str = "id, package_id, event_type, reason, \
    created_by, created_at, previous_expires_at, new_expires_at";

pub(crate) fn retention_event(row: &SqlRow) -> MetaResult<RetentionEvent> {
    let mut c = Cols::new(row);
    Ok(RetentionEvent {
        id: c.text()?,
        package_id: c.text()?,
        event_type: RetentionEventType::parse(&c.text()?)
            .ok_or_else(|| corrupt("retention event_type"))?,
        reason: c.text()?,
        created_by: c.text()?,
        created_at: c.time()?,
        previous_expires_at: c.opt_time()?,
        new_expires_at: c.opt_time()?,
    })
}

pub(crate) const AUDIT_COLUMNS: &str = "id, seq, event_type, package_id, file_id, actor, \
    created_at, details, prev_hash, hash";

pub(crate) fn audit_event(row: &SqlRow) -> MetaResult<AuditEvent> {
    let mut c = Cols::new(row);
    Ok(AuditEvent {
        id: c.text()?,
        seq: c.u64()?,
        event_type: AuditEventType::parse(&c.text()?).ok_or_else(|| corrupt("audit event_type"))?,
        package_id: c.opt_text()?,
        file_id: c.opt_text()?,
        actor: c.text()?,
        created_at: c.time()?,
        details: serde_json::from_str(&c.text()?).map_err(|_| corrupt("audit details"))?,
        prev_hash: c.text()?,
        hash: c.text()?,
    })
}

pub(crate) const PENDING_COLUMNS: &str = "id, package_id, backend_id, staging_key, started_at";

pub(crate) fn pending_upload(row: &SqlRow) -> MetaResult<PendingUpload> {
    let mut c = Cols::new(row);
    Ok(PendingUpload {
        id: c.text()?,
        package_id: c.text()?,
        backend_id: c.text()?,
        staging_key: c.text()?,
        started_at: c.time()?,
    })
}
