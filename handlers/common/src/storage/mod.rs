//! Object store adapters: kv and s3.
//!
//! Decision: the backends are a closed enum (`Backend`) that implements `ObjectStore` by
//! delegation, so handlers are written once against the port with static dispatch and no
//! boxed streams. `Backends` holds what this deployment configured: `kv` always, `s3` only
//! when its variables are set. Every stored location names its backend id, so a file
//! uploaded before `default_backend` changed is still served from where it lives.

pub mod kv;
pub mod s3;

use artifact_store_core::ports::{
    BackendHealth, ByteRange, ByteStream, ObjectInfo, ObjectStore, Presigned, PutMetadata,
    PutReceipt, StorageError,
};
use artifact_store_core::session::{PartPlan, SessionPart};

use crate::body::RawBody;
use crate::config::{BackendKind, Config};
use crate::multipart::DeclaredPart;
use crate::problem::{ApiError, log_error};
use crate::upload::VerifiedPut;
use kv::KvStore;
use s3::{S3Config, S3Store};
use wasi::io::streams::InputStream;

pub enum Backend {
    Kv(KvStore),
    S3(Box<S3Store>),
}

impl Backend {
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Kv(_) => BackendKind::Kv,
            Backend::S3(_) => BackendKind::S3,
        }
    }

    /// Whether uploads with a declared size and digest can go straight to the final key
    /// (`upload::store_declared`): S3 checks the signed digest itself, up to its single-PUT
    /// limit. The kv store cannot, so its bytes are hashed on the way in.
    pub fn takes_declared(&self, size: u64) -> bool {
        matches!(self, Backend::S3(_)) && size <= s3::MAX_SINGLE_PUT_BYTES
    }

    /// The prefix of this backend's keys (`""` for kv, `s3_key_prefix` for s3).
    pub fn key_prefix(&self) -> &str {
        match self {
            Backend::Kv(_) => "",
            Backend::S3(s) => s.key_prefix(),
        }
    }
}

pub enum BackendReader {
    Kv(kv::KvReader),
    S3(<S3Store as ObjectStore>::Reader),
}

impl BackendReader {
    /// The host stream behind the reader, where bytes can be spliced host-side (S3).
    pub fn host_stream(&self) -> Option<&InputStream> {
        match self {
            BackendReader::Kv(_) => None,
            BackendReader::S3(r) => Some(r.stream()),
        }
    }
}

impl VerifiedPut<RawBody> for Backend {
    async fn put_verified(
        &self,
        key: &str,
        payload: &mut RawBody,
        size: u64,
        sha256: &str,
    ) -> Result<(), StorageError> {
        match self {
            Backend::S3(s) => s.put_declared(key, payload, size, sha256).await,
            Backend::Kv(_) => Err(StorageError::Backend(
                "the kv store cannot verify a declared digest".into(),
            )),
        }
    }
}

impl VerifiedPut<DeclaredPart> for Backend {
    /// A form's file part: its declared bytes go up as for a raw body, then the rest of the
    /// form must show that the part was exactly that long (else nothing is committed).
    async fn put_verified(
        &self,
        key: &str,
        part: &mut DeclaredPart,
        size: u64,
        sha256: &str,
    ) -> Result<(), StorageError> {
        self.put_verified(key, &mut part.body, size, sha256).await?;
        part.finish().await
    }
}

impl ByteStream for BackendReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            BackendReader::Kv(r) => r.next_chunk().await,
            BackendReader::S3(r) => r.next_chunk().await,
        }
    }
}

impl ObjectStore for Backend {
    type Reader = BackendReader;

