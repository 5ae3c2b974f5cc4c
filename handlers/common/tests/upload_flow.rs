//! The upload flow (`artifact_store_handlers::upload`) under every interleaving and fault a
//! single upload can meet, on a real SQLite metadata store and an in-memory object store:
//!
//! - a whole sweep (which deletes an expired package holding the same bytes) at every step
//!   boundary: before each object-store call and each statement run outside a transaction;
//! - a failure of every single call (each object-store call, each SQL statement, inside
//!   transactions too);
//! - a crash at every step boundary (the flow is dropped there, no clean-up runs).
//!
//! After each run, and a recovery sweep: a successful upload's file downloads intact, every
//! live file's object exists, no pending upload or staging object is left, and the audit
//! chain verifies. The loop walks the points until the script no longer fires, so a new
//! step in the flow is covered without touching this test.

mod metadata_scenarios;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use artifact_store_core::model::{File, RetentionClass, Timestamp};
use artifact_store_core::ports::{
    BackendHealth, ByteRange, ByteStream, HealthStatus, MetadataStore, ObjectInfo, ObjectStore,
    PutMetadata, PutReceipt, StorageError,
};
use artifact_store_core::{content, time};
use artifact_store_handlers::metadata::{
    Dialect, SqlConn, SqlError, SqlErrorKind, SqlRow, SqlStore, SqlValue,
};
use artifact_store_handlers::sweep::{ObjectStores, SweepConfig, run_sweep};
use artifact_store_handlers::upload::{Declared, Upload, VerifiedPut, store_declared, store_file};
use metadata_scenarios::sqlite::{RusqliteConn, SqliteDb, fresh};
use metadata_scenarios::{Harness, new_package, verify};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A whole sweep runs at the point.
    Sweep,
    /// The call at the point fails.
    Fail,
    /// The flow stops at the point for good (its future is dropped).
    Crash,
}

/// Which point gets the fault, and where the flow is.
struct Script {
    fault: Fault,
    at: usize,
    seen: Cell<usize>,
    fired: Cell<bool>,
    /// Inside a transaction of the upload's connection (no sweep can run there).
    in_tx: Cell<bool>,
    /// A sweep is running: its own calls are not the upload's points.
    sweeping: Cell<bool>,
}

impl Script {
    /// Counts a point; `Some(fault)` when the fault is due here. Sweeps and crashes happen
    /// only at step boundaries; failures at every call.
    fn point(&self, boundary: bool) -> Option<Fault> {
        if self.sweeping.get() || (self.fault != Fault::Fail && !boundary) {
            return None;
        }
        let n = self.seen.get();
        self.seen.set(n + 1);
        (n == self.at).then(|| {
            self.fired.set(true);
            self.fault
        })
    }
}

/// Everything a run shares: the database, the object store and the script.
struct World {
    db: SqliteDb,
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    /// How many promotions ran.
    promotes: Cell<usize>,
    script: Script,
}

/// A date at which the seed package has expired and the upload's package has not.
fn sweep_now() -> Timestamp {
    time::now() + chrono::TimeDelta::days(8)
}

fn sweep_config(orphan_grace_secs: i64) -> SweepConfig {
    SweepConfig {
        batch_size: 100,
        open_ttl_secs: 365 * 86_400,
        lease_secs: 600,
        orphan_grace_secs,
        verify_budget: std::time::Duration::from_secs(1),
    }
}

impl World {
    async fn sweep(self: &Rc<World>, orphan_grace_secs: i64) {
        let was = self.script.sweeping.replace(true);
        let meta = SqlStore::new(self.db.raw_conn());
        run_sweep(
            &meta,
            &Stores(FakeStore(self.clone())),
            sweep_now(),
            &sweep_config(orphan_grace_secs),
            "sweeper",
        )
        .await
        .expect("sweep");
        self.script.sweeping.set(was);
    }

