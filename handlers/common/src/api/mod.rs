//! The HTTP handlers, one module per route group (= one Spin component each).
//!
//! Decision: every group has the same shape: `handle(req, out)` parses the request, routes
//! on method and path segments inside the group (405 / 404 problems for mismatches), and
//! sends either a small `Reply` or, for downloads, a streamed body. What the groups share
//! (opening the stores, the caller's principal, presenting packages) lives here.

pub mod admin;
pub mod audit;
pub mod download;
pub mod ingest;
pub mod ops;
pub mod packages;
pub mod retention;
pub mod sessions;

use artifact_store_core::access::Principal;
use artifact_store_core::model::{Package, Page};
use artifact_store_core::ports::MetadataStore;
use artifact_store_core::{retention as rules, time};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use crate::auth;
use crate::body::{self, Reply};
use crate::config::Config;
use crate::metadata::{self, Store};
use crate::problem::ApiError;
use crate::request::Request;

/// What an authenticated handler works with.
pub struct Ctx {
    pub config: Config,
    pub principal: Principal,
    pub meta: Store,
}

impl Ctx {
    /// Config, then the caller (401 before touching any store), then the metadata store.
    pub async fn open(req: &Request) -> Result<Ctx, ApiError> {
        let config = Config::load()?;
        let principal = auth::authenticate(req.header("authorization"), &config)?;
        let meta = metadata::open_from_variables().await?;
        Ok(Ctx {
            config,
            principal,
            meta,
        })
    }

    /// `deletion_eligible` is computed at response time, never stored.
    pub fn present(&self, mut p: Package) -> Package {
        p.deletion_eligible =
            rules::package_deletion_eligible(&p, time::now(), self.config.open_package_ttl_seconds);
        p
    }

    /// The package if it exists and the caller may read it; 404 otherwise.
    pub async fn readable_package(&self, id: &str) -> Result<Package, ApiError> {
        let p = self
            .meta
            .get_package(id)
            .await?
            .ok_or_else(|| ApiError::not_found("package"))?;
        auth::require_read(&self.principal, &p.producer)?;
        Ok(p)
    }
}

/// Runs a group's router and sends its answer.
pub(crate) async fn serve<F>(req: IncomingRequest, out: ResponseOutparam, route: F)
where
    F: AsyncFnOnce(Request) -> Result<Reply, ApiError>,
{
    let result = match Request::new(req) {
        Ok(r) => route(r).await,
        Err(e) => Err(e),
    };
    body::send(out, result);
}

/// A list that the contract pages but that is small by nature (one page, no cursor).
pub(crate) fn single_page<T>(items: Vec<T>) -> Page<T> {
    Page {
        items,
        next_cursor: None,
    }
}

/// 405 when the path is one of the group's but the method is not, 404 otherwise.
pub(crate) fn no_route(known_path: bool, allow: &[&str]) -> ApiError {
    if known_path {
        ApiError::method_not_allowed(allow)
    } else {
        ApiError::not_found("route")
    }
}
