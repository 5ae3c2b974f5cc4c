//! `sweep::run_sweep` on a real SQLite store with an in-memory object store fake (the
//! real backends have their own tests): deletion order, failures and retries, holds,
//! shared objects and orphans.

mod metadata_scenarios;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use artifact_store_core::model::{AuditEventType, PackageStatus, RetentionClass};
use artifact_store_core::ports::{
    AuditFilter, BackendHealth, ByteRange, ByteStream, HealthStatus, MetadataStore, ObjectInfo,
    ObjectStore, PageRequest, PendingUpload, PutMetadata, PutReceipt, StorageError,
};
use artifact_store_handlers::sweep::{ObjectStores, SweepConfig, SweepReport, run_sweep};
use metadata_scenarios::{Harness, new_package, t, upload};

/// Objects by key; deleting a key in `failing` fails as an unavailable backend would.
#[derive(Default)]
struct FakeStore {
    objects: RefCell<BTreeMap<String, u64>>,
    failing: RefCell<BTreeSet<String>>,
}

struct NoBytes;

impl ByteStream for NoBytes {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
}

impl ObjectStore for FakeStore {
    type Reader = NoBytes;

    fn backend_id(&self) -> &str {
        "kv"
    }

    async fn put(
        &self,
        _key: &str,
        _body: &mut impl ByteStream,
        _meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        Err(StorageError::Backend("not used by sweeps".into()))
    }

    async fn promote(&self, _from: &str, _to: &str) -> Result<(), StorageError> {
        Err(StorageError::Backend("not used by sweeps".into()))
    }

    async fn get(&self, _key: &str, _range: Option<ByteRange>) -> Result<NoBytes, StorageError> {
        Ok(NoBytes)
    }

    async fn presign_get(&self, _key: &str, _secs: u64) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        Ok(self
            .objects
            .borrow()
            .get(key)
            .map(|&size_bytes| ObjectInfo { size_bytes }))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        if self.failing.borrow().contains(key) {
            return Err(StorageError::Unavailable {
                detail: "injected failure".into(),
                retry_after_secs: 1,
            });
        }
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

impl ObjectStores for FakeStore {
    type Store = FakeStore;

    fn object_store(&self, backend_id: &str) -> Option<&FakeStore> {
        (backend_id == "kv").then_some(self)
    }
}

fn cfg() -> SweepConfig {
    SweepConfig {
        batch_size: 10,
        open_ttl_secs: 86_400,
        lease_secs: 600,
        orphan_grace_secs: 3_600,
        verify_budget: std::time::Duration::from_secs(1),
    }
}

fn digest(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn key(n: u8) -> String {
    let d = digest(n);
    format!("sha256/{}/{}/{d}", &d[..2], &d[2..4])
}

fn report(examined: u64, deleted: u64, held: u64, failed: u64) -> SweepReport {
    SweepReport {
        examined,
        deleted,
        held,
        failed,
        orphans_removed: 0,
    }
}

#[tokio::test]
async fn sweep_deletes_expired_packages_and_keeps_shared_and_held_ones() {
    let db = metadata_scenarios::sqlite::fresh().await;
    let s = db.connect().await;
    let store = FakeStore::default();
    for n in 1..=3 {
        store.objects.borrow_mut().insert(key(n), 4);
    }
    let expired = s
        .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    upload(&s, &expired.id, "shared.bin", &digest(1), 4)
        .await
        .unwrap();
    upload(&s, &expired.id, "own.bin", &digest(2), 4)
        .await
        .unwrap();
    s.finalize_package(&expired.id, "ci", t(1)).await.unwrap();
    let live = s
        .create_package(new_package("beta", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    upload(&s, &live.id, "shared.bin", &digest(1), 4)
        .await
        .unwrap();
    s.finalize_package(&live.id, "ci", t(1)).await.unwrap();
    let held = s
        .create_package(new_package("gamma", RetentionClass::Transient, t(0)))
        .await
        .unwrap();
    upload(&s, &held.id, "held.bin", &digest(3), 4)
        .await
        .unwrap();
    s.finalize_package(&held.id, "ci", t(1)).await.unwrap();
    s.apply_hold(&held.id, "legal", "op", t(2)).await.unwrap();

    let now = t(0) + chrono::TimeDelta::days(8);
    // The first deletion attempt fails: nothing is lost, the package stays `deleting`.
    store.failing.borrow_mut().insert(key(2));
    let first = run_sweep(&s, &store, now, &cfg(), "sweeper").await.unwrap();
    assert_eq!(first, report(2, 0, 1, 1));
    assert_eq!(
        s.get_package(&expired.id).await.unwrap().unwrap().status,
        PackageStatus::Deleting
    );
    // The retry succeeds.
    store.failing.borrow_mut().clear();
    let second = run_sweep(&s, &store, now, &cfg(), "sweeper").await.unwrap();
    assert_eq!(second, report(2, 1, 1, 0));
    assert_eq!(
        s.get_package(&expired.id).await.unwrap().unwrap().status,
        PackageStatus::Deleted
    );
    let left: Vec<String> = store.objects.borrow().keys().cloned().collect();
    assert_eq!(left, vec![key(1), key(3)], "shared and held objects stay");
    assert_eq!(
        s.get_package(&held.id).await.unwrap().unwrap().status,
        PackageStatus::Finalized
    );
    // Nothing left to do.
    let third = run_sweep(&s, &store, now, &cfg(), "sweeper").await.unwrap();
    assert_eq!(third, report(1, 0, 1, 0));

    let sweeps = s
        .list_audit(
            &AuditFilter {
                package_id: None,
                event_type: Some(AuditEventType::SweepCompleted),
            },
            &PageRequest {
                limit: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(sweeps.items.len(), 3);
    assert_eq!(sweeps.items[0].details["held"], 1);
}

#[tokio::test]
async fn sweep_removes_orphaned_staging_objects_after_the_grace_period() {
    let db = metadata_scenarios::sqlite::fresh().await;
    let s = db.connect().await;
    let store = FakeStore::default();
    let p = s
        .create_package(new_package("alpha", RetentionClass::RawEvidence, t(0)))
        .await
        .unwrap();
    let pending = PendingUpload {
        id: "upload-1".into(),
        package_id: p.id.clone(),
        backend_id: "kv".into(),
        staging_key: "staging/upload-1".into(),
        started_at: t(10),
    };
    s.begin_upload(&pending).await.unwrap();
    store
        .objects
        .borrow_mut()
        .insert(pending.staging_key.clone(), 9);

    let early = run_sweep(&s, &store, t(10 + 3_599), &cfg(), "sweeper")
        .await
        .unwrap();
    assert_eq!(early.orphans_removed, 0);
    let late = run_sweep(&s, &store, t(10 + 3_601), &cfg(), "sweeper")
        .await
        .unwrap();
    assert_eq!(late.orphans_removed, 1);
    assert!(store.objects.borrow().is_empty());
    assert!(s.stale_uploads(t(100_000), 10).await.unwrap().is_empty());
    let orphan = s
        .list_audit(
            &AuditFilter {
                package_id: Some(p.id.clone()),
                event_type: Some(AuditEventType::OrphanRemoved),
            },
            &PageRequest {
                limit: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(orphan.items[0].details["staging_key"], "staging/upload-1");
}