    /// Runs the script's fault at a point: `Err` for a failure.
    async fn at_point(self: &Rc<World>, boundary: bool) -> Result<(), ()> {
        match self.script.point(boundary) {
            None => Ok(()),
            Some(Fault::Sweep) => {
                // Boxed: the sweep calls the object store, whose calls are points. Its
                // orphan grace spares uploads started in the last 9 days (this one).
                let sweep: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> =
                    Box::pin(self.sweep(9 * 86_400));
                sweep.await;
                Ok(())
            }
            Some(Fault::Fail) => Err(()),
            Some(Fault::Crash) => std::future::pending().await,
        }
    }
}

/// The in-memory object store; every call is a point of the script.
struct FakeStore(Rc<World>);

struct Stores(FakeStore);

impl ObjectStores for Stores {
    type Store = FakeStore;
    fn object_store(&self, backend_id: &str) -> Option<&FakeStore> {
        (backend_id == "kv").then_some(&self.0)
    }
}

struct VecReader(Option<Vec<u8>>);

impl ByteStream for VecReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.take())
    }
}

fn injected() -> StorageError {
    StorageError::Unavailable {
        detail: "injected".into(),
        retry_after_secs: 1,
    }
}

impl ObjectStore for FakeStore {
    type Reader = VecReader;

    fn backend_id(&self) -> &str {
        "kv"
    }

