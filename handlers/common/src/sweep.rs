//! The expiry sweep: one function shared by the cron component and `POST /admin/sweeps`.
//!
//! Decision: the sweep is an orchestration of `MetadataStore` steps around byte deletion,
//! in an order that never loses track of bytes: claim (package `deleting`, leased) ->
//! `objects_to_delete` (blobs `deleting`, no new references) -> delete each object ->
//! `forget_blob` -> `complete_deletion`. Any failure records `deletion_failed` and leaves
//! the package `deleting`; the next sweep claims it again and repeats the idempotent
//! deletes. Orphans (uploads that never committed) lose their staging bytes after a grace
//! period. Generic over `ObjectStores` so it runs natively against fakes as well as Spin's
//! backends.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{AuditEventType, Timestamp};
use artifact_store_core::ports::{
    AuditDraft, MetaResult, MetadataError, MetadataStore, ObjectStore, PendingUpload,
};
use artifact_store_core::time;
use serde_json::json;

use crate::config::Config;
use crate::storage::{Backend, Backends};

/// Looks up the object store a storage location's `backend_id` names.
pub trait ObjectStores {
    type Store: ObjectStore;
    /// `None` when this deployment does not configure that backend.
    fn object_store(&self, backend_id: &str) -> Option<&Self::Store>;
}

impl ObjectStores for Backends {
    type Store = Backend;

    fn object_store(&self, backend_id: &str) -> Option<&Backend> {
        self.get(backend_id)
    }
}

/// How much one sweep does and how long its claims last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepConfig {
    /// Packages claimed per sweep (and stale uploads looked at).
    pub batch_size: u32,
    /// An `open` package older than this is abandoned.
    pub open_ttl_secs: i64,
    /// How long a claim keeps other sweepers off a package.
    pub lease_secs: i64,
    /// A pending upload older than this is an orphan.
    pub orphan_grace_secs: i64,
}

impl SweepConfig {
    pub fn from_config(config: &Config) -> SweepConfig {
        SweepConfig {
            batch_size: config.sweep_batch_size,
            open_ttl_secs: config.open_package_ttl_seconds,
            lease_secs: config.sweep_lease_seconds,
            orphan_grace_secs: config.orphan_grace_seconds,
        }
    }
}

/// What a sweep did: the `POST /admin/sweeps` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Packages looked at: claimed ones plus eligible ones kept by a hold.
    pub examined: u64,
    pub deleted: u64,
    /// Eligible packages kept by an active hold.
    pub held: u64,
    /// Deletions that failed this time (retried by the next sweep).
    pub failed: u64,
    /// Staging objects of abandoned uploads removed (not part of the contract's answer).
    #[serde(skip)]
    pub orphans_removed: u64,
}

/// Runs one sweep at `now` on behalf of `actor` (the operator, or `sweeper` for cron).
pub async fn run_sweep<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    backends: &B,
    now: Timestamp,
    cfg: &SweepConfig,
    actor: &str,
) -> MetaResult<SweepReport> {
    let mut report = SweepReport {
        held: meta.count_held_eligible(now, cfg.open_ttl_secs).await?,
        ..SweepReport::default()
    };
    let claims = meta
        .claim_for_deletion(
            now,
            cfg.open_ttl_secs,
            cfg.batch_size,
            cfg.lease_secs,
            actor,
        )
        .await?;
    report.examined = report.held + claims.len() as u64;
    for claim in &claims {
        match delete_package(meta, backends, &claim.package.id, actor, now).await? {
            Outcome::Deleted => report.deleted += 1,
            Outcome::Held => report.held += 1,
            Outcome::Failed => report.failed += 1,
        }
    }
    let before = time::add_secs(now, -cfg.orphan_grace_secs).unwrap_or(now);
    for pending in meta.stale_uploads(before, cfg.batch_size).await? {
        if remove_orphan(meta, backends, &pending, actor).await? {
            report.orphans_removed += 1;
        }
    }
    meta.append_audit(AuditDraft {
        event_type: AuditEventType::SweepCompleted,
        package_id: None,
        file_id: None,
        actor: actor.to_string(),
        details: json!({
            "examined": report.examined,
            "deleted": report.deleted,
            "held": report.held,
            "failed": report.failed,
            "orphans_removed": report.orphans_removed,
        }),
    })
    .await?;
    eprintln!(
        "artifact-store: sweep: examined={} deleted={} held={} failed={} orphans_removed={}",
        report.examined, report.deleted, report.held, report.failed, report.orphans_removed
    );
    Ok(report)
}

enum Outcome {
    Deleted,
    Held,
    Failed,
}

/// Deletes one claimed package's bytes and records the outcome. Only a metadata store
/// failure is an `Err` (the sweep stops; leases let the next one resume).
async fn delete_package<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    backends: &B,
    package_id: &str,
    actor: &str,
    now: Timestamp,
) -> MetaResult<Outcome> {
    let locations = match meta.objects_to_delete(package_id).await {
        Ok(l) => l,
        // A hold arrived after the claim (which put the package back): keep everything.
        Err(MetadataError::Domain(e))
            if matches!(e.code, ErrorCode::HoldActive | ErrorCode::InvalidState) =>
        {
            return Ok(Outcome::Held);
        }
        Err(e) => return Err(e),
    };
    for location in &locations {
        let deleted = match backends.object_store(&location.backend_id) {
            Some(store) => store
                .delete(&location.object_key)
                .await
                .map_err(|e| e.to_string()),
            None => Err(format!("backend {} is not configured", location.backend_id)),
        };
        if let Err(detail) = deleted {
            let detail = format!("deleting {}: {detail}", location.object_key);
            eprintln!("artifact-store: sweep: package {package_id}: {detail}");
            meta.fail_deletion(package_id, actor, &detail).await?;
            return Ok(Outcome::Failed);
        }
        meta.forget_blob(location).await?;
    }
    meta.complete_deletion(package_id, actor, now).await?;
    Ok(Outcome::Deleted)
}

/// Removes a stale upload's bytes (its staging object, and the object it wrote to a
/// content address if nothing else needs it) and forgets it. `false` when the bytes could
/// not be removed (kept for the next sweep).
async fn remove_orphan<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    backends: &B,
    pending: &PendingUpload,
    actor: &str,
) -> MetaResult<bool> {
    if let Some(store) = backends.object_store(&pending.backend_id) {
        if let Some(location) = meta.claim_orphan_object(&pending.id).await? {
            if let Err(e) = store.delete(&location.object_key).await {
                eprintln!("artifact-store: sweep: orphan {}: {e}", location.object_key);
                return Ok(false);
            }
            meta.forget_blob(&location).await?;
        }
        if let Err(e) = store.delete(&pending.staging_key).await {
            eprintln!("artifact-store: sweep: orphan {}: {e}", pending.staging_key);
            return Ok(false);
        }
    }
    meta.abort_upload(&pending.id).await?;
    meta.append_audit(AuditDraft::for_package(
        AuditEventType::OrphanRemoved,
        &pending.package_id,
        actor,
        json!({
            "upload_id": pending.id,
            "backend_id": pending.backend_id,
            "staging_key": pending.staging_key,
            "started_at": time::format(pending.started_at),
        }),
    ))
    .await?;
    Ok(true)
}
