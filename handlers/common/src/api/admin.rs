//! `POST /admin/sweeps`: run an expiry sweep now (operator), the same sweep the cron
//! component runs, answering its counts `{examined, deleted, held, failed}`.

use artifact_store_core::access::Role;
use artifact_store_core::time;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use crate::request::Request;
use crate::storage::Backends;
use crate::sweep::{SweepConfig, run_sweep};

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(req: Request) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["admin", "sweeps"]) => sweep(&req).await,
        (_, ["admin", "sweeps"]) => Err(no_route(true, &["POST"])),
        _ => Err(no_route(false, &[])),
    }
}

async fn sweep(req: &Request) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    auth::require_role(&ctx.principal, Role::Operator)?;
    let backends = Backends::from_config(&ctx.config)?;
    let report = run_sweep(
        &ctx.meta,
        &backends,
        time::now(),
        &SweepConfig::from_config(&ctx.config),
        &ctx.principal.name,
    )
    .await?;
    Ok(Reply::json(200, &report))
}
