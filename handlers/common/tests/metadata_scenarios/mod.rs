//! The metadata store's behaviour, written once and run on every real database
//! (`metadata_sqlite.rs`, `metadata_postgres.rs` include this module).
//!
//! Each scenario gets a fresh, migrated database through its `Harness`; `connect` opens
//! another connection to the same database, for the concurrency scenarios.

#![allow(dead_code, async_fn_in_trait)]

pub mod sqlite;

use artifact_store_core::audit::ChainVerifier;
use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{
    AuditEventType, File, PackageStatus, RetentionClass, RetentionEventType, StorageLocation,
    Timestamp,
};
use artifact_store_core::ports::{
    AuditFilter, BlobState, CommitUpload, MetadataError, MetadataStore, NewPackage, PackageFilter,
    PageRequest, PendingUpload, PinState,
};
use artifact_store_handlers::metadata::{SqlConn, SqlStore, SqlValue};
use chrono::{TimeZone, Utc};
use serde_json::json;

pub trait Harness {
    type Conn: SqlConn;
    /// A new connection to this scenario's database (already migrated).
    async fn connect(&self) -> SqlStore<Self::Conn>;
}

pub fn t(secs_after_base: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs_after_base)
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn code(r: Result<impl std::fmt::Debug, MetadataError>) -> ErrorCode {
    match r {
        Err(MetadataError::Domain(d)) => d.code,
        other => panic!("expected a domain error, got {other:?}"),
    }
}

pub fn new_package(producer: &str, class: RetentionClass, created: Timestamp) -> NewPackage {
    let mut metadata = serde_json::Map::new();
    metadata.insert("run_id".into(), json!(format!("run-{producer}")));
    NewPackage {
        id: id(),
        name: format!("pkg-{producer}"),
        producer: producer.into(),
        subject: "subject-a".into(),
        retention_class: class,
        metadata,
        created_at: created,
        expires_at: match class {
            RetentionClass::PermanentRecord => None,
            RetentionClass::Transient => Some(created + chrono::TimeDelta::days(7)),
            _ => Some(created + chrono::TimeDelta::days(90)),
        },
        actor: "ci-bot".into(),
    }
}

/// Stages and commits one file; returns it.
pub async fn upload<M: MetadataStore>(
    store: &M,
    package_id: &str,
    path: &str,
    digest: &str,
    size: u64,
) -> Result<File, MetadataError> {
    let pending = PendingUpload {
        id: id(),
        package_id: package_id.into(),
        backend_id: "kv".into(),
        staging_key: format!("staging/{}", id()),
        started_at: t(10),
    };
    store.begin_upload(&pending).await?;
    // As the ingest flow does: pin the object before relying on it.
    if store.pin_blob(&pending.id, &location(digest)).await? == PinState::Deleting {
        return Err(MetadataError::Domain(
            artifact_store_core::error::DomainError::new(
                ErrorCode::BackendUnavailable,
                "being deleted",
            ),
        ));
    }
    let file = store
        .commit_upload(&CommitUpload {
            pending_id: pending.id.clone(),
            file: File {
                id: id(),
                package_id: package_id.into(),
                relative_path: path.into(),
                media_type: "application/json".into(),
                size_bytes: size,
                sha256: digest.into(),
                created_at: t(11),
            },
            location: location(digest),
            actor: "ci-bot".into(),
        })
        .await?;
    // The staging bytes are gone: forget the upload, as the flow does.
    store.abort_upload(&pending.id).await?;
    Ok(file)
}

fn location(digest: &str) -> StorageLocation {
    StorageLocation {
        backend_id: "kv".into(),
        object_key: format!("sha256/{}/{}/{digest}", &digest[..2], &digest[2..4]),
    }
}

fn digest(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn count<C: SqlConn>(store: &SqlStore<C>, sql: &str) -> i64 {
    match store.conn().query(sql, &[]).await.unwrap()[0][0] {
        SqlValue::Int(n) => n,
        ref other => panic!("count returned {other:?}"),
    }
}

pub async fn verify<M: MetadataStore>(store: &M) -> artifact_store_core::audit::VerifyReport {
    let mut v = ChainVerifier::new();
    loop {
        let batch = store.audit_range(v.last_seq(), 3).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            v.feed(e);
        }
        if v.is_done() {
            break;
        }
    }
    v.finish(store.audit_head().await.unwrap().as_ref());
    v.report()
}

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

pub async fn migrations_are_idempotent<H: Harness>(h: &H) {
    let s = h.connect().await;
    s.ensure_migrated().await.unwrap();
    s.migrate().await.unwrap();
    s.health().await.unwrap();
    let compiled = artifact_store_core::migrate::SQLITE.len();
    assert_eq!(compiled, artifact_store_core::migrate::POSTGRES.len());
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM schema_migrations").await,
        compiled as i64
    );
}

/// Two first requests on a new database migrate at once: both succeed, each migration
/// is applied once. `h` must not be migrated yet. (On SQLite these futures never yield,
/// so they run in turn: `threaded_first_migrations_apply_each_once` races two threads.)
pub async fn concurrent_first_migrations<H: Harness>(h: &H) {
    let a = h.connect().await;
    let b = h.connect().await;
    let (x, y) = futures::join!(a.ensure_migrated(), b.ensure_migrated());
    x.unwrap();
    y.unwrap();
    let applied = count(&a, "SELECT COUNT(*) FROM schema_migrations").await;
    assert_eq!(
        applied as usize,
        artifact_store_handlers::metadata::migration_set(a.conn().dialect()).len()
    );
    assert_eq!(count(&a, "SELECT COUNT(*) FROM audit_chain_head").await, 1);
}

