//! `POST /admin/sweeps`: run an expiry sweep now (operator), the same sweep the cron
//! component runs, answering its counts `{examined, deleted, held, failed}`.
//! `POST /admin/sweeps?dry_run=true` and `GET /admin/sweeps`: what a sweep would delete now
//! and why each other package it looks at is kept, changing nothing.
//! `POST /admin/scrub`: one slice of scrubbing now; `GET /admin/scrub`: its progress and
//! findings (both operator).

use artifact_store_core::access::Role;
use artifact_store_core::time;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use artifact_store_core::error::ErrorCode;

use crate::request::{Request, page_request};
use crate::scrub::{ScrubConfig, scrub_slice};
use crate::storage::Backends;
use crate::sweep::{SweepConfig, plan_sweep, run_sweep};
use artifact_store_core::ports::MetadataStore;

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(req: Request) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["admin", "sweeps"]) => sweep(&req, false).await,
        ("GET", ["admin", "sweeps"]) => sweep(&req, true).await,
        (_, ["admin", "sweeps"]) => Err(no_route(true, &["GET", "POST"])),
        ("POST", ["admin", "scrub"]) => scrub(&req, false).await,
        ("GET", ["admin", "scrub"]) => scrub(&req, true).await,
        (_, ["admin", "scrub"]) => Err(no_route(true, &["GET", "POST"])),
        _ => Err(no_route(false, &[])),
    }
}

/// Runs a sweep, or with `plan_only` (a `GET`, or `?dry_run=true`) says what one would do.
async fn sweep(req: &Request, plan_only: bool) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    auth::require_role(&ctx.principal, Role::Operator)?;
    let cfg = SweepConfig::from_config(&ctx.config);
    // `?limit=` as for every list (default 50, at most 1000): it bounds a plan's lists and
    // is checked on a real sweep too, which has no list to bound.
    let limit = page_request(&req.query)?.limit;
    if plan_only || dry_run(req)? {
        let plan = plan_sweep(&ctx.meta, time::now(), &cfg, limit).await?;
        return Ok(Reply::json(200, &plan));
    }
    let backends = Backends::from_config(&ctx.config)?;
    let report = run_sweep(&ctx.meta, &backends, time::now(), &cfg, &ctx.principal.name).await?;
    Ok(Reply::json(200, &report))
}

/// `POST /admin/scrub` runs one slice of scrubbing now (the sweep runs one too) and answers
/// its `ScrubReport`; `GET /admin/scrub` answers where scrubbing stands (`ScrubStatus`, with
/// at most `?limit=` findings).
async fn scrub(req: &Request, status_only: bool) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    auth::require_role(&ctx.principal, Role::Operator)?;
    let limit = page_request(&req.query)?.limit;
    if status_only {
        let status = ctx.meta.scrub_status(limit).await?;
        return Ok(Reply::json(200, &status));
    }
    let backends = Backends::from_config(&ctx.config)?;
    let cfg = ScrubConfig::from_config(&ctx.config);
    let report = scrub_slice(&ctx.meta, &backends, &cfg, &ctx.principal.name).await?;
    Ok(Reply::json(200, &report))
}

/// `?dry_run=true|false` (absent: false); anything else is refused rather than guessed,
/// since guessing wrong would delete.
fn dry_run(req: &Request) -> Result<bool, ApiError> {
    match req.query_param("dry_run") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "`dry_run` must be `true` or `false`",
        )),
    }
}
