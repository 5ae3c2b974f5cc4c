//! `GET /audit` (filtered, paged), `GET /audit/verify` (the whole chain, optionally held
//! to a checkpoint) and `GET /audit/checkpoint` (the chain's head, signed), operator only.
//!
//! Decision: a checkpoint is the head's `seq` and `hash` signed with Ed25519 (the seed is
//! the secret variable `audit_signing_key`). An operator keeps it outside the registry;
//! `GET /audit/verify?checkpoint_seq=..&checkpoint_hash=..` later proves the log up to it
//! was not rewritten, even by someone able to recompute every hash in the database.
//!
//! Decision: verification pages through the chain in `seq` order (`VERIFY_PAGE` events at a
//! time) into core's `ChainVerifier`, so memory stays bounded however long the chain is.

use artifact_store_core::access::Role;
use artifact_store_core::audit::{self, ChainHead, ChainVerifier};
use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::AuditEventType;
use artifact_store_core::model::Timestamp;
use artifact_store_core::ports::{AuditFilter, MetadataStore};
use artifact_store_core::{time, validate};
use ed25519_dalek::{Signer, SigningKey};
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
        ("GET", ["audit", "checkpoint"]) => checkpoint(&req).await,
        (_, ["audit"] | ["audit", "verify"] | ["audit", "checkpoint"]) => {
            Err(no_route(true, &["GET"]))
        }
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

/// `?checkpoint_seq=N&checkpoint_hash=H` (both or neither).
fn checkpoint_query(req: &Request) -> Result<Option<ChainHead>, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidQuery,
            "checkpoint_seq (a whole number from 1) and checkpoint_hash (64 hex digits) go together",
        )
    };
    match (
        req.query_param("checkpoint_seq"),
        req.query_param("checkpoint_hash"),
    ) {
        (None, None) => Ok(None),
        (Some(seq), Some(hash)) => {
            let seq: u64 = seq.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?;
            let hash = validate::sha256_hex(hash).map_err(|_| bad())?;
            Ok(Some(ChainHead { seq, hash }))
        }
        _ => Err(bad()),
    }
}

async fn verify(req: &Request) -> Result<Reply, ApiError> {
    let ctx = operator(req).await?;
    let mut verifier = match checkpoint_query(req)? {
        Some(c) => ChainVerifier::with_checkpoint(c),
        None => ChainVerifier::new(),
    };
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

/// What `GET /audit/checkpoint` answers: the signed message and how to check it.
#[derive(serde::Serialize)]
struct Checkpoint {
    seq: u64,
    hash: String,
    created_at: Timestamp,
    /// The exact bytes signed (`audit::checkpoint_message`).
    message: String,
    /// Ed25519, hex.
    public_key: String,
    signature: String,
}

async fn checkpoint(req: &Request) -> Result<Reply, ApiError> {
    let ctx = operator(req).await?;
    let seed = ctx.config.audit_signing_key.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "audit checkpoints are not configured (set the secret variable audit_signing_key)",
        )
    })?;
    let head = ctx.meta.audit_head().await?;
    let created_at = time::truncate(time::now());
    let message = audit::checkpoint_message(head.as_ref(), created_at);
    let key = SigningKey::from_bytes(&seed);
    let signature = key.sign(message.as_bytes());
    let (seq, hash) = audit::head_or_genesis(head.as_ref());
    Ok(Reply::json(
        200,
        &Checkpoint {
            seq,
            hash: hash.to_string(),
            created_at,
            message,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        },
    ))
}