pub async fn create_get_list_with_filters<H: Harness>(h: &H) {
    let s = h.connect().await;
    let a = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    let mut nb = new_package("beta", RetentionClass::RawEvidence, t(100));
    nb.subject = "subject-b".into();
    nb.metadata.insert("environment".into(), json!("prod"));
    nb.metadata.insert("attempt".into(), json!(3));
    let b = s.create_package(nb).await.unwrap();
    let c = s
        .create_package(new_package(
            "gamma",
            RetentionClass::PermanentRecord,
            t(200),
        ))
        .await
        .unwrap();
    assert_eq!(a.status, PackageStatus::Open);
    assert_eq!(c.expires_at, None);
    assert_eq!(b.metadata.get("attempt"), Some(&json!(3)));

    let got = s.get_package(&b.id).await.unwrap().unwrap();
    assert_eq!(got, b);
    assert!(s.get_package("nope").await.unwrap().is_none());

    let ids = |f: PackageFilter| {
        let s = &s;
        async move {
            s.list_packages(&f, &page(50, None))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(PackageFilter::default()).await,
        [c.id.as_str(), b.id.as_str(), a.id.as_str()]
    );
    let f = |mut edit: Box<dyn FnMut(&mut PackageFilter)>| {
        let mut f = PackageFilter::default();
        edit(&mut f);
        f
    };
    assert_eq!(
        ids(f(Box::new(|f| f.producer = Some("beta".into())))).await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(|f| f.subject = Some("subject-b".into())))).await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(|f| f.name = Some("pkg-gamma".into())))).await,
        [c.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(
            |f| f.retention_class = Some(RetentionClass::Transient)
        )))
        .await,
        [a.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(|f| f.status = Some(PackageStatus::Finalized))))
            .await
            .len(),
        0
    );
    assert_eq!(
        ids(f(Box::new(
            |f| f.producers = Some(vec!["alpha".into(), "gamma".into()])
        )))
        .await,
        [c.id.as_str(), a.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(|f| f.producers = Some(vec![])))).await.len(),
        0
    );
    assert_eq!(
        ids(f(Box::new(
            |f| f.metadata = vec![("environment".into(), "prod".into())]
        )))
        .await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(|f| {
            f.metadata = vec![
                ("environment".into(), "prod".into()),
                ("attempt".into(), "3".into()),
            ]
        })))
        .await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(f(Box::new(
            |f| f.metadata = vec![("environment".into(), "dev".into())]
        )))
        .await
        .len(),
        0
    );
    assert_eq!(
        ids(f(Box::new(|f| {
            f.created_after = Some(t(50));
            f.created_before = Some(t(150));
        })))
        .await,
        [b.id.as_str()]
    );

    let finalized = s.finalize_package(&a.id, "ci-bot", t(300)).await.unwrap();
    assert_eq!(finalized.status, PackageStatus::Finalized);
    assert_eq!(
        ids(f(Box::new(|f| f.status = Some(PackageStatus::Finalized)))).await,
        [a.id.as_str()]
    );

    let bad = s
        .list_packages(
            &PackageFilter::default(),
            &page(10, Some("garbage!".into())),
        )
        .await;
    assert_eq!(code(bad), ErrorCode::InvalidQuery);
}

