//! `GET /health` (no auth) and `GET /backends`.
//!
//! Decision: `/health` answers 200 while the metadata store answers, even when a storage
//! backend is down (then `status` is `degraded` and that backend says `unavailable`);
//! only a metadata store that cannot be opened or queried makes it 503 (with
//! `Retry-After`), because then no route can work. The 503 body keeps the health shape
//! so monitors can read which part failed.

use artifact_store_core::ports::{HealthStatus, MetadataStore, ObjectStore};
use serde::Serialize;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{no_route, serve};
use crate::auth;
use crate::body::Reply;
use crate::config::Config;
use crate::metadata;
use crate::problem::{ApiError, DEFAULT_RETRY_AFTER, log_error};
use crate::request::Request;
use crate::storage::Backends;

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(req: Request) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["health"]) => health().await,
        ("GET", ["backends"]) => backends(&req).await,
        (_, ["health"] | ["backends"]) => Err(no_route(true, &["GET"])),
        _ => Err(no_route(false, &[])),
    }
}

#[derive(Serialize)]
struct BackendStatus {
    id: String,
    kind: &'static str,
    status: HealthStatus,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    metadata: HealthStatus,
    backends: Vec<BackendStatus>,
}

async fn health() -> Result<Reply, ApiError> {
    let config = Config::load()?;
    let metadata = match metadata::open_from_variables().await {
        Ok(store) => store.health().await,
        Err(e) => Err(e),
    };
    if let Err(e) = &metadata {
        log_error("health", &e.to_string());
    }
    let backends = Backends::from_config(&config)?;
    let mut list = Vec::new();
    for b in backends.all() {
        list.push(BackendStatus {
            id: b.backend_id().to_string(),
            kind: b.kind().id(),
            status: b.health().await.status,
        });
    }
    let all_ok = list.iter().all(|b| b.status == HealthStatus::Ok);
    let (http, status, meta) = match (metadata.is_ok(), all_ok) {
        (false, _) => (503, "unavailable", HealthStatus::Unavailable),
        (true, false) => (200, "degraded", HealthStatus::Ok),
        (true, true) => (200, "ok", HealthStatus::Ok),
    };
    let reply = Reply::json(
        http,
        &Health {
            status,
            metadata: meta,
            backends: list,
        },
    )
    .with_header("cache-control", "no-store");
    Ok(if http == 503 {
        reply.with_header("retry-after", DEFAULT_RETRY_AFTER.to_string())
    } else {
        reply
    })
}

#[derive(Serialize)]
struct BackendInfo {
    id: String,
    kind: &'static str,
    default: bool,
    status: HealthStatus,
    detail: String,
}

async fn backends(req: &Request) -> Result<Reply, ApiError> {
    // Authenticated, but independent of the metadata store.
    let config = Config::load()?;
    auth::authenticate(req.header("authorization"), &config)?;
    let backends = Backends::from_config(&config)?;
    let mut list = Vec::new();
    for b in backends.all() {
        let h = b.health().await;
        list.push(BackendInfo {
            id: b.backend_id().to_string(),
            kind: b.kind().id(),
            default: b.backend_id() == backends.default_id(),
            status: h.status,
            detail: h.detail,
        });
    }
    Ok(Reply::json(200, &list))
}
