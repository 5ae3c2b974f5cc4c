//! The `kv` backend: objects as 1 MiB chunks in the Spin key-value store `blobs`.
//!
//! Layout (BRIEF): chunks at `<key>/c/<n>`, then the object's meta JSON at `<key>`
//! (`{"size","sha256","chunk_size","chunks"}`), written last. Decision: the meta is the
//! commit point, so a reader that finds meta finds every chunk, and an absent meta means an
//! absent object whatever chunks lie around. Deletion removes the meta last, so a deletion
//! cut short is found and finished by the next one (nothing reads the object by then: the
//! registry marks its blob `deleting` first).
//! Chunks are 1 MiB because Spin bounds key-value values; a range read touches only the
//! chunks it needs. The cost is one KV round trip per MiB.
//!
//! Promotion moves, never copies: the final key's meta points at the staged chunks
//! (`"chunks_at": "<staging key>"`), and the staging key becomes a forwarding entry
//! (`{"moved_to","chunks"}`), written first. Deleting a forwarding entry frees the chunks
//! only if the key it names does not point at them, so a crash between the two writes
//! loses nothing and leaks nothing. While the object uses them, deleting the staging key
//! changes nothing: the entry and the chunks are deleted with the object. (An upload
//! deletes its staging key, and the orphan sweep may delete it again after a crash: the
//! entry must still be there to say the chunks are taken.)

use std::cell::OnceCell;
use std::rc::Rc;

use artifact_store_core::model::StorageLocation;
use artifact_store_core::ports::{
    BackendHealth, ByteRange, ByteStream, HealthStatus, ObjectInfo, ObjectStore, PutMetadata,
    PutReceipt, StorageError,
};
use artifact_store_core::session::{PartPlan, SessionPart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spin_sdk::key_value::Store;

pub const STORE_LABEL: &str = "blobs";
pub const CHUNK_SIZE: usize = 1024 * 1024;
pub const BACKEND_ID: &str = "kv";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMeta {
    pub size: u64,
    pub sha256: String,
    pub chunk_size: u64,
    pub chunks: u64,
    /// The key whose chunk entries hold the bytes, when not this one (a promoted object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_at: Option<String>,
}

/// What a key of the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KvEntry {
    Object(KvMeta),
    /// A promoted staging key: its `chunks` chunk entries belong to `moved_to`'s object,
    /// once that object's meta points at them.
    Moved {
        moved_to: String,
        chunks: u64,
    },
    /// An upload session's staging key while parts arrive: its chunks are written in any
    /// order, so a deletion cannot find their end by looking; this says how many there
    /// may be.
    Parts {
        session_chunks: u64,
    },
}

impl KvMeta {
    /// The key under which this object's chunks are stored.
    pub fn chunk_base<'a>(&'a self, key: &'a str) -> &'a str {
        self.chunks_at.as_deref().unwrap_or(key)
    }
}

/// Whether deleting the forwarding entry at `key` must also delete its chunks: only if the
/// object it was moved to does not use them (the promotion never finished, or another
/// upload's bytes replaced it).
pub fn moved_chunks_are_free(key: &str, target: Option<&KvMeta>) -> bool {
    target.is_none_or(|m| m.chunks_at.as_deref() != Some(key))
}

/// Chunk count and boundaries, shared by writer and reader.
impl KvMeta {
    /// `(first chunk, offset in it)` of byte `pos`.
    pub fn locate(&self, pos: u64) -> (u64, usize) {
        (pos / self.chunk_size, (pos % self.chunk_size) as usize)
    }
}

pub fn chunk_key(key: &str, n: u64) -> String {
    format!("{key}/c/{n}")
}

fn unavailable(op: &str, e: impl std::fmt::Debug) -> StorageError {
    StorageError::Unavailable {
        detail: format!("kv {op}: {e:?}"),
        retry_after_secs: 5,
    }
}

/// The `kv` backend; the store is opened on first use.
#[derive(Default)]
pub struct KvStore {
    store: OnceCell<Rc<Store>>,
}

impl KvStore {
    pub fn new() -> KvStore {
        KvStore::default()
    }