pub async fn pagination_is_stable_under_concurrent_inserts<H: Harness>(h: &H) {
    let s = h.connect().await;
    let other = h.connect().await;
    let mut expected = Vec::new();
    for i in 0..23 {
        // Several packages share a second: the id breaks the tie.
        let p = s
            .create_package(new_package("alpha", RetentionClass::Transient, t(i / 3)))
            .await
            .unwrap();
        expected.push(p.id);
    }
    expected.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut n = 0;
    loop {
        let got = s
            .list_packages(&PackageFilter::default(), &page(5, cursor.clone()))
            .await
            .unwrap();
        seen.extend(got.items.into_iter().map(|p| p.id));
        // Another writer inserts between pages: newer packages land before the cursor.
        other
            .create_package(new_package("alpha", RetentionClass::Transient, t(1000 + n)))
            .await
            .unwrap();
        n += 1;
        match got.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

pub async fn upload_commit_rules<H: Harness>(h: &H) {
    let s = h.connect().await;
    let p = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    let f1 = upload(&s, &p.id, "b/report.json", &digest(1), 10)
        .await
        .unwrap();
    upload(&s, &p.id, "a/run.json", &digest(2), 5)
        .await
        .unwrap();
    assert_eq!(
        s.blob_state("kv", &location(&digest(1)).object_key)
            .await
            .unwrap(),
        Some(BlobState::Present)
    );
    assert_eq!(s.blob_state("kv", "sha256/none").await.unwrap(), None);

    let audit_before = count(&s, "SELECT COUNT(*) FROM audit_events").await;
    let files_before = count(&s, "SELECT COUNT(*) FROM artifact_files").await;
    let dup = upload(&s, &p.id, "b/report.json", &digest(3), 7).await;
    assert_eq!(code(dup), ErrorCode::DuplicatePath);
    // Nothing written: no file, no audit event, no blob for the refused digest.
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM audit_events").await,
        audit_before
    );
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM artifact_files").await,
        files_before
    );
    assert_eq!(
        s.blob_state("kv", &location(&digest(3)).object_key)
            .await
            .unwrap(),
        None
    );
    // The refused upload's pending row stays for the caller to abort.
    assert_eq!(count(&s, "SELECT COUNT(*) FROM pending_uploads").await, 1);

    let pkg = s.get_package(&p.id).await.unwrap().unwrap();
    assert_eq!((pkg.file_count, pkg.total_bytes), (2, 15));
    let files = s.list_files(&p.id).await.unwrap();
    let paths: Vec<_> = files
        .iter()
        .map(|(f, _)| f.relative_path.as_str())
        .collect();
    assert_eq!(paths, ["a/run.json", "b/report.json"]);
    let rec = s.get_file(&f1.id).await.unwrap().unwrap();
    assert_eq!(rec.file, f1);
    assert_eq!(rec.location, location(&digest(1)));
    assert_eq!(
        (rec.package_status, rec.deleted),
        (PackageStatus::Open, false)
    );
    assert!(s.get_file("nope").await.unwrap().is_none());

    let first = s.finalize_package(&p.id, "ci-bot", t(50)).await.unwrap();
    let again = s.finalize_package(&p.id, "ci-bot", t(60)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.finalized_at, Some(t(50)));
    let finalized_events = s
        .list_audit(
            &AuditFilter {
                package_id: Some(p.id.clone()),
                event_type: Some(AuditEventType::PackageFinalized),
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(finalized_events.items.len(), 1);

    let late = upload(&s, &p.id, "c.txt", &digest(4), 1).await;
    assert_eq!(code(late), ErrorCode::PackageFinalized);
    let missing = upload(&s, "no-such-package", "c.txt", &digest(4), 1).await;
    assert_eq!(code(missing), ErrorCode::NotFound);
    assert_eq!(
        code(s.finalize_package("nope", "x", t(0)).await),
        ErrorCode::NotFound
    );
}

pub async fn retention_extensions_and_holds<H: Harness>(h: &H) {
    let s = h.connect().await;
    let p = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    let expires = p.expires_at.unwrap();
    let earlier = s
        .extend_retention(
            &p.id,
            expires - chrono::TimeDelta::days(1),
            "why",
            "op",
            t(5),
        )
        .await;
    assert_eq!(code(earlier), ErrorCode::InvalidExtension);
    let later = expires + chrono::TimeDelta::days(30);
    let ev = s
        .extend_retention(&p.id, later, "audit asked", "op", t(5))
        .await
        .unwrap();
    assert_eq!(ev.event_type, RetentionEventType::Extended);
    assert_eq!(
        (ev.previous_expires_at, ev.new_expires_at),
        (Some(expires), Some(later))
    );
    assert_eq!(
        s.get_package(&p.id).await.unwrap().unwrap().expires_at,
        Some(later)
    );

    let perm = s
        .create_package(new_package("alpha", RetentionClass::PermanentRecord, t(0)))
        .await
        .unwrap();
    let never = s.extend_retention(&perm.id, later, "r", "op", t(5)).await;
    assert_eq!(code(never), ErrorCode::InvalidExtension);

    let hold = s.apply_hold(&p.id, "litigation", "op", t(6)).await.unwrap();
    assert!(hold.is_active());
    let pkg = s.get_package(&p.id).await.unwrap().unwrap();
    assert_eq!(pkg.holds, vec![hold.clone()]);
    let released = s
        .release_hold(&p.id, &hold.id, "settled", "op", t(7))
        .await
        .unwrap();
    assert_eq!(released.released_at, Some(t(7)));
    let twice = s.release_hold(&p.id, &hold.id, "again", "op", t(8)).await;
    assert_eq!(code(twice), ErrorCode::HoldReleased);
    let wrong = s.release_hold(&perm.id, &hold.id, "x", "op", t(8)).await;
    assert_eq!(code(wrong), ErrorCode::NotFound);

    let kinds: Vec<_> = s
        .list_retention_events(&p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        [
            RetentionEventType::DefaultRuleApplied,
            RetentionEventType::Extended,
            RetentionEventType::HoldApplied,
            RetentionEventType::HoldReleased,
        ]
    );
    let audit: Vec<_> = s
        .list_audit(
            &AuditFilter {
                package_id: Some(p.id.clone()),
                event_type: None,
            },
            &page(100, None),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        audit,
        [
            AuditEventType::HoldReleased,
            AuditEventType::HoldApplied,
            AuditEventType::RetentionExtended,
            AuditEventType::PackageCreated,
        ]
    );
}

pub async fn audit_chain_verifies_and_detects_tampering<H: Harness>(h: &H) {
    let s = h.connect().await;
    let p = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    upload(&s, &p.id, "run.json", &digest(1), 3).await.unwrap();
    s.finalize_package(&p.id, "ci-bot", t(20)).await.unwrap();
    s.append_audit(artifact_store_core::ports::AuditDraft {
        event_type: AuditEventType::RetrievalRequested,
        package_id: Some(p.id.clone()),
        file_id: None,
        actor: "reader".into(),
        details: json!({"path": "run.json", "ratio": 0.5, "nested": {"b": 1, "a": [true, null]}}),
    })
    .await
    .unwrap();
    let report = verify(&s).await;
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events_checked, 4);

    // Pages of the audit list, newest first, by seq.
    let first = s
        .list_audit(&AuditFilter::default(), &page(3, None))
        .await
        .unwrap();
    let seqs: Vec<_> = first.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 3, 2]);
    let rest = s
        .list_audit(&AuditFilter::default(), &page(3, first.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(rest.next_cursor, None);

    let victim = s.audit_range(1, 1).await.unwrap().remove(0);
    let sql = s
        .conn()
        .dialect()
        .placeholders("UPDATE audit_events SET actor = ? WHERE seq = 2")
        .into_owned();
    s.conn().execute(&sql, &["mallory".into()]).await.unwrap();
    let report = verify(&s).await;
    assert!(!report.valid);
    assert_eq!(report.first_invalid_id, Some(victim.id));
}

/// Packages whose retention ran out at `t(7 days)`.
async fn expired_packages<M: MetadataStore>(s: &M, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let p = s
            .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
            .await
            .unwrap();
        s.finalize_package(&p.id, "ci-bot", t(1)).await.unwrap();
        ids.push(p.id);
    }
    ids
}

