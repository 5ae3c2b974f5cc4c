//! The scrubber (`artifact_store_handlers::scrub::scrub_slice`) on a real SQLite metadata
//! store and an in-memory object store that honours ranges and counts what it serves:
//! good objects get `last_verified_at`; changed, truncated and deleted objects are found,
//! marked (downloads refused), audited once per file with `source: scrub`; a budget cut
//! resumes from the stored digest state without reading anything twice; blobs go oldest
//! check first; the sweep runs a slice too.

mod metadata_scenarios;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use artifact_store_core::model::{AuditEventType, RetentionClass, StorageLocation};
use artifact_store_core::ports::{
    AuditFilter, BackendHealth, ByteRange, ByteStream, HealthStatus, MetadataStore, ObjectInfo,
    ObjectStore, PageRequest, PutMetadata, PutReceipt, StorageError,
};
use artifact_store_core::{content, time};
use artifact_store_handlers::metadata::{SqlConn, SqlStore};
use artifact_store_handlers::scrub::{ScrubConfig, scrub_slice};
use artifact_store_handlers::sweep::{ObjectStores, SweepConfig, run_sweep};
use metadata_scenarios::sqlite::{RusqliteConn, SqliteDb, fresh};
use metadata_scenarios::{Harness, new_package, t, upload, verify};
use sha2::{Digest, Sha256};

/// Objects in memory; `get` honours ranges and hands out at most 3 bytes per chunk.
#[derive(Default)]
struct MemStore {
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Bytes served by `get`, over all calls.
    served: Cell<u64>,
    /// `get` answers `Unavailable` while set.
    down: Cell<bool>,
}

struct Chunks(Vec<u8>);

impl ByteStream for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let n = self.0.len().min(3);
        Ok(Some(self.0.drain(..n).collect()))
    }
}

impl ObjectStore for MemStore {
    type Reader = Chunks;

    fn backend_id(&self) -> &str {
        "kv"
    }

    async fn put(
        &self,
        _key: &str,
        _body: &mut impl ByteStream,
        _meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        unreachable!("the scrubber never writes")
    }

