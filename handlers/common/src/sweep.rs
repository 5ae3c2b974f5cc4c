//! The expiry sweep: one function shared by the cron component and `POST /admin/sweeps`.
//!
//! Decision: the sweep is an orchestration of `MetadataStore` steps around byte deletion,
//! in an order that never loses track of bytes: claim (package `deleting`, leased) ->
//! `objects_to_delete` (blobs `deleting`, no new references) -> delete each object ->
//! `forget_blob` -> `complete_deletion`. Any failure records `deletion_failed` and leaves
//! the package `deleting`; the next sweep claims it again and repeats the idempotent
//! deletes. Orphans (uploads that never committed) lose their staging bytes after a grace
//! period. Each sweep ends with a slice of scrubbing (`scrub::scrub_slice`) within what is
//! left of the verification budget. Generic over `ObjectStores` so it runs natively
//! against fakes as well as Spin's backends.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{AuditEventType, PackageStatus, RetentionClass, Timestamp};
use artifact_store_core::ports::{
    AuditDraft, MetaResult, MetadataError, MetadataStore, ObjectStore, PendingUpload,
};
use artifact_store_core::retention::{self, KeepReason, RetentionFacts};
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
    /// Time one sweep spends continuing upload sessions' verifications.
    pub verify_budget: std::time::Duration,
}

impl SweepConfig {
    pub fn from_config(config: &Config) -> SweepConfig {
        SweepConfig {
            batch_size: config.sweep_batch_size,
            open_ttl_secs: config.open_package_ttl_seconds,
            lease_secs: config.sweep_lease_seconds,
            orphan_grace_secs: config.orphan_grace_seconds,
            verify_budget: std::time::Duration::from_millis(config.verify_budget_ms),
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

/// What a sweep would do at `now`, changing nothing: `POST /admin/sweeps?dry_run=true`
/// and `GET /admin/sweeps`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepPlan {
    pub as_of: Timestamp,
    /// Packages the sweep would delete, in the order it would claim them.
    pub would_delete: Vec<PlannedPackage>,
    /// Packages it looked at and keeps, with the reason.
    pub kept: Vec<PlannedPackage>,
    /// More packages than `limit` were due for a look: the lists are the first in claim
    /// order (a sweep itself claims `sweep_batch_size` at a time).
    pub truncated: bool,
}

/// One package of a `SweepPlan`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedPackage {
    pub package_id: String,
    pub producer: String,
    pub name: String,
    pub status: PackageStatus,
    pub retention_class: RetentionClass,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub reason: PlanReason,
}

/// Why a package is in a `SweepPlan`'s list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum PlanReason {
    Delete(DeleteReason),
    /// `held`, `permanent`, `not_expired` or `not_abandoned`.
    Keep(KeepReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Finalized, and its `expires_at` passed.
    Expired,
    /// Open past `open_package_ttl_seconds`.
    Abandoned,
    /// A deletion that started and did not finish (it resumes).
    DeletionUnfinished,
}

/// Judges each package a sweep at `now` would look at with core's rule
/// (`retention::keep_reason`, which the claim's SQL mirrors), up to `limit` of them.
pub async fn plan_sweep<M: MetadataStore>(
    meta: &M,
    now: Timestamp,
    cfg: &SweepConfig,
    limit: u32,
) -> MetaResult<SweepPlan> {
    let mut candidates = meta
        .sweep_candidates(now, cfg.open_ttl_secs, limit.saturating_add(1))
        .await?;
    let truncated = candidates.len() > limit as usize;
    candidates.truncate(limit as usize);
    let mut plan = SweepPlan {
        as_of: now,
        would_delete: Vec::new(),
        kept: Vec::new(),
        truncated,
    };
    for p in candidates {
        let keep =
            retention::keep_reason(&RetentionFacts::from(&p), &p.holds, now, cfg.open_ttl_secs);
        let reason = match (keep, p.status) {
            (Some(why), _) => PlanReason::Keep(why),
            (None, PackageStatus::Open) => PlanReason::Delete(DeleteReason::Abandoned),
            (None, PackageStatus::Deleting) => PlanReason::Delete(DeleteReason::DeletionUnfinished),
            (None, _) => PlanReason::Delete(DeleteReason::Expired),
        };
        let entry = PlannedPackage {
            package_id: p.id,
            producer: p.producer,
            name: p.name,
            status: p.status,
            retention_class: p.retention_class,
            created_at: p.created_at,
            expires_at: p.expires_at,
            reason,
        };
        match reason {
            PlanReason::Delete(_) => plan.would_delete.push(entry),
            PlanReason::Keep(_) => plan.kept.push(entry),
        }
    }
    Ok(plan)
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
    let verifying = std::time::Instant::now();
    continue_verifications(meta, backends, cfg).await?;
    scrub(meta, backends, cfg, verifying.elapsed(), actor).await;
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

/// Moves on the whole-file digests of upload sessions whose `complete` ran out of time,
/// within the sweep's budget, so the client's next `complete` has less (or nothing) to
/// read back. A failure here only delays that: it is logged, never fatal to the sweep.
async fn continue_verifications<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    backends: &B,
    cfg: &SweepConfig,
) -> MetaResult<()> {
    let started = std::time::Instant::now();
    for session in meta.sessions_to_verify(cfg.batch_size).await? {
        let Some(left) = cfg.verify_budget.checked_sub(started.elapsed()) else {
            break;
        };
        let Some(store) = backends.object_store(&session.backend_id) else {
            continue;
        };
        if let Err(e) = crate::upload_session::verify_slice(meta, store, &session, left).await {
            eprintln!(
                "artifact-store: sweep: verifying session {}: {e:?}",
                session.id
            );
        }
    }
    Ok(())
}

/// A slice of scrubbing with what is left of the verification budget (at least one piece:
/// every sweep moves the scrubber on). A failure only delays it: logged, never fatal.
async fn scrub<M: MetadataStore, B: ObjectStores>(
    meta: &M,
    backends: &B,
    cfg: &SweepConfig,
    spent: std::time::Duration,
    actor: &str,
) {
    let scrub_cfg = crate::scrub::ScrubConfig {
        batch_size: cfg.batch_size,
        budget: cfg.verify_budget.saturating_sub(spent),
        piece_bytes: crate::scrub::PIECE_BYTES,
    };
    match crate::scrub::scrub_slice(meta, backends, &scrub_cfg, actor).await {
        Ok(r) => eprintln!(
            "artifact-store: sweep: scrub: examined={} verified={} corrupt={} missing={} \
             unfinished={} bytes_read={}",
            r.examined, r.verified, r.corrupt, r.missing, r.unfinished, r.bytes_read
        ),
        Err(e) => eprintln!("artifact-store: sweep: scrub: {e:?}"),
    }
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