fn after_expiry() -> Timestamp {
    t(0) + chrono::TimeDelta::days(8)
}

/// Claims in small batches until nothing is left; returns the claimed ids.
async fn claim_all<M: MetadataStore>(s: &M, who: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let batch = s
            .claim_for_deletion(after_expiry(), 86_400, 3, 600, who)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for c in batch {
            assert!(c.newly_deleting);
            assert_eq!(c.package.status, PackageStatus::Deleting);
            got.push(c.package.id);
        }
        // Let the other claimer run between batches.
        tokio::task::yield_now().await;
    }
    got
}

pub async fn concurrent_claims_never_overlap<H: Harness>(h: &H) {
    let a = h.connect().await;
    let b = h.connect().await;
    let mut expected = expired_packages(&a, 12).await;
    // Not eligible: within retention, and held.
    let young = a
        .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    a.finalize_package(&young.id, "ci-bot", t(1)).await.unwrap();
    let held = expired_packages(&a, 1).await.remove(0);
    a.apply_hold(&held, "keep", "op", t(2)).await.unwrap();

    let (mut x, y) = futures::join!(claim_all(&a, "sweeper-a"), claim_all(&b, "sweeper-b"));
    x.extend(y);
    x.sort();
    expected.sort();
    assert_eq!(x, expected, "every eligible package claimed exactly once");
    // Leases hold: nothing more to claim until they run out, then all come back.
    assert!(
        a.claim_for_deletion(after_expiry(), 86_400, 100, 600, "c")
            .await
            .unwrap()
            .is_empty()
    );
    let later = after_expiry() + chrono::TimeDelta::seconds(601);
    let again = a
        .claim_for_deletion(later, 86_400, 100, 600, "c")
        .await
        .unwrap();
    assert_eq!(again.len(), 12);
    assert!(again.iter().all(|c| !c.newly_deleting));
}

/// A hold racing a sweep's claim (issue 12, item 3): whichever wins, a held package never
/// stays `deleting` (where its downloads answer 410). First the race's worst outcome,
/// written behind the store's back: a hold the claim's snapshot missed (PostgreSQL, READ
/// COMMITTED); then real holds against real claims on two connections.
pub async fn holds_racing_claims_never_leave_a_held_package_deleting<H: Harness>(h: &H) {
    let a = h.connect().await;
    let b = h.connect().await;
    let status = async |id: &str| a.get_package(id).await.unwrap().unwrap().status;

    let raced = expired_packages(&a, 1).await.remove(0);
    let claims = a
        .claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let sql = a
        .conn()
        .dialect()
        .placeholders(
            "INSERT INTO holds (id, package_id, reason, created_by, created_at) \
             VALUES (?, ?, 'raced', 'op', ?)",
        )
        .into_owned();
    let at = artifact_store_core::time::format(after_expiry());
    a.conn()
        .execute(&sql, &[id().into(), raced.as_str().into(), at.into()])
        .await
        .unwrap();
    assert_eq!(
        code(a.objects_to_delete(&raced).await),
        ErrorCode::HoldActive
    );
    assert_eq!(status(&raced).await, PackageStatus::Finalized);
    assert!(
        a.claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
            .await
            .unwrap()
            .is_empty(),
        "a held package is not claimed again"
    );

    for round in 0..20 {
        let id = expired_packages(&a, 1).await.remove(0);
        let (hold, claims) = futures::join!(
            b.apply_hold(&id, "race", "op", after_expiry()),
            a.claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw"),
        );
        hold.unwrap();
        if claims.unwrap().iter().any(|c| c.package.id == id) {
            // What the sweep does next with its claim.
            let next = code(a.objects_to_delete(&id).await);
            assert!(
                matches!(next, ErrorCode::HoldActive | ErrorCode::InvalidState),
                "round {round}: {next:?}"
            );
        }
        assert_eq!(status(&id).await, PackageStatus::Finalized, "round {round}");
    }
}