    fn store(&self) -> Result<Rc<Store>, StorageError> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let s = Rc::new(Store::open(STORE_LABEL).map_err(|e| unavailable("open", e))?);
        Ok(self.store.get_or_init(|| s).clone())
    }

    fn entry(&self, store: &Store, key: &str) -> Result<Option<KvEntry>, StorageError> {
        match store.get(key).map_err(|e| unavailable("get", e))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageError::Backend(format!("kv meta at {key} unreadable: {e}"))),
        }
    }

    /// The object at `key` (a forwarding entry is no object).
    fn meta(&self, store: &Store, key: &str) -> Result<Option<KvMeta>, StorageError> {
        Ok(match self.entry(store, key)? {
            Some(KvEntry::Object(meta)) => Some(meta),
            Some(KvEntry::Moved { .. } | KvEntry::Parts { .. }) | None => None,
        })
    }

    fn set_entry(store: &Store, key: &str, entry: &KvEntry) -> Result<(), StorageError> {
        let json = serde_json::to_vec(entry).unwrap_or_default();
        store.set(key, &json).map_err(|e| unavailable("set", e))
    }

    /// Deletes chunks `0..count` of `base`, last first: if this is cut short, what is
    /// left still runs from chunk 0, where the next delete finds it.
    fn delete_chunks(store: &Store, base: &str, count: u64) -> Result<(), StorageError> {
        for n in (0..count).rev() {
            store
                .delete(&chunk_key(base, n))
                .map_err(|e| unavailable("delete", e))?;
        }
        Ok(())
    }
}

impl ObjectStore for KvStore {
    type Reader = KvReader;

    fn backend_id(&self) -> &str {
        BACKEND_ID
    }