    fn backend_id(&self) -> &str {
        match self {
            Backend::Kv(b) => b.backend_id(),
            Backend::S3(b) => b.backend_id(),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: &mut impl ByteStream,
        meta: &PutMetadata,
    ) -> Result<PutReceipt, StorageError> {
        match self {
            Backend::Kv(b) => b.put(key, body, meta).await,
            Backend::S3(b) => b.put(key, body, meta).await,
        }
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), StorageError> {
        match self {
            Backend::Kv(b) => b.promote(from, to).await,
            Backend::S3(b) => b.promote(from, to).await,
        }
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<BackendReader, StorageError> {
        match self {
            Backend::Kv(b) => b.get(key, range).await.map(BackendReader::Kv),
            Backend::S3(b) => b.get(key, range).await.map(BackendReader::S3),
        }
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_secs: u64,
    ) -> Result<Option<String>, StorageError> {
        match self {
            Backend::Kv(b) => b.presign_get(key, expires_secs).await,
            Backend::S3(b) => b.presign_get(key, expires_secs).await,
        }
    }

    async fn presign_put(
        &self,
        key: &str,
        sha256: &str,
        expires_secs: u64,
    ) -> Result<Option<Presigned>, StorageError> {
        match self {
            Backend::Kv(b) => b.presign_put(key, sha256, expires_secs).await,
            Backend::S3(b) => b.presign_put(key, sha256, expires_secs).await,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self {
            Backend::Kv(b) => b.head(key).await,
            Backend::S3(b) => b.head(key).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Backend::Kv(b) => b.delete(key).await,
            Backend::S3(b) => b.delete(key).await,
        }
    }

    async fn health(&self) -> BackendHealth {
        match self {
            Backend::Kv(b) => b.health().await,
            Backend::S3(b) => b.health().await,
        }
    }

    async fn begin_parts(&self, key: &str, plan: &PartPlan) -> Result<String, StorageError> {
        match self {
            Backend::Kv(b) => b.begin_parts(key, plan).await,
            Backend::S3(b) => b.begin_parts(key, plan).await,
        }
    }

    async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        number: u32,
        body: &mut impl ByteStream,
    ) -> Result<String, StorageError> {
        match self {
            Backend::Kv(b) => b.put_part(key, upload_id, plan, number, body).await,
            Backend::S3(b) => b.put_part(key, upload_id, plan, number, body).await,
        }
    }

    async fn assemble_parts(
        &self,
        key: &str,
        upload_id: &str,
        plan: &PartPlan,
        parts: &[SessionPart],
        sha256: &str,
    ) -> Result<(), StorageError> {
        match self {
            Backend::Kv(b) => b.assemble_parts(key, upload_id, plan, parts, sha256).await,
            Backend::S3(b) => b.assemble_parts(key, upload_id, plan, parts, sha256).await,
        }
    }
}

/// The backends this deployment configured.
pub struct Backends {
    kv: Backend,
    s3: Option<Backend>,
    default: BackendKind,
}

impl Backends {
    /// `kv` always; `s3` when `s3_endpoint` and `s3_bucket` are set. 500 when
    /// `default_backend` names an unconfigured backend or the S3 variables are invalid.
    pub fn from_config(config: &Config) -> Result<Backends, ApiError> {
        let s3 = S3Config::from_lookup(config.lookup()).map_err(|e| {
            log_error("configuration", &e);
            ApiError::internal("the deployment's S3 variables are invalid")
        })?;
        let backends = Backends {
            kv: Backend::Kv(KvStore::new()),
            s3: s3.map(|c| Backend::S3(Box::new(S3Store::new(c)))),
            default: config.default_backend,
        };
        if backends.get(config.default_backend.id()).is_none() {
            log_error(
                "configuration",
                "default_backend is s3 but S3 is not configured",
            );
            return Err(ApiError::internal(
                "the deployment's default backend is not configured",
            ));
        }
        Ok(backends)
    }

    /// Where new uploads go.
    pub fn default_backend(&self) -> &Backend {
        self.get(self.default.id()).unwrap_or(&self.kv)
    }

    pub fn default_id(&self) -> &'static str {
        self.default.id()
    }

    /// The backend a stored location names (`None`: not configured here).
    pub fn get(&self, backend_id: &str) -> Option<&Backend> {
        match backend_id {
            kv::BACKEND_ID => Some(&self.kv),
            s3::BACKEND_ID => self.s3.as_ref(),
            _ => None,
        }
    }

    /// Every configured backend, `kv` first.
    pub fn all(&self) -> impl Iterator<Item = &Backend> {
        std::iter::once(&self.kv).chain(self.s3.as_ref())
    }
}