pub async fn deletion_flow_keeps_shared_objects<H: Harness>(h: &H) {
    let s = h.connect().await;
    // `old` expires; `keep` shares one object with it and lives on.
    let old = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    upload(&s, &old.id, "shared.bin", &digest(1), 4)
        .await
        .unwrap();
    let only = upload(&s, &old.id, "only.bin", &digest(2), 4)
        .await
        .unwrap();
    s.finalize_package(&old.id, "ci-bot", t(1)).await.unwrap();
    let keep = s
        .create_package(new_package("beta", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    upload(&s, &keep.id, "copy.bin", &digest(1), 4)
        .await
        .unwrap();
    s.finalize_package(&keep.id, "ci-bot", t(1)).await.unwrap();

    // A hold on a claimed package whose bytes are untouched sends it back.
    let claims = s
        .claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let hold = s
        .apply_hold(&old.id, "wait", "op", after_expiry())
        .await
        .unwrap();
    assert_eq!(
        s.get_package(&old.id).await.unwrap().unwrap().status,
        PackageStatus::Finalized
    );
    assert!(
        s.claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
            .await
            .unwrap()
            .is_empty()
    );
    s.release_hold(&old.id, &hold.id, "go", "op", after_expiry())
        .await
        .unwrap();

    let claims = s
        .claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let objects = s.objects_to_delete(&old.id).await.unwrap();
    assert_eq!(objects, vec![location(&digest(2))]);
    assert_eq!(
        s.blob_state("kv", &location(&digest(2)).object_key)
            .await
            .unwrap(),
        Some(BlobState::Deleting)
    );
    assert_eq!(
        s.blob_state("kv", &location(&digest(1)).object_key)
            .await
            .unwrap(),
        Some(BlobState::Present)
    );
    // Byte deletion started: downloads answer as deleted, and a hold now is refused.
    assert!(s.get_file(&only.id).await.unwrap().unwrap().deleted);
    assert_eq!(
        code(s.apply_hold(&old.id, "late", "op", after_expiry()).await),
        ErrorCode::InvalidState
    );
    // A new upload of a deleting object is refused (503 retry).
    let racing = s
        .create_package(new_package(
            "gamma",
            RetentionClass::Transient,
            after_expiry(),
        ))
        .await
        .unwrap();
    assert_eq!(
        code(upload(&s, &racing.id, "x.bin", &digest(2), 4).await),
        ErrorCode::BackendUnavailable
    );

    s.fail_deletion(&old.id, "sw", "backend down")
        .await
        .unwrap();
    let retry = s
        .claim_for_deletion(after_expiry(), 86_400, 10, 600, "sw")
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert!(!retry[0].newly_deleting);

    for loc in &objects {
        s.forget_blob(loc).await.unwrap();
    }
    s.complete_deletion(&old.id, "sw", after_expiry())
        .await
        .unwrap();
    s.complete_deletion(&old.id, "sw", after_expiry())
        .await
        .unwrap(); // idempotent
    assert_eq!(
        s.blob_state("kv", &location(&digest(2)).object_key)
            .await
            .unwrap(),
        None
    );
    let pkg = s.get_package(&old.id).await.unwrap().unwrap();
    assert_eq!(pkg.status, PackageStatus::Deleted);
    let rec = s.get_file(&only.id).await.unwrap().unwrap();
    assert!(rec.deleted);
    let kinds: Vec<_> = s
        .list_retention_events(&old.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(kinds.first(), Some(&RetentionEventType::DefaultRuleApplied));
    assert_eq!(kinds.last(), Some(&RetentionEventType::Deleted));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RetentionEventType::DeletionEligible)
            .count(),
        2
    );
    let types: Vec<_> = s
        .list_audit(
            &AuditFilter {
                package_id: Some(old.id.clone()),
                event_type: None,
            },
            &page(100, None),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types[0], AuditEventType::DeletionCompleted);
    assert!(types.contains(&AuditEventType::DeletionFailed));
    assert!(types.contains(&AuditEventType::DeletionRequested));
    assert!(verify(&s).await.valid);

    // The other package still owns the shared object; once it goes, so does the object.
    let later = t(0) + chrono::TimeDelta::days(91);
    let claims = s
        .claim_for_deletion(later, 86_400, 10, 600, "sw")
        .await
        .unwrap();
    let ids: Vec<_> = claims.iter().map(|c| c.package.id.clone()).collect();
    assert!(ids.contains(&keep.id));
    assert_eq!(
        s.objects_to_delete(&keep.id).await.unwrap(),
        vec![location(&digest(1))]
    );
}

pub async fn abandoned_open_packages_and_stale_uploads<H: Harness>(h: &H) {
    let s = h.connect().await;
    let p = s
        .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let pending = PendingUpload {
        id: id(),
        package_id: p.id.clone(),
        backend_id: "kv".into(),
        staging_key: "staging/x".into(),
        started_at: t(5),
    };
    s.begin_upload(&pending).await.unwrap();
    assert!(s.stale_uploads(t(5), 10).await.unwrap().is_empty());
    assert_eq!(
        s.stale_uploads(t(6), 10).await.unwrap(),
        vec![pending.clone()]
    );
    s.abort_upload(&pending.id).await.unwrap();
    assert!(s.stale_uploads(t(6), 10).await.unwrap().is_empty());

    // Open past the TTL: claimed although retention has not run out.
    assert!(
        s.claim_for_deletion(t(86_399), 86_400, 10, 60, "sw")
            .await
            .unwrap()
            .is_empty()
    );
    let claims = s
        .claim_for_deletion(t(86_400), 86_400, 10, 60, "sw")
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    // A hold before any byte is gone returns it to `open`.
    s.apply_hold(&p.id, "wait", "op", t(86_401)).await.unwrap();
    assert_eq!(
        s.get_package(&p.id).await.unwrap().unwrap().status,
        PackageStatus::Open
    );
}

/// An upload's pin keeps a sweep off the object it dedupes against, whichever comes
/// first; a commit whose pending row (and pin) is gone is refused.
pub async fn pins_keep_sweeps_off_objects<H: Harness>(h: &H) {
    let s = h.connect().await;
    let after_expiry = t(0) + chrono::TimeDelta::days(8);
    let pending = |package_id: &str| PendingUpload {
        id: id(),
        package_id: package_id.into(),
        backend_id: "kv".into(),
        staging_key: format!("staging/{}", id()),
        started_at: t(10),
    };
    let commit = |p: &PendingUpload, d: &str| CommitUpload {
        pending_id: p.id.clone(),
        file: File {
            id: id(),
            package_id: p.package_id.clone(),
            relative_path: format!("f-{}", id()),
            media_type: "application/octet-stream".into(),
            size_bytes: 4,
            sha256: d.into(),
            created_at: t(11),
        },
        location: location(d),
        actor: "ci-bot".into(),
    };
    let expired = |n: u8| {
        let s = &s;
        async move {
            let p = s
                .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
                .await
                .unwrap();
            upload(s, &p.id, "b.bin", &digest(n), 4).await.unwrap();
            s.finalize_package(&p.id, "ci-bot", t(1)).await.unwrap();
            p
        }
    };
    // Created at the sweeps' `now`, so it is neither expired nor abandoned.
    let fresh = s
        .create_package(new_package(
            "beta",
            RetentionClass::RawEvidence,
            after_expiry,
        ))
        .await
        .unwrap();

    // The upload pins first: the sweep keeps the object, the commit references it.
    let old = expired(5).await;
    let up = pending(&fresh.id);
    s.begin_upload(&up).await.unwrap();
    assert_eq!(
        s.pin_blob(&up.id, &location(&digest(5))).await.unwrap(),
        PinState::Present
    );
    assert_eq!(
        s.claim_for_deletion(after_expiry, 86_400, 10, 600, "sw")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.objects_to_delete(&old.id).await.unwrap(),
        vec![],
        "a pinned object is not deleted"
    );
    s.commit_upload(&commit(&up, &digest(5))).await.unwrap();
    s.complete_deletion(&old.id, "sw", after_expiry)
        .await
        .unwrap();
    assert_eq!(
        s.blob_state("kv", &location(&digest(5)).object_key)
            .await
            .unwrap(),
        Some(BlobState::Present)
    );

    // The sweep marks first: the pin reports `deleting` and pins nothing.
    let old = expired(6).await;
    s.claim_for_deletion(after_expiry, 86_400, 10, 600, "sw")
        .await
        .unwrap();
    assert_eq!(
        s.objects_to_delete(&old.id).await.unwrap(),
        vec![location(&digest(6))]
    );
    let late = pending(&fresh.id);
    s.begin_upload(&late).await.unwrap();
    assert_eq!(
        s.pin_blob(&late.id, &location(&digest(6))).await.unwrap(),
        PinState::Deleting
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM pending_uploads WHERE object_key IS NOT NULL"
        )
        .await,
        0
    );
    s.forget_blob(&location(&digest(6))).await.unwrap();
    s.complete_deletion(&old.id, "sw", after_expiry)
        .await
        .unwrap();
    // Once the bytes are gone, the next pin finds nothing: the upload writes them anew.
    assert_eq!(
        s.pin_blob(&late.id, &location(&digest(6))).await.unwrap(),
        PinState::Absent
    );

    // A pending row removed meanwhile (the orphan sweep): pin and commit are refused.
    s.abort_upload(&late.id).await.unwrap();
    assert_eq!(
        code(s.pin_blob(&late.id, &location(&digest(6))).await),
        ErrorCode::BackendUnavailable
    );
    assert_eq!(
        code(s.commit_upload(&commit(&late, &digest(6))).await),
        ErrorCode::BackendUnavailable
    );

    // Two uploads of bytes not stored yet: the first pin writes them, the second finds it
    // writing (both pinned: a sweep keeps off), and once the first commits, `Present`.
    let first = pending(&fresh.id);
    let second = pending(&fresh.id);
    s.begin_upload(&first).await.unwrap();
    s.begin_upload(&second).await.unwrap();
    assert_eq!(
        s.pin_blob(&first.id, &location(&digest(7))).await.unwrap(),
        PinState::Absent
    );
    assert_eq!(
        s.pin_blob(&second.id, &location(&digest(7))).await.unwrap(),
        PinState::Writing
    );
    assert_eq!(
        s.pin_blob(&first.id, &location(&digest(7))).await.unwrap(),
        PinState::Writing,
        "the second's pin counts for the first too"
    );
    s.commit_upload(&commit(&first, &digest(7))).await.unwrap();
    assert_eq!(
        s.pin_blob(&second.id, &location(&digest(7))).await.unwrap(),
        PinState::Present
    );
}

