//! `/packages/{id}/retention/...`: extensions, holds, releases (operator), and the package's
//! retention events (anyone who may read the package).

use artifact_store_core::access::Role;
use artifact_store_core::error::ErrorCode;
use artifact_store_core::ports::MetadataStore;
use artifact_store_core::{retention as rules, state, time, validate};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve, single_page};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use crate::request::{Request, str_field};

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(mut req: Request) -> Result<Reply, ApiError> {
    let segs = req.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["packages", id, "retention", "extensions"]) => extend(&mut req, id).await,
        ("POST", ["packages", id, "retention", "holds"]) => hold(&mut req, id).await,
        ("POST", ["packages", id, "retention", "holds", hold_id, "release"]) => {
            release(&mut req, id, hold_id).await
        }
        ("GET", ["packages", id, "retention", "events"]) => events(&req, id).await,
        (_, ["packages", _, "retention", "extensions" | "holds"])
        | (_, ["packages", _, "retention", "holds", _, "release"]) => {
            Err(no_route(true, &["POST"]))
        }
        (_, ["packages", _, "retention", "events"]) => Err(no_route(true, &["GET"])),
        _ => Err(no_route(false, &[])),
    }
}

/// Opens the context and the package an operator changes (404 before 403).
async fn operator_package(
    req: &Request,
    id: &str,
) -> Result<(Ctx, artifact_store_core::model::Package), ApiError> {
    let ctx = Ctx::open(req).await?;
    let package = ctx.readable_package(id).await?;
    auth::require_role(&ctx.principal, Role::Operator)?;
    state::check_retention_change(package.status)?;
    Ok((ctx, package))
}

fn reason(body: &serde_json::Map<String, serde_json::Value>) -> Result<String, ApiError> {
    let r = str_field(body, "reason", ErrorCode::InvalidReason)?;
    validate::reason(r)?;
    Ok(r.to_string())
}

async fn extend(req: &mut Request, id: &str) -> Result<Reply, ApiError> {
    let (ctx, package) = operator_package(req, id).await?;
    let body = req.json_object().await?;
    let new_expires_at = time::parse(str_field(
        &body,
        "new_expires_at",
        ErrorCode::InvalidExtension,
    )?)
    .map_err(|e| ApiError::new(ErrorCode::InvalidExtension, e.detail))?;
    let reason = reason(&body)?;
    rules::check_extension(package.expires_at, new_expires_at, package.retention_class)?;
    let event = ctx
        .meta
        .extend_retention(
            id,
            new_expires_at,
            &reason,
            &ctx.principal.name,
            time::now(),
        )
        .await?;
    Ok(Reply::json(201, &event))
}

async fn hold(req: &mut Request, id: &str) -> Result<Reply, ApiError> {
    let (ctx, _) = operator_package(req, id).await?;
    let body = req.json_object().await?;
    let reason = reason(&body)?;
    let hold = ctx
        .meta
        .apply_hold(id, &reason, &ctx.principal.name, time::now())
        .await?;
    Ok(Reply::json(201, &hold))
}

async fn release(req: &mut Request, id: &str, hold_id: &str) -> Result<Reply, ApiError> {
    let (ctx, _) = operator_package(req, id).await?;
    let body = req.json_object().await?;
    let reason = reason(&body)?;
    let hold = ctx
        .meta
        .release_hold(id, hold_id, &reason, &ctx.principal.name, time::now())
        .await?;
    Ok(Reply::json(200, &hold))
}

async fn events(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    ctx.readable_package(id).await?;
    let events = ctx.meta.list_retention_events(id).await?;
    Ok(Reply::json(200, &single_page(events)))
}