    async fn put(
        &self,
        key: &str,
        body: &mut impl ByteStream,
        _meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        self.0.at_point(true).await.map_err(|_| injected())?;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        let receipt = PutReceipt {
            location: artifact_store_core::model::StorageLocation {
                backend_id: "kv".into(),
                object_key: key.into(),
            },
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        self.0.objects.borrow_mut().insert(key.into(), bytes);
        Ok(receipt)
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.0.at_point(true).await.map_err(|_| injected())?;
        let bytes = self.0.objects.borrow().get(from).cloned();
        let bytes = bytes.ok_or_else(|| StorageError::NotFound(from.into()))?;
        self.0.promotes.set(self.0.promotes.get() + 1);
        self.0.objects.borrow_mut().insert(to.into(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str, _range: Option<ByteRange>) -> Result<VecReader, StorageError> {
        let bytes = self.0.objects.borrow().get(key).cloned();
        Ok(VecReader(Some(
            bytes.ok_or_else(|| StorageError::NotFound(key.into()))?,
        )))
    }

    async fn presign_get(&self, _key: &str, _secs: u64) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        Ok(self.0.objects.borrow().get(key).map(|b| ObjectInfo {
            size_bytes: b.len() as u64,
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.at_point(true).await.map_err(|_| injected())?;
        self.0.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn health(&self) -> BackendHealth {
        BackendHealth {
            status: HealthStatus::Ok,
            detail: String::new(),
        }
    }
}

/// The fast path's write: the store checks the declared digest itself.
impl VerifiedPut<Vec<u8>> for FakeStore {
    async fn put_verified(
        &self,
        key: &str,
        payload: &mut Vec<u8>,
        size: u64,
        sha256: &str,
    ) -> Result<(), StorageError> {
        self.0.at_point(true).await.map_err(|_| injected())?;
        let bytes = std::mem::take(payload);
        if bytes.len() as u64 != size {
            return Err(StorageError::Source("short body".into()));
        }
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(StorageError::DigestMismatch("injected".into()));
        }
        self.0.objects.borrow_mut().insert(key.into(), bytes);
        Ok(())
    }
}

/// The upload's SQL connection; every statement is a point of the script.
struct ScriptedConn {
    inner: RusqliteConn,
    world: Rc<World>,
}

impl ScriptedConn {
    async fn point(&self, sql: &str) -> Result<(), SqlError> {
        let script = &self.world.script;
        let head = sql.trim_start().to_ascii_uppercase();
        let boundary = !script.in_tx.get();
        if head.starts_with("BEGIN") {
            script.in_tx.set(true);
        } else if head.starts_with("COMMIT") || head.starts_with("ROLLBACK") {
            script.in_tx.set(false);
        }
        self.world.at_point(boundary).await.map_err(|_| SqlError {
            kind: SqlErrorKind::Other,
            message: "injected".into(),
        })
    }
}

impl SqlConn for ScriptedConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        // A failed COMMIT leaves the transaction open; the store rolls it back.
        self.point(sql).await?;
        self.inner.execute(sql, params).await
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, SqlError> {
        self.point(sql).await?;
        self.inner.query(sql, params).await
    }
}

const BYTES: &[u8] = b"the same evidence, uploaded twice";

fn digest() -> String {
    hex::encode(Sha256::digest(BYTES))
}

/// Seeds an expired package holding `BYTES` and an open package to upload into; returns
/// the open package's id.
async fn seed(world: &Rc<World>) -> String {
    let s = world.db.connect().await;
    let created = time::now();
    let old = s
        .create_package(new_package("alpha", RetentionClass::Transient, created))
        .await
        .unwrap();
    let key = content::object_key("", &digest());
    let pending = artifact_store_core::ports::PendingUpload {
        id: uuid::Uuid::now_v7().to_string(),
        package_id: old.id.clone(),
        backend_id: "kv".into(),
        staging_key: content::staging_key("", "seed"),
        started_at: created,
    };
    s.begin_upload(&pending).await.unwrap();
    let location = artifact_store_core::model::StorageLocation {
        backend_id: "kv".into(),
        object_key: key.clone(),
    };
    s.pin_blob(&pending.id, &location).await.unwrap();
    world.objects.borrow_mut().insert(key, BYTES.to_vec());
    s.commit_upload(&artifact_store_core::ports::CommitUpload {
        pending_id: pending.id.clone(),
        file: File {
            id: uuid::Uuid::now_v7().to_string(),
            package_id: old.id.clone(),
            relative_path: "old.bin".into(),
            media_type: "application/octet-stream".into(),
            size_bytes: BYTES.len() as u64,
            sha256: digest(),
            created_at: created,
        },
        location,
        actor: "ci-bot".into(),
    })
    .await
    .unwrap();
    s.abort_upload(&pending.id).await.unwrap();
    s.finalize_package(&old.id, "ci-bot", created)
        .await
        .unwrap();
    s.create_package(new_package("beta", RetentionClass::RawEvidence, created))
        .await
        .unwrap()
        .id
}

/// Which of the two upload paths runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `store_file`: staged, hashed here, promoted.
    Staged,
    /// `store_declared`: straight to the final key, checked by the store.
    Declared,
}

/// An empty store and database whose script puts `fault` at point `at`.
async fn new_world(fault: Fault, at: usize) -> Rc<World> {
    Rc::new(World {
        db: fresh().await,
        objects: RefCell::new(BTreeMap::new()),
        promotes: Cell::new(0),
        script: Script {
            fault,
            at,
            seen: Cell::new(0),
            fired: Cell::new(false),
            in_tx: Cell::new(false),
            sweeping: Cell::new(false),
        },
    })
}

/// The upload of `BYTES`, digest declared, into package `target`.
fn upload_of_bytes(target: &str) -> Upload {
    Upload {
        package_id: target.to_string(),
        relative_path: "new.bin".into(),
        media_type: "application/octet-stream".into(),
        expected_sha256: Some(digest()),
        expected_size: None,
        actor: "ci-bot".into(),
        max_bytes: 1 << 20,
        key_prefix: String::new(),
    }
}

/// The flows' timer, in runs where no sweep is left half done.
async fn no_sleep(_: std::time::Duration) {}

/// A world with the seed's package, whose blob a sweep is deleting right now (the state
/// between its claim and its `forget_blob`); no scripted fault fires.
async fn world_mid_deletion() -> (Rc<World>, String) {
    let world = new_world(Fault::Fail, usize::MAX).await;
    let target = seed(&world).await;
    let s = world.db.connect().await;
    s.conn()
        .execute("UPDATE blobs SET state = 'deleting'", &[])
        .await
        .unwrap();
    (world, target)
}

/// What the sweep does after its claim: the object goes, then the blob row.
async fn finish_deletion(world: &World) {
    world
        .objects
        .borrow_mut()
        .remove(&content::object_key("", &digest()));
    let s = world.db.connect().await;
    s.conn().execute("DELETE FROM blobs", &[]).await.unwrap();
}

async fn upload_bytes(
    path: Path,
    world: &Rc<World>,
    target: &str,
    sleep: &impl AsyncFn(std::time::Duration),
) -> Result<File, artifact_store_handlers::problem::ApiError> {
    let upload = upload_of_bytes(target);
    let meta = SqlStore::new(world.db.raw_conn());
    let store = FakeStore(world.clone());
    match path {
        Path::Staged => {
            let mut body = VecReader(Some(BYTES.to_vec()));
            store_file(&meta, &store, &upload, &mut body, sleep).await
        }
        Path::Declared => {
            let declared = Declared {
                size: BYTES.len() as u64,
                sha256: digest(),
            };
            let mut payload = BYTES.to_vec();
            store_declared(&meta, &store, &upload, &declared, &mut payload, sleep).await
        }
    }
}

/// A sweep deleting the same bytes when the upload pins them is waited out, not refused
/// at once (a refusal would tell the caller that someone else held these bytes), and the
/// upload then stores the bytes anew.
#[tokio::test(flavor = "current_thread")]
async fn a_deletion_of_the_same_bytes_is_waited_out() {
    for path in [Path::Staged, Path::Declared] {
        let (world, target) = world_mid_deletion().await;
        let waits = Cell::new(0);
        let sleep = async |_: std::time::Duration| {
            waits.set(waits.get() + 1);
            finish_deletion(&world).await;
        };
        let file = upload_bytes(path, &world, &target, &sleep)
            .await
            .unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        assert_eq!(waits.get(), 1, "{path:?}: one wait");
        let key = content::object_key("", &file.sha256);
        assert_eq!(
            world.objects.borrow().get(&key).map(Vec::as_slice),
            Some(BYTES),
            "{path:?}: the committed file's bytes are stored"
        );
    }
}

/// A deletion that never finishes (its backend is down) ends in a plain 503 after the
/// bounded waits, naming neither the bytes nor another package.
#[tokio::test(flavor = "current_thread")]
async fn a_deletion_that_never_ends_answers_503() {
    for path in [Path::Staged, Path::Declared] {
        let (world, target) = world_mid_deletion().await;
        let waited = Cell::new(std::time::Duration::ZERO);
        let sleep = async |d: std::time::Duration| waited.set(waited.get() + d);
        let err = upload_bytes(path, &world, &target, &sleep)
            .await
            .expect_err("the bytes are never free");
        assert_eq!(err.status(), 503, "{path:?}: {err:?}");
        let text = format!("{err:?}");
        assert!(!text.contains("same bytes"), "{path:?}: {text}");
        assert!(
            waited.get() >= std::time::Duration::from_secs(5),
            "{path:?}: waited {:?}",
            waited.get()
        );
    }
}

/// A world whose open package has another upload of `BYTES` pinned (between its pin and
/// its commit: writing the bytes); returns the package id and that upload.
async fn world_mid_write() -> (Rc<World>, String, artifact_store_core::ports::PendingUpload) {
    let world = new_world(Fault::Fail, usize::MAX).await;
    let s = world.db.connect().await;
    let target = s
        .create_package(new_package(
            "beta",
            RetentionClass::RawEvidence,
            time::now(),
        ))
        .await
        .unwrap()
        .id;
    let writer = artifact_store_core::ports::PendingUpload {
        id: uuid::Uuid::now_v7().to_string(),
        package_id: target.clone(),
        backend_id: "kv".into(),
        staging_key: content::staging_key("", "writer"),
        started_at: time::now(),
    };
    s.begin_upload(&writer).await.unwrap();
    let pinned = s.pin_blob(&writer.id, &location_of_bytes()).await.unwrap();
    assert_eq!(pinned, artifact_store_core::ports::PinState::Absent);
    (world, target, writer)
}

fn location_of_bytes() -> artifact_store_core::model::StorageLocation {
    artifact_store_core::model::StorageLocation {
        backend_id: "kv".into(),
        object_key: content::object_key("", &digest()),
    }
}

/// The other writer's promotion and commit.
async fn finish_write(world: &World, writer: &artifact_store_core::ports::PendingUpload) {
    world
        .objects
        .borrow_mut()
        .insert(location_of_bytes().object_key, BYTES.to_vec());
    let s = world.db.connect().await;
    s.commit_upload(&artifact_store_core::ports::CommitUpload {
        pending_id: writer.id.clone(),
        file: File {
            id: uuid::Uuid::now_v7().to_string(),
            package_id: writer.package_id.clone(),
            relative_path: "first.bin".into(),
            media_type: "application/octet-stream".into(),
            size_bytes: BYTES.len() as u64,
            sha256: digest(),
            created_at: time::now(),
        },
        location: location_of_bytes(),
        actor: "ci-bot".into(),
    })
    .await
    .unwrap();
}

/// A staged upload of bytes another upload is writing waits for that upload's commit and
/// reuses its object: two promotions of one object never run at once (on kv the later
/// would orphan the earlier's chunks). A declared upload writes beside it at once.
#[tokio::test(flavor = "current_thread")]
async fn another_writer_of_the_same_bytes_is_waited_for() {
    for path in [Path::Staged, Path::Declared] {
        let (world, target, writer) = world_mid_write().await;
        let waits = Cell::new(0);
        let sleep = async |_: std::time::Duration| {
            waits.set(waits.get() + 1);
            finish_write(&world, &writer).await;
        };
        let file = upload_bytes(path, &world, &target, &sleep)
            .await
            .unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        assert_eq!(file.sha256, digest());
        match path {
            Path::Staged => {
                assert_eq!(waits.get(), 1, "waits for the other writer");
                assert_eq!(world.promotes.get(), 0, "reuses the other writer's object");
            }
            Path::Declared => assert_eq!(waits.get(), 0, "writes beside it"),
        }
    }
}

/// A writer that never commits (it died between its pin and its commit) holds up another
/// upload of its bytes only for the bounded waits: that upload then writes them itself.
#[tokio::test(flavor = "current_thread")]
async fn a_writer_that_never_commits_is_taken_over() {
    let (world, target, _writer) = world_mid_write().await;
    let waits = Cell::new(0);
    let sleep = async |_: std::time::Duration| waits.set(waits.get() + 1);
    let file = upload_bytes(Path::Staged, &world, &target, &sleep)
        .await
        .expect("taken over");
    assert_eq!(waits.get(), 6, "the bounded waits");
    assert_eq!(world.promotes.get(), 1, "writes the bytes itself");
    assert_eq!(
        world
            .objects
            .borrow()
            .get(&location_of_bytes().object_key)
            .map(Vec::as_slice),
        Some(BYTES)
    );
    assert_eq!(file.sha256, digest());
}

/// One run: the flow with `fault` at point `at`. `None` when the script never fired (the
/// flow has fewer points).
async fn run(path: Path, fault: Fault, at: usize) -> Option<String> {
    let world = new_world(fault, at).await;
    let target = seed(&world).await;
    let upload = upload_of_bytes(&target);
    let outcome = {
        // Its own connection: dropping it (a crash) rolls back whatever it had open.
        let meta = SqlStore::new(ScriptedConn {
            inner: world.db.raw_conn(),
            world: world.clone(),
        });
        let store = FakeStore(world.clone());
        let timeout = std::time::Duration::from_secs(5);
        match path {
            Path::Staged => {
                let mut body = VecReader(Some(BYTES.to_vec()));
                let flow = store_file(&meta, &store, &upload, &mut body, &no_sleep);
                tokio::time::timeout(timeout, flow).await
            }
            Path::Declared => {
                let declared = Declared {
                    size: BYTES.len() as u64,
                    sha256: digest(),
                };
                let mut payload = BYTES.to_vec();
                let flow =
                    store_declared(&meta, &store, &upload, &declared, &mut payload, &no_sleep);
                tokio::time::timeout(timeout, flow).await
            }
        }
    };
    if !world.script.fired.get() {
        return None;
    }
    let label = format!("{path:?}: {fault:?} at point {at}");
    let result = match outcome {
        Ok(r) => Some(r),
        Err(_) => {
            assert_eq!(fault, Fault::Crash, "{label}: the flow hung");
            None
        }
    };
    if fault == Fault::Sweep {
        let r = result.as_ref().unwrap();
        assert!(
            r.is_ok(),
            "{label}: a sweep between steps must not fail the upload: {r:?}"
        );
    }
    // Recovery: a sweep that treats every pending upload as an orphan.
    world.script.sweeping.set(true);
    let recovery: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> =
        Box::pin(world.sweep(-3600));
    recovery.await;

    let s = world.db.connect().await;
    let rows = |sql: &str| {
        let s = &s;
        let sql = sql.to_string();
        async move { s.conn().query(&sql, &[]).await.unwrap() }
    };
    if let Some(Ok(file)) = &result {
        let key = content::object_key("", &file.sha256);
        assert_eq!(
            world.objects.borrow().get(&key).map(Vec::as_slice),
            Some(BYTES),
            "{label}: a committed upload's bytes are stored"
        );
        let record = s.get_file(&file.id).await.unwrap();
        assert!(
            record.is_some_and(|r| !r.deleted),
            "{label}: the file is live"
        );
    }
    let mut live = Vec::new();
    for row in rows(
        "SELECT l.object_key FROM artifact_files f JOIN storage_locations l ON l.file_id = f.id \
         JOIN artifact_packages p ON p.id = f.package_id \
         WHERE f.deleted_at IS NULL AND p.status <> 'deleted'",
    )
    .await
    {
        let SqlValue::Text(key) = &row[0] else {
            panic!()
        };
        assert!(
            world.objects.borrow().contains_key(key),
            "{label}: a live file's object {key} is missing"
        );
        live.push(key.clone());
    }
    let unreferenced: Vec<String> = world
        .objects
        .borrow()
        .keys()
        .filter(|k| !k.contains("staging/") && !live.contains(k))
        .cloned()
        .collect();
    assert!(
        unreferenced.is_empty(),
        "{label}: objects no file references were left: {unreferenced:?}"
    );
    assert!(
        rows("SELECT id FROM pending_uploads").await.is_empty(),
        "{label}: pending uploads left after the recovery sweep"
    );
    let staging: Vec<String> = world
        .objects
        .borrow()
        .keys()
        .filter(|k| k.contains("staging/"))
        .cloned()
        .collect();
    assert!(
        staging.is_empty(),
        "{label}: staging objects left: {staging:?}"
    );
    let report = verify(&s).await;
    assert!(report.valid, "{label}: audit chain: {report:?}");
    Some(match result {
        Some(Ok(_)) => "201".into(),
        Some(Err(e)) => format!("{}", e.status()),
        None => "crashed".into(),
    })
}

async fn every_point(path: Path, fault: Fault) {
    let mut outcomes = Vec::new();
    for at in 0.. {
        match run(path, fault, at).await {
            Some(outcome) => outcomes.push(outcome),
            None => break,
        }
    }
    eprintln!(
        "{path:?}: {fault:?}: {} points: {outcomes:?}",
        outcomes.len()
    );
    assert!(
        outcomes.len() >= 5,
        "too few points: the script is not wired in"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_sweep_at_any_step_never_loses_the_upload() {
    every_point(Path::Staged, Fault::Sweep).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_at_any_call_leaves_nothing_behind() {
    every_point(Path::Staged, Fault::Fail).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_crash_at_any_step_leaves_nothing_a_sweep_cannot_clean() {
    every_point(Path::Staged, Fault::Crash).await;
}

#[tokio::test(flavor = "current_thread")]
async fn declared_a_sweep_at_any_step_never_loses_the_upload() {
    every_point(Path::Declared, Fault::Sweep).await;
}

#[tokio::test(flavor = "current_thread")]
async fn declared_a_failure_at_any_call_leaves_nothing_behind() {
    every_point(Path::Declared, Fault::Fail).await;
}

#[tokio::test(flavor = "current_thread")]
async fn declared_a_crash_at_any_step_leaves_nothing_a_sweep_cannot_clean() {
    every_point(Path::Declared, Fault::Crash).await;
}