/// The sweep's SQL claims exactly the packages core's `deletion_eligible` names, and counts
/// as `held` exactly those a hold keeps: every status, class, age and hold combination,
/// with an open-package TTL longer than a class rule (an open package past its class's
/// expiry but not abandoned is still receiving uploads and must stay).
pub async fn sweep_claims_exactly_what_core_calls_eligible<H: Harness>(h: &H) {
    use artifact_store_core::retention::{KeepReason, keep_reason, package_deletion_eligible};
    use artifact_store_handlers::sweep::{PlanReason, SweepConfig, plan_sweep};
    let s = h.connect().await;
    let day = 86_400;
    let now = t(40 * day);
    let ttl = 30 * day;
    let mut packages = Vec::new();
    for class in [
        RetentionClass::Transient,
        RetentionClass::RawEvidence,
        RetentionClass::PermanentRecord,
    ] {
        // Abandoned (past the TTL, and past the transient rule); past the transient rule
        // only; fresh.
        for created in [t(0), t(25 * day), t(39 * day)] {
            for finalized in [false, true] {
                for held in [false, true] {
                    let p = s
                        .create_package(new_package("alpha", class, created))
                        .await
                        .unwrap();
                    if finalized {
                        s.finalize_package(&p.id, "ci-bot", created).await.unwrap();
                    }
                    if held {
                        s.apply_hold(&p.id, "audit", "op", created).await.unwrap();
                    }
                    packages.push(p.id);
                }
            }
        }
    }
    let mut eligible = Vec::new();
    let mut held_eligible = 0;
    for id in &packages {
        let p = s.get_package(id).await.unwrap().unwrap();
        if package_deletion_eligible(&p, now, ttl) {
            eligible.push(id.clone());
        } else if !p.holds.is_empty() {
            let unheld = artifact_store_core::model::Package {
                holds: Vec::new(),
                ..p
            };
            held_eligible += u64::from(package_deletion_eligible(&unheld, now, ttl));
        }
    }
    assert_eq!(
        s.count_held_eligible(now, ttl).await.unwrap(),
        held_eligible,
        "held"
    );
    // The dry run judges the same packages by core's rule, and changes nothing (else the
    // claim below would miss what it claimed).
    let cfg = SweepConfig {
        batch_size: 1000,
        open_ttl_secs: ttl,
        lease_secs: 600,
        orphan_grace_secs: 0,
        verify_budget: std::time::Duration::from_secs(1),
    };
    let plan = plan_sweep(&s, now, &cfg, 1000).await.unwrap();
    assert!(!plan.truncated);
    let mut would: Vec<String> = plan
        .would_delete
        .iter()
        .map(|p| p.package_id.clone())
        .collect();
    would.sort();
    eligible.sort();
    assert_eq!(would, eligible, "dry run = core's eligible");
    for kept in &plan.kept {
        let p = s.get_package(&kept.package_id).await.unwrap().unwrap();
        let why = keep_reason(&(&p).into(), &p.holds, now, ttl).unwrap();
        assert_eq!(kept.reason, PlanReason::Keep(why), "{}", kept.package_id);
    }
    let held_in_plan = plan
        .kept
        .iter()
        .filter(|k| k.reason == PlanReason::Keep(KeepReason::Held))
        .count();
    assert_eq!(
        held_in_plan as u64, held_eligible,
        "held, as the sweep counts it"
    );
    let reasons: std::collections::BTreeSet<String> = plan
        .kept
        .iter()
        .chain(&plan.would_delete)
        .map(|k| serde_json::to_value(k.reason).unwrap().to_string())
        .collect();
    // Every reason a plan gives here (`deletion_unfinished` needs a claim; a finalized
    // package is only looked at once past its date, so never `not_expired`).
    assert_eq!(
        reasons.len(),
        5,
        "expired, abandoned, held, permanent, not_abandoned: {reasons:?}"
    );
    let mut claimed: Vec<String> = s
        .claim_for_deletion(now, ttl, 1000, 600, "sw")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.package.id)
        .collect();
    claimed.sort();
    eligible.sort();
    assert_eq!(claimed, eligible, "claimed = core's eligible");
    assert!(!eligible.is_empty());
}

