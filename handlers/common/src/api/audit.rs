//! `GET /audit` (filtered, paged) and `GET /audit/verify` (the whole chain), operator only.
//!
//! Decision: verification pages through the chain in `seq` order (`VERIFY_PAGE` events at a
//! time) into core's `ChainVerifier`, so memory stays bounded however long the chain is.

use artifact_store_core::access::Role;
use artifact_store_core::audit::ChainVerifier;
use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::AuditEventType;
use artifact_store_core::ports::{AuditFilter, MetadataStore};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use crate::request::{Request, page_request};

const VERIFY_PAGE: u32 = 500;

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(req: Request) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["audit"]) => list(&req).await,
        ("GET", ["audit", "verify"]) => verify(&req).await,
        (_, ["audit"] | ["audit", "verify"]) => Err(no_route(true, &["GET"])),
        _ => Err(no_route(false, &[])),
    }
}

async fn operator(req: &Request) -> Result<Ctx, ApiError> {
    let ctx = Ctx::open(req).await?;
    auth::require_role(&ctx.principal, Role::Operator)?;
    Ok(ctx)
}

pub fn audit_filter(query: &[(String, String)]) -> Result<AuditFilter, ApiError> {
    let mut f = AuditFilter::default();
    for (k, v) in query {
        match k.as_str() {
            "package_id" => f.package_id = Some(v.clone()),
            "event_type" => {
                f.event_type = Some(AuditEventType::parse(v).ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidQuery, format!("unknown event_type {v:?}"))
                })?)
            }
            _ => {}
        }
    }
    Ok(f)
}

async fn list(req: &Request) -> Result<Reply, ApiError> {
    let ctx = operator(req).await?;
    let filter = audit_filter(&req.query)?;
    let page = page_request(&req.query)?;
    let events = ctx.meta.list_audit(&filter, &page).await?;
    Ok(Reply::json(200, &events))
}

async fn verify(req: &Request) -> Result<Reply, ApiError> {
    let ctx = operator(req).await?;
    let mut verifier = ChainVerifier::new();
    let mut after = 0u64;
    while !verifier.is_done() {
        let page = ctx.meta.audit_range(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            verifier.feed(event);
        }
    }
    verifier.finish(ctx.meta.audit_head().await?.as_ref());
    Ok(Reply::json(200, &verifier.report()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_query;

    #[test]
    fn filters() {
        let f = audit_filter(&parse_query("package_id=p&event_type=file_uploaded")).unwrap();
        assert_eq!(f.package_id.as_deref(), Some("p"));
        assert_eq!(f.event_type, Some(AuditEventType::FileUploaded));
        assert_eq!(
            audit_filter(&parse_query("event_type=nope"))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidQuery
        );
    }
}
