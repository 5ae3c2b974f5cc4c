//! Shared by the `s3_*` tests: a real Ceph RGW (started once by `start-ceph.sh` unless
//! `S3_ENDPOINT` is set), configs for it, and a blocking `reqwest` `Transport` so the store
//! logic runs natively against the server.
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use artifact_store_core::ports::{ByteStream, StorageError};
use artifact_store_handlers::storage::s3::request::S3Request;
use artifact_store_handlers::storage::s3::{S3Config, Transport};

#[derive(Debug, Clone)]
pub struct Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
}

/// The server under test, or `None` (with the reason printed) when there is none.
pub fn server() -> Option<Server> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(find_server) {
        Ok(s) => Some(s.clone()),
        Err(why) => {
            artifact_store_tests::skip(&format!("no S3 server: {why}"));
            None
        }
    }
}

fn find_server() -> Result<Server, String> {
    if std::env::var_os("ARTIFACT_STORE_NO_S3").is_some() {
        return Err("ARTIFACT_STORE_NO_S3 is set".into());
    }
    let mut env: HashMap<String, String> = std::env::vars().collect();
    if env.get("S3_ENDPOINT").is_none_or(|e| e.is_empty()) {
        let script = start_script().ok_or("S3_ENDPOINT unset and start-ceph.sh not found")?;
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    let get = |k: &str| env.get(k).cloned().ok_or(format!("{k} missing"));
    Ok(Server {
        endpoint: get("S3_ENDPOINT")?,
        access_key: get("S3_ACCESS_KEY")?,
        secret_key: get("S3_SECRET_KEY")?,
        bucket: get("S3_BUCKET")?,
        region: env.get("S3_REGION").cloned().unwrap_or_default(),
    })
}

/// `shared/s3/start-ceph.sh` beside the repository (CI) or in the workplace.
fn start_script() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var("S3_START_SCRIPT").ok().map(PathBuf::from),
        Some(manifest.join("../../../shared/s3/start-ceph.sh")),
        Some(manifest.join("../../shared/s3/start-ceph.sh")),
        Some(PathBuf::from("/work/shared/s3/start-ceph.sh")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// A config for `server` with extra variables (`s3_*` names) layered on top.
pub fn config(server: &Server, extra: &[(&str, &str)]) -> S3Config {
    let mut vars: HashMap<String, String> = [
        ("s3_endpoint", server.endpoint.as_str()),
        ("s3_bucket", server.bucket.as_str()),
        ("s3_region", server.region.as_str()),
        ("s3_access_key_id", server.access_key.as_str()),
        ("s3_secret_access_key", server.secret_key.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    S3Config::from_lookup(|k| vars.get(k).cloned())
        .expect("valid config")
        .expect("configured")
}

/// A fresh key prefix so runs and tests never see each other's objects.
pub fn unique_prefix(test: &str) -> String {
    format!("it/{}/{test}/", uuid::Uuid::now_v7())
}

/// A reply read completely.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::blocking::Client::new)
}

fn to_reqwest(request: &S3Request) -> reqwest::blocking::RequestBuilder {
    client()
        .request(request.method().clone(), request.uri().to_string())
        .headers(request.headers().clone())
        .body(request.body().clone())
}

/// Sends a signed request exactly as built and reads the whole reply.
pub fn send(request: &S3Request) -> Reply {
    read(to_reqwest(request).send().expect("server reachable"))
}

/// A plain unsigned GET (for presigned URLs).
pub fn plain_get(url: &str) -> Reply {
    read(client().get(url).send().expect("server reachable"))
}

/// A plain unsigned PUT with `headers` (for presigned URLs).
pub fn plain_put(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Reply {
    let mut request = client().put(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    read(request.send().expect("server reachable"))
}

fn read(reply: reqwest::blocking::Response) -> Reply {
    let status = reply.status().as_u16();
    let headers = reply.headers().clone();
    let body = reply.bytes().expect("reply body").to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// Blocking `reqwest` as the store's transport (run the store under `block_on`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReqwestHttp;

pub struct ReqwestBody(reqwest::blocking::Response);

impl ByteStream for ReqwestBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self
            .0
            .read(&mut buf)
            .map_err(|e| StorageError::Unavailable {
                detail: e.to_string(),
                retry_after_secs: 1,
            })?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }
}

impl Transport for ReqwestHttp {
    type Body = ReqwestBody;
    /// The payload, whole (tests send small ones).
    type Payload = Vec<u8>;

    async fn send(&self, request: &S3Request) -> Result<http::Response<ReqwestBody>, String> {
        let reply = to_reqwest(request).send().map_err(|e| e.to_string())?;
        let mut builder = http::Response::builder().status(reply.status());
        for (name, value) in reply.headers() {
            builder = builder.header(name, value);
        }
        builder.body(ReqwestBody(reply)).map_err(|e| e.to_string())
    }

    async fn send_payload(
        &self,
        request: &S3Request,
        payload: &mut Vec<u8>,
    ) -> Result<http::Response<ReqwestBody>, StorageError> {
        // The signed Content-Length stays as built: a payload of another length is sent
        // as is, so the server sees what a cut-off client body would look like.
        let reply = to_reqwest(request)
            .body(std::mem::take(payload))
            .send()
            .map_err(|e| StorageError::Source(e.to_string()))?;
        let mut builder = http::Response::builder().status(reply.status());
        for (name, value) in reply.headers() {
            builder = builder.header(name, value);
        }
        builder
            .body(ReqwestBody(reply))
            .map_err(|e| StorageError::Backend(e.to_string()))
    }
}

/// A body source of `total` pseudo-random bytes in `chunk`-sized pieces, optionally failing
/// (like a client disconnect) once `fail_after` bytes were produced.
pub struct TestBody {
    pub total: usize,
    pub chunk: usize,
    pub sent: usize,
    pub fail_after: Option<usize>,
}

impl TestBody {
    pub fn new(total: usize, chunk: usize) -> Self {
        TestBody {
            total,
            chunk,
            sent: 0,
            fail_after: None,
        }
    }
}

/// The bytes `TestBody` produces.
pub fn pattern(total: usize) -> Vec<u8> {
    (0..total)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
        .collect()
}

impl ByteStream for TestBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(limit) = self.fail_after
            && self.sent >= limit
        {
            return Err(StorageError::Source("client went away".into()));
        }
        if self.sent >= self.total {
            return Ok(None);
        }
        let n = self.chunk.min(self.total - self.sent);
        let out: Vec<u8> = (self.sent..self.sent + n)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
            .collect();
        self.sent += n;
        Ok(Some(out))
    }
}

/// Reads a store reader to the end.
pub async fn collect(reader: &mut impl ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.expect("read") {
        out.extend_from_slice(&chunk);
    }
    out
}