/// A deletion that failed once is retried by the next sweep; one that keeps failing waits
/// longer each time, so it cannot take every sweep's batch (issue 12, item 4).
pub async fn failing_deletions_back_off<H: Harness>(h: &H) {
    let s = h.connect().await;
    let created = artifact_store_core::time::now() - chrono::TimeDelta::days(30);
    let p = s
        .create_package(new_package("alpha", RetentionClass::Transient, created))
        .await
        .unwrap();
    s.finalize_package(&p.id, "ci-bot", created).await.unwrap();
    let now = artifact_store_core::time::now();
    let claim = |at: Timestamp| {
        let s = &s;
        async move {
            s.claim_for_deletion(at, 86_400, 10, 600, "sw")
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(claim(now).await, 1);
    s.fail_deletion(&p.id, "sw", "backend down").await.unwrap();
    assert_eq!(claim(now).await, 1, "the first failure is retried at once");
    s.fail_deletion(&p.id, "sw", "backend down").await.unwrap();
    assert_eq!(claim(now).await, 0, "the second waits");
    assert_eq!(claim(now + chrono::TimeDelta::seconds(61)).await, 1);
    s.fail_deletion(&p.id, "sw", "backend down").await.unwrap();
    assert_eq!(claim(now + chrono::TimeDelta::seconds(61)).await, 0);
    assert_eq!(claim(now + chrono::TimeDelta::seconds(121)).await, 1);
}

/// An upload that pinned a content address and never committed leaves an object the orphan
/// sweep may claim, but only while nothing else needs it; a claimed object refuses pins.
pub async fn orphan_objects_are_claimed_only_when_unneeded<H: Harness>(h: &H) {
    let s = h.connect().await;
    let pkg = s
        .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let pending = || PendingUpload {
        id: id(),
        package_id: pkg.id.clone(),
        backend_id: "kv".into(),
        staging_key: format!("staging/{}", id()),
        started_at: t(10),
    };
    let (a, b) = (pending(), pending());
    for p in [&a, &b] {
        s.begin_upload(p).await.unwrap();
    }
    // Not pinned: nothing to claim.
    assert_eq!(s.claim_orphan_object(&a.id).await.unwrap(), None);
    // Two uploads pinned the same bytes: neither's object is claimed while the other's pin
    // stands.
    for (p, found) in [(&a, PinState::Absent), (&b, PinState::Writing)] {
        assert_eq!(
            s.pin_blob(&p.id, &location(&digest(7))).await.unwrap(),
            found
        );
    }
    assert_eq!(s.claim_orphan_object(&a.id).await.unwrap(), None);
    s.abort_upload(&b.id).await.unwrap();
    assert_eq!(
        s.claim_orphan_object(&a.id).await.unwrap(),
        Some(location(&digest(7)))
    );
    // Claimed: a new upload of the same bytes is told to retry, until the blob is forgotten.
    let c = pending();
    s.begin_upload(&c).await.unwrap();
    assert_eq!(
        s.pin_blob(&c.id, &location(&digest(7))).await.unwrap(),
        PinState::Deleting
    );
    s.forget_blob(&location(&digest(7))).await.unwrap();
    s.abort_upload(&a.id).await.unwrap();
    assert_eq!(
        s.pin_blob(&c.id, &location(&digest(7))).await.unwrap(),
        PinState::Absent
    );
    // Once a file references the bytes, they are never claimed.
    let d = pending();
    s.begin_upload(&d).await.unwrap();
    s.pin_blob(&d.id, &location(&digest(7))).await.unwrap();
    upload(&s, &pkg.id, "kept.bin", &digest(7), 4)
        .await
        .unwrap();
    s.abort_upload(&c.id).await.unwrap();
    assert_eq!(s.claim_orphan_object(&d.id).await.unwrap(), None);
    assert_eq!(
        s.blob_state("kv", &location(&digest(7)).object_key)
            .await
            .unwrap(),
        Some(BlobState::Present)
    );
}

/// Scrubbing's SQL: candidates in scrub order (a check in progress, never verified, oldest
/// check), progress by compare-and-set, the corrupt mark with one event per live file
/// (once), the download-facing flag, and the status counts.
pub async fn scrub_order_marks_and_status<H: Harness>(h: &H) {
    let s = h.connect().await;
    let p = s
        .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let q = s
        .create_package(new_package("beta", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let mut files = Vec::new();
    for n in 1..=4u8 {
        files.push(
            upload(&s, &p.id, &format!("f{n}"), &digest(n), 10)
                .await
                .unwrap(),
        );
    }
    // Blob 4 is shared with another package.
    let shared = upload(&s, &q.id, "copy", &digest(4), 10).await.unwrap();
    let keys = |c: Vec<artifact_store_core::ports::ScrubTarget>| -> Vec<String> {
        c.into_iter().map(|c| c.location.object_key).collect()
    };
    let all: Vec<String> = (1..=4).map(|n| location(&digest(n)).object_key).collect();
    assert_eq!(keys(s.scrub_candidates(10).await.unwrap()).len(), 4);

    s.mark_verified(&location(&digest(1)), t(500))
        .await
        .unwrap();
    s.mark_verified(&location(&digest(2)), t(100))
        .await
        .unwrap();
    // Blob 3 is never verified; blob 4 has a check in progress.
    assert!(
        s.save_scrub_progress(&location(&digest(4)), 0, 4, "00ab")
            .await
            .unwrap()
    );
    assert!(
        !s.save_scrub_progress(&location(&digest(4)), 0, 8, "00cd")
            .await
            .unwrap(),
        "progress moves only from where it is"
    );
    let order = s.scrub_candidates(10).await.unwrap();
    assert_eq!(order[0].verified_bytes, 4);
    assert_eq!(order[0].hash_state, "00ab");
    assert_eq!(
        keys(order),
        vec![
            all[3].clone(),
            all[2].clone(),
            all[1].clone(),
            all[0].clone()
        ]
    );
    assert_eq!(keys(s.scrub_candidates(2).await.unwrap()).len(), 2);
    let st = s.scrub_status(10).await.unwrap();
    assert_eq!(
        (
            st.blobs_total,
            st.verified_once,
            st.never_verified,
            st.in_progress,
            st.corrupt
        ),
        (4, 2, 2, 1, 0)
    );
    assert_eq!(st.oldest_verified_at, Some(t(100)));

    // Blob 4 is corrupt: marked once, one event per live file, out of the candidates.
    let finding = s
        .mark_corrupt(&location(&digest(4)), "missing", "no object", "ops", t(900))
        .await
        .unwrap()
        .expect("marked");
    assert_eq!(finding.files.len(), 2);
    assert_eq!(finding.found_at, t(900));
    assert!(
        s.mark_corrupt(&location(&digest(4)), "missing", "again", "ops", t(901))
            .await
            .unwrap()
            .is_none()
    );
    let events = s
        .list_audit(
            &AuditFilter {
                package_id: None,
                event_type: Some(AuditEventType::CorruptionDetected),
            },
            &page(100, None),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.details["source"] == "scrub"));
    assert!(s.get_file(&shared.id).await.unwrap().unwrap().corrupt);
    assert!(s.get_file(&files[3].id).await.unwrap().unwrap().corrupt);
    assert!(!s.get_file(&files[0].id).await.unwrap().unwrap().corrupt);
    assert!(!keys(s.scrub_candidates(10).await.unwrap()).contains(&all[3]));
    // A verification finishing late does not clear the mark.
    s.mark_verified(&location(&digest(4)), t(950))
        .await
        .unwrap();
    assert!(s.get_file(&shared.id).await.unwrap().unwrap().corrupt);
    let st = s.scrub_status(10).await.unwrap();
    assert_eq!((st.corrupt, st.in_progress, st.findings.len()), (1, 0, 1));
    assert_eq!(st.findings[0].object_key, all[3]);
    assert_eq!(st.findings[0].found, "missing");

    // A blob being deleted is neither a candidate nor ever marked.
    s.conn()
        .execute(
            &format!(
                "UPDATE blobs SET state = 'deleting' WHERE object_key = '{}'",
                all[2]
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(!keys(s.scrub_candidates(10).await.unwrap()).contains(&all[2]));
    assert!(
        s.mark_corrupt(&location(&digest(3)), "missing", "x", "ops", t(990))
            .await
            .unwrap()
            .is_none()
    );
    assert!(verify(&s).await.valid);
}

/// Every scenario, each on a fresh database made by `fresh`.
#[macro_export]
macro_rules! metadata_scenarios {
    ($fresh:expr, $unmigrated:expr) => {
        macro_rules! scenario {
            ($name:ident) => {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = $fresh.await;
                    metadata_scenarios::$name(&h).await;
                }
            };
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_first_migrations() {
            let h = $unmigrated.await;
            metadata_scenarios::concurrent_first_migrations(&h).await;
        }
        scenario!(migrations_are_idempotent);
        scenario!(create_get_list_with_filters);
        scenario!(pagination_is_stable_under_concurrent_inserts);
        scenario!(upload_commit_rules);
        scenario!(retention_extensions_and_holds);
        scenario!(audit_chain_verifies_and_detects_tampering);
        scenario!(concurrent_claims_never_overlap);
        scenario!(deletion_flow_keeps_shared_objects);
        scenario!(abandoned_open_packages_and_stale_uploads);
        scenario!(pins_keep_sweeps_off_objects);
        scenario!(orphan_objects_are_claimed_only_when_unneeded);
        scenario!(sweep_claims_exactly_what_core_calls_eligible);
        scenario!(failing_deletions_back_off);
        scenario!(holds_racing_claims_never_leave_a_held_package_deleting);
        scenario!(scrub_order_marks_and_status);
    };
}