    async fn put(
        &self,
        key: &str,
        body: &mut impl ByteStream,
        meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        let store = self.store()?;
        // A stale meta would make half-written chunks readable: drop it first.
        store.delete(key).map_err(|e| unavailable("delete", e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut chunks = ChunkWriter::new(&store, key, 0);
        let result: Result<(), StorageError> = async {
            while let Some(data) = body.next_chunk().await? {
                size += data.len() as u64;
                if size > meta.max_bytes {
                    return Err(StorageError::TooLarge {
                        limit: meta.max_bytes,
                    });
                }
                hasher.update(&data);
                chunks.write(&data)?;
            }
            chunks.flush()
        }
        .await;
        let chunks = chunks.next;
        if let Err(e) = result {
            // `chunks` counts what was written; a failed set may have landed too.
            let _ = Self::delete_chunks(&store, key, chunks + 1);
            return Err(e);
        }
        let sha256 = hex::encode(hasher.finalize());
        let object = KvMeta {
            size,
            sha256: sha256.clone(),
            chunk_size: CHUNK_SIZE as u64,
            chunks,
            chunks_at: None,
        };
        if let Err(e) = Self::set_entry(&store, key, &KvEntry::Object(object)) {
            let _ = Self::delete_chunks(&store, key, chunks);
            return Err(e);
        }
        Ok(PutReceipt {
            location: StorageLocation {
                backend_id: BACKEND_ID.to_string(),
                object_key: key.to_string(),
            },
            size_bytes: size,
            sha256,
        })
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let store = self.store()?;
        let meta = self
            .meta(&store, from)?
            .ok_or_else(|| StorageError::NotFound(from.to_string()))?;
        match self.meta(&store, to)? {
            // Already there (content-addressed: same digest, same bytes); `from` is deleted
            // as usual.
            Some(m) if m.sha256 == meta.sha256 => return Ok(()),
            // Other bytes under this digest's key: not ours to keep.
            Some(_) => self.delete(to).await?,
            None => {}
        }
        let base = meta.chunk_base(from).to_string();
        // First the forwarding entry: from here `from` is no object, and its chunks are
        // freed by `delete(from)` unless `to` points at them.
        Self::set_entry(
            &store,
            from,
            &KvEntry::Moved {
                moved_to: to.to_string(),
                chunks: meta.chunks,
            },
        )?;
        // The key-value store has no compare-and-set: another upload of the same bytes may
        // have promoted since the check above. Then its copy stays, and ours (now only a
        // forwarding entry to an object that does not use its chunks) is freed by the
        // deletion of `from` that follows every promotion.
        if self
            .meta(&store, to)?
            .is_some_and(|m| m.sha256 == meta.sha256)
        {
            return Ok(());
        }
        let promoted = KvMeta {
            chunks_at: Some(base),
            ..meta
        };
        Self::set_entry(&store, to, &KvEntry::Object(promoted))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<KvReader, StorageError> {
        let store = self.store()?;
        let meta = self
            .meta(&store, key)?
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        let (start, end_exclusive) = match range {
            None => (0, meta.size),
            Some(r) => (r.start.min(meta.size), (r.end_inclusive + 1).min(meta.size)),
        };
        let (chunk, offset) = meta.locate(start);
        Ok(KvReader {
            store,
            key: meta.chunk_base(key).to_string(),
            next_chunk: chunk,
            offset,
            remaining: end_exclusive.saturating_sub(start),
        })
    }

    async fn presign_get(
        &self,
        _key: &str,
        _expires_secs: u64,
    ) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let store = self.store()?;
        Ok(self
            .meta(&store, key)?
            .map(|m| ObjectInfo { size_bytes: m.size }))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        // Every branch leaves what says what to delete (the meta, the forwarding entry) for
        // last, so a delete cut by a crash is finished by the next one, and a repeated
        // delete never takes bytes that are not this key's.
        let store = self.store()?;
        match self.entry(&store, key)? {
            Some(KvEntry::Object(meta)) => {
                let base = meta.chunk_base(key);
                Self::delete_chunks(&store, base, meta.chunks)?;
                if let Some(moved_from) = &meta.chunks_at
                    && matches!(self.entry(&store, moved_from)?,
                        Some(KvEntry::Moved { ref moved_to, .. }) if moved_to == key)
                {
                    store
                        .delete(moved_from)
                        .map_err(|e| unavailable("delete", e))?;
                }
                store.delete(key).map_err(|e| unavailable("delete", e))
            }
            Some(KvEntry::Moved { moved_to, chunks }) => {
                let target = self.meta(&store, &moved_to)?;
                if !moved_chunks_are_free(key, target.as_ref()) {
                    // The object uses these chunks: they and this entry go with it.
                    return Ok(());
                }
                Self::delete_chunks(&store, key, chunks)?;
                store.delete(key).map_err(|e| unavailable("delete", e))
            }
            Some(KvEntry::Parts { session_chunks }) => {
                Self::delete_chunks(&store, key, session_chunks)?;
                store.delete(key).map_err(|e| unavailable("delete", e))
            }
            // No entry (a write cut by a crash): the chunks run from 0 to the first gap.
            None => {
                let mut count = 0;
                while store
                    .exists(&chunk_key(key, count))
                    .map_err(|e| unavailable("exists", e))?
                {
                    count += 1;
                }
                Self::delete_chunks(&store, key, count)
            }
        }
    }

    /// Parts are written as the chunks they cover (part sizes are whole chunks), under a
    /// `Parts` entry; assembling writes the object's meta over it.
    async fn begin_parts(&self, key: &str, plan: &PartPlan) -> Result<String, StorageError> {
        let store = self.store()?;
        let session_chunks = plan.size_bytes.div_ceil(CHUNK_SIZE as u64);
        Self::set_entry(&store, key, &KvEntry::Parts { session_chunks })?;
        Ok(String::new())
    }

    async fn put_part(
        &self,
        key: &str,
        _upload_id: &str,
        plan: &PartPlan,
        number: u32,
        body: &mut impl ByteStream,
    ) -> Result<String, StorageError> {
        let store = self.store()?;
        if !matches!(self.entry(&store, key)?, Some(KvEntry::Parts { .. })) {
            return Err(StorageError::NotFound(key.to_string()));
        }
        // A part is whole chunks (part sizes are whole MiB): its first is where it starts.
        let mut chunks = ChunkWriter::new(&store, key, plan.offset(number) / CHUNK_SIZE as u64);
        let mut size = 0u64;
        while let Some(data) = body.next_chunk().await? {
            size += data.len() as u64;
            if size > plan.part_size {
                return Err(StorageError::TooLarge {
                    limit: plan.part_size,
                });
            }
            chunks.write(&data)?;
        }
        chunks.flush()?;
        Ok(String::new())
    }

    async fn assemble_parts(
        &self,
        key: &str,
        _upload_id: &str,
        plan: &PartPlan,
        _parts: &[SessionPart],
        sha256: &str,
    ) -> Result<(), StorageError> {
        let store = self.store()?;
        let Some(KvEntry::Parts { session_chunks }) = self.entry(&store, key)? else {
            return Err(StorageError::NotFound(key.to_string()));
        };
        let object = KvMeta {
            size: plan.size_bytes,
            sha256: sha256.to_string(),
            chunk_size: CHUNK_SIZE as u64,
            chunks: session_chunks,
            chunks_at: None,
        };
        Self::set_entry(&store, key, &KvEntry::Object(object))
    }

    async fn health(&self) -> BackendHealth {
        match self.store() {
            Ok(_) => BackendHealth {
                status: HealthStatus::Ok,
                detail: format!("key-value store {STORE_LABEL}"),
            },
            Err(e) => BackendHealth {
                status: HealthStatus::Unavailable,
                detail: e.to_string(),
            },
        }
    }
}

/// Cuts bytes into `CHUNK_SIZE` entries `<key>/c/<n>`, numbered on from `next`.
struct ChunkWriter<'a> {
    store: &'a Store,
    key: &'a str,
    /// The number of the next chunk entry to write.
    next: u64,
    buf: Vec<u8>,
}

impl<'a> ChunkWriter<'a> {
    fn new(store: &'a Store, key: &'a str, first: u64) -> ChunkWriter<'a> {
        ChunkWriter {
            store,
            key,
            next: first,
            buf: Vec::with_capacity(CHUNK_SIZE),
        }
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), StorageError> {
        while !data.is_empty() {
            let n = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes what is buffered (the last, shorter chunk) as an entry of its own.
    fn flush(&mut self) -> Result<(), StorageError> {
        if !self.buf.is_empty() {
            self.store
                .set(&chunk_key(self.key, self.next), &self.buf)
                .map_err(|e| unavailable("set", e))?;
            self.next += 1;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Streams an object (or a slice of it) chunk by chunk.
pub struct KvReader {
    store: Rc<Store>,
    key: String,
    next_chunk: u64,
    offset: usize,
    remaining: u64,
}

impl ByteStream for KvReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let n = self.next_chunk;
        let chunk = self
            .store
            .get(&chunk_key(&self.key, n))
            .map_err(|e| unavailable("get", e))?
            .ok_or_else(|| {
                StorageError::Backend(format!("kv chunk {n} of {} missing", self.key))
            })?;
        if chunk.len() <= self.offset {
            return Err(StorageError::Backend(format!(
                "kv chunk {n} of {} is short",
                self.key
            )));
        }
        let take =
            (chunk.len() - self.offset).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut out = chunk;
        if self.offset > 0 {
            out.drain(..self.offset);
        }
        out.truncate(take);
        self.offset = 0;
        self.next_chunk += 1;
        self.remaining -= take as u64;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locating_bytes() {
        let m = KvMeta {
            size: 3 * CHUNK_SIZE as u64,
            sha256: String::new(),
            chunk_size: CHUNK_SIZE as u64,
            chunks: 3,
            chunks_at: None,
        };
        assert_eq!(m.locate(0), (0, 0));
        assert_eq!(m.locate(CHUNK_SIZE as u64 + 5), (1, 5));
        assert_eq!(chunk_key("sha256/aa/bb/x", 2), "sha256/aa/bb/x/c/2");
    }

    #[test]
    fn meta_json_shape() {
        let m = KvMeta {
            size: 5,
            sha256: "ab".into(),
            chunk_size: 1_048_576,
            chunks: 1,
            chunks_at: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"size":5,"sha256":"ab","chunk_size":1048576,"chunks":1}"#
        );
        // Metas written before promotion moved chunks still read, as objects.
        let old: KvEntry =
            serde_json::from_str(r#"{"size":5,"sha256":"ab","chunk_size":1048576,"chunks":1}"#)
                .unwrap();
        assert_eq!(old, KvEntry::Object(m));
        let moved: KvEntry = serde_json::from_str(r#"{"moved_to":"f","chunks":2}"#).unwrap();
        assert_eq!(
            moved,
            KvEntry::Moved {
                moved_to: "f".into(),
                chunks: 2
            }
        );
    }

    #[test]
    fn promoted_objects_keep_their_chunks_where_they_were_written() {
        let promoted = KvMeta {
            size: 5,
            sha256: "ab".into(),
            chunk_size: 1_048_576,
            chunks: 1,
            chunks_at: Some("staging/u1".into()),
        };
        assert_eq!(promoted.chunk_base("sha256/ab"), "staging/u1");
        // The staging key's chunks are the final object's: keep them.
        assert!(!moved_chunks_are_free("staging/u1", Some(&promoted)));
        // The promotion never finished, or another upload's chunks replaced them: free.
        assert!(moved_chunks_are_free("staging/u1", None));
        assert!(moved_chunks_are_free("staging/u2", Some(&promoted)));
        let own = KvMeta {
            chunks_at: None,
            ..promoted
        };
        assert!(moved_chunks_are_free("staging/u1", Some(&own)));
        assert_eq!(own.chunk_base("sha256/ab"), "sha256/ab");
    }
}