    async fn promote(&self, _from: &str, _to: &str) -> Result<(), StorageError> {
        unreachable!("the scrubber never writes")
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Chunks, StorageError> {
        if self.down.get() {
            return Err(StorageError::Unavailable {
                detail: "down".into(),
                retry_after_secs: 1,
            });
        }
        let objects = self.objects.borrow();
        let bytes = objects
            .get(key)
            .ok_or_else(|| StorageError::NotFound(key.into()))?;
        let slice = match range {
            None => bytes.clone(),
            Some(r) => {
                let start = (r.start as usize).min(bytes.len());
                let end = (r.end_inclusive as usize + 1).min(bytes.len());
                bytes[start..end].to_vec()
            }
        };
        self.served.set(self.served.get() + slice.len() as u64);
        Ok(Chunks(slice))
    }

    async fn presign_get(&self, _key: &str, _secs: u64) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        Ok(self.objects.borrow().get(key).map(|b| ObjectInfo {
            size_bytes: b.len() as u64,
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn health(&self) -> BackendHealth {
        BackendHealth {
            status: HealthStatus::Ok,
            detail: String::new(),
        }
    }
}

impl ObjectStores for MemStore {
    type Store = MemStore;
    fn object_store(&self, backend_id: &str) -> Option<&MemStore> {
        (backend_id == "kv").then_some(self)
    }
}

struct World {
    db: SqliteDb,
    store: MemStore,
    package_id: String,
}

impl World {
    async fn new() -> World {
        let db = fresh().await;
        let s = db.connect().await;
        let p = s
            .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
            .await
            .unwrap();
        World {
            db,
            store: MemStore::default(),
            package_id: p.id,
        }
    }

    fn meta(&self) -> SqlStore<RusqliteConn> {
        SqlStore::new(self.db.raw_conn())
    }

    /// Stores `bytes` and commits a file of them at `path`; returns (file id, object key).
    async fn file(&self, path: &str, bytes: &[u8]) -> (String, String) {
        let digest = hex::encode(Sha256::digest(bytes));
        let key = content::object_key("", &digest);
        self.store
            .objects
            .borrow_mut()
            .insert(key.clone(), bytes.to_vec());
        let f = upload(
            &self.meta(),
            &self.package_id,
            path,
            &digest,
            bytes.len() as u64,
        )
        .await
        .unwrap();
        (f.id, key)
    }

    async fn slice(
        &self,
        budget: Duration,
        piece_bytes: u64,
    ) -> artifact_store_handlers::scrub::ScrubReport {
        let cfg = ScrubConfig {
            batch_size: 100,
            budget,
            piece_bytes,
        };
        scrub_slice(&self.meta(), &self.store, &cfg, "ops-team")
            .await
            .expect("scrub")
    }

    async fn corruption_events(&self) -> Vec<artifact_store_core::model::AuditEvent> {
        let page = self
            .meta()
            .list_audit(
                &AuditFilter {
                    package_id: None,
                    event_type: Some(AuditEventType::CorruptionDetected),
                },
                &PageRequest {
                    limit: 1000,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        page.items
    }
}

const LONG: Duration = Duration::from_secs(60);

fn loc(key: &str) -> StorageLocation {
    StorageLocation {
        backend_id: "kv".into(),
        object_key: key.into(),
    }
}

#[tokio::test]
async fn a_good_object_gets_last_verified_at() {
    let w = World::new().await;
    let bytes = b"intact evidence, a few bytes long".to_vec();
    let (file_id, key) = w.file("good.txt", &bytes).await;
    let before = w.meta().scrub_status(10).await.unwrap();
    assert_eq!(
        (
            before.blobs_total,
            before.verified_once,
            before.never_verified
        ),
        (1, 0, 1)
    );
    assert_eq!(before.oldest_verified_at, None);

    let started = time::truncate(time::now());
    let r = w.slice(LONG, 8).await;
    assert_eq!((r.examined, r.verified, r.corrupt, r.missing), (1, 1, 0, 0));
    assert_eq!(r.bytes_read, bytes.len() as u64);
    assert!(r.findings.is_empty());

    let status = w.meta().scrub_status(10).await.unwrap();
    assert_eq!(
        (status.verified_once, status.never_verified, status.corrupt),
        (1, 0, 0)
    );
    let when = status
        .oldest_verified_at
        .expect("last_verified_at recorded");
    assert!(when >= started, "{when} {started}");
    let target = &w.meta().scrub_candidates(10).await.unwrap()[0];
    assert_eq!(target.location, loc(&key));
    assert_eq!(target.last_verified_at, Some(when));
    assert_eq!((target.verified_bytes, target.hash_state.as_str()), (0, ""));
    assert!(!w.meta().get_file(&file_id).await.unwrap().unwrap().corrupt);
    assert!(w.corruption_events().await.is_empty());
}

#[tokio::test]
async fn changed_truncated_and_deleted_objects_are_found_marked_and_audited() {
    let w = World::new().await;
    let (good, _) = w.file("good.bin", b"good bytes stay good").await;
    let original = b"these bytes will rot in place".to_vec();
    let (changed, changed_key) = w.file("changed.bin", &original).await;
    let (short, short_key) = w.file("short.bin", b"these bytes will be truncated").await;
    let (gone, gone_key) = w.file("gone.bin", b"these bytes will vanish").await;
    // A second package's file of the changed bytes: one event per affected file.
    let other = w
        .meta()
        .create_package(new_package("beta", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let shared = upload(
        &w.meta(),
        &other.id,
        "copy.bin",
        &hex::encode(Sha256::digest(&original)),
        original.len() as u64,
    )
    .await
    .unwrap();

    // Behind the registry's back: one byte flipped, one object cut short, one deleted.
    w.store.objects.borrow_mut().get_mut(&changed_key).unwrap()[5] ^= 0x20;
    w.store
        .objects
        .borrow_mut()
        .get_mut(&short_key)
        .unwrap()
        .truncate(10);
    w.store.objects.borrow_mut().remove(&gone_key);

    let r = w.slice(LONG, 7).await;
    assert_eq!(
        (r.examined, r.verified, r.corrupt, r.missing),
        (4, 1, 2, 1),
        "{r:?}"
    );
    let by_key = |k: &str| {
        r.findings
            .iter()
            .find(|f| f.object_key == k)
            .expect(k)
            .clone()
    };
    let f = by_key(&changed_key);
    let mut flipped = original.clone();
    flipped[5] ^= 0x20;
    assert_eq!(f.found, hex::encode(Sha256::digest(&flipped)));
    assert_eq!(f.expected_sha256, hex::encode(Sha256::digest(&original)));
    let mut ids: Vec<&str> = f.files.iter().map(|a| a.file_id.as_str()).collect();
    ids.sort();
    let mut want = vec![changed.as_str(), shared.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(by_key(&short_key).found, "wrong_size");
    assert_eq!(by_key(&gone_key).found, "missing");

    // Downloads of the affected files are refused; the good one is served.
    for (id, corrupt) in [
        (&good, false),
        (&changed, true),
        (&shared.id, true),
        (&short, true),
        (&gone, true),
    ] {
        let rec = w.meta().get_file(id).await.unwrap().unwrap();
        assert_eq!(rec.corrupt, corrupt, "{}", rec.file.relative_path);
    }

    // One event per affected file, naming the blob and what was found.
    let events = w.corruption_events().await;
    assert_eq!(events.len(), 4, "{events:#?}");
    for e in &events {
        assert_eq!(e.details["source"], "scrub");
        assert_eq!(e.actor, "ops-team");
        assert!(e.file_id.is_some() && e.package_id.is_some());
    }
    let gone_event = events
        .iter()
        .find(|e| e.file_id.as_deref() == Some(gone.as_str()))
        .unwrap();
    assert_eq!(gone_event.details["actual_sha256"], "missing");
    assert_eq!(gone_event.details["object_key"], gone_key.as_str());
    let changed_event = events
        .iter()
        .find(|e| e.file_id.as_deref() == Some(changed.as_str()))
        .unwrap();
    assert_eq!(
        changed_event.details["expected_sha256"],
        hex::encode(Sha256::digest(&original))
    );
    assert_eq!(
        changed_event.details["actual_sha256"],
        hex::encode(Sha256::digest(&flipped))
    );

    // The status lists the findings; a later slice neither reads nor reports them again.
    let status = w.meta().scrub_status(10).await.unwrap();
    assert_eq!((status.blobs_total, status.corrupt), (4, 3));
    assert_eq!(status.findings.len(), 3);
    let again = w.slice(LONG, 7).await;
    assert_eq!((again.examined, again.verified, again.corrupt), (1, 1, 0));
    assert!(again.findings.is_empty());
    assert_eq!(w.corruption_events().await.len(), 4);
    assert!(verify(&w.meta()).await.valid);
}

#[tokio::test]
async fn a_budget_cut_resumes_from_the_stored_state() {
    let w = World::new().await;
    let bytes: Vec<u8> = (0..37u8).collect();
    let (file_id, key) = w.file("big.bin", &bytes).await;
    // A zero budget: each slice reads one piece (4 bytes) and stores the digest state.
    let mut slices = 0;
    loop {
        slices += 1;
        let r = w.slice(Duration::ZERO, 4).await;
        assert_eq!(r.bytes_read, 4.min(37 - 4 * (slices - 1)), "slice {slices}");
        if r.verified == 1 {
            break;
        }
        assert_eq!(r.unfinished, 1);
        let target = &w.meta().scrub_candidates(1).await.unwrap()[0];
        assert_eq!(target.verified_bytes, 4 * slices);
        assert!(!target.hash_state.is_empty());
        assert_eq!(w.meta().scrub_status(1).await.unwrap().in_progress, 1);
        assert!(slices < 20, "no progress");
    }
    assert_eq!(slices, 10);
    // Every byte read exactly once across the slices.
    assert_eq!(w.store.served.get(), 37);
    let status = w.meta().scrub_status(1).await.unwrap();
    assert_eq!((status.verified_once, status.in_progress), (1, 0));

    // A change ahead of a check in progress is found when the check ends.
    for _ in 0..3 {
        w.slice(Duration::ZERO, 4).await;
    }
    assert_eq!(
        w.meta().scrub_candidates(1).await.unwrap()[0].verified_bytes,
        12
    );
    w.store.objects.borrow_mut().get_mut(&key).unwrap()[30] ^= 1;
    let mut found = None;
    for _ in 0..10 {
        let r = w.slice(Duration::ZERO, 4).await;
        if let Some(f) = r.findings.into_iter().next() {
            found = Some(f);
            break;
        }
    }
    let f = found.expect("the change is found");
    assert_eq!(f.object_key, key);
    assert!(w.meta().get_file(&file_id).await.unwrap().unwrap().corrupt);
}

#[tokio::test]
async fn an_unavailable_backend_is_no_verdict() {
    let w = World::new().await;
    let (file_id, _) = w.file("a.bin", b"some bytes").await;
    w.store.down.set(true);
    let r = w.slice(LONG, 4).await;
    assert_eq!(
        (r.unavailable, r.corrupt, r.missing, r.verified),
        (1, 0, 0, 0)
    );
    assert!(!w.meta().get_file(&file_id).await.unwrap().unwrap().corrupt);
    w.store.down.set(false);
    assert_eq!(w.slice(LONG, 4).await.verified, 1);
}

#[tokio::test]
async fn blobs_go_oldest_check_first() {
    let w = World::new().await;
    let (_, newer) = w.file("newer.bin", b"checked recently").await;
    let (_, older) = w.file("older.bin", b"checked long ago").await;
    let (_, never) = w.file("never.bin", b"never checked").await;
    let s = w.meta();
    for (key, at) in [(&newer, t(2_000)), (&older, t(1_000))] {
        s.mark_verified(&loc(key), at).await.unwrap();
    }
    assert_eq!(
        s.scrub_status(1).await.unwrap().oldest_verified_at,
        Some(t(1_000))
    );
    let order: Vec<String> = s
        .scrub_candidates(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.location.object_key)
        .collect();
    assert_eq!(order, vec![never.clone(), older.clone(), newer.clone()]);
    // A zero budget verifies one blob per slice, in that order.
    let last_verified = |key: &str| {
        let key = key.to_string();
        let w = &w;
        async move {
            w.meta()
                .scrub_candidates(10)
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.location.object_key == key)
                .unwrap()
                .last_verified_at
        }
    };
    for (n, key) in [&never, &older, &newer].into_iter().enumerate() {
        let r = w.slice(Duration::ZERO, 1 << 20).await;
        assert_eq!((r.examined, r.verified), (1, 1), "slice {n}");
        assert!(
            last_verified(key).await.unwrap() > t(2_000),
            "slice {n}: {key}"
        );
    }
}

#[tokio::test]
async fn the_sweep_runs_a_slice() {
    let w = World::new().await;
    let (file_id, key) = w.file("a.bin", b"bytes the sweep checks").await;
    w.store.objects.borrow_mut().get_mut(&key).unwrap()[0] ^= 1;
    let cfg = SweepConfig {
        batch_size: 100,
        open_ttl_secs: 365 * 86_400,
        lease_secs: 600,
        orphan_grace_secs: 86_400,
        verify_budget: Duration::from_secs(5),
    };
    run_sweep(&w.meta(), &w.store, time::now(), &cfg, "sweeper")
        .await
        .unwrap();
    assert!(w.meta().get_file(&file_id).await.unwrap().unwrap().corrupt);
    let events = w.corruption_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "sweeper");
    assert_eq!(events[0].details["source"], "scrub");
}

/// A blob a sweep is deleting is never reported corrupt, though its object is gone.
#[tokio::test]
async fn an_object_being_deleted_is_not_corrupt() {
    let w = World::new().await;
    let (file_id, key) = w.file("a.bin", b"bytes on their way out").await;
    let s = w.meta();
    s.conn()
        .execute("UPDATE blobs SET state = 'deleting'", &[])
        .await
        .unwrap();
    w.store.objects.borrow_mut().remove(&key);
    assert!(
        s.mark_corrupt(&loc(&key), "missing", "gone", "ops-team", time::now())
            .await
            .unwrap()
            .is_none()
    );
    let r = w.slice(LONG, 4).await;
    assert_eq!(r.examined, 0);
    assert!(!s.get_file(&file_id).await.unwrap().unwrap().corrupt);
    assert!(w.corruption_events().await.is_empty());
}
