//! `POST /packages`, `GET /packages`, `GET /packages/{id}`, `GET /packages/{id}/manifest`.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{PackageStatus, RetentionClass};
use artifact_store_core::ports::{MetadataStore, NewPackage, PackageFilter};
use artifact_store_core::{manifest, state, time, validate};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

use super::{Ctx, no_route, serve};
use crate::auth;
use crate::body::Reply;
use crate::problem::ApiError;
use crate::request::{Request, page_request, str_field};

pub async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(req, out, route).await
}

async fn route(mut req: Request) -> Result<Reply, ApiError> {
    let segs = req.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["packages"]) => create(&mut req).await,
        ("GET", ["packages"]) => list(&req).await,
        ("GET", ["packages", id]) => get(&req, id).await,
        ("GET", ["packages", id, "manifest"]) => get_manifest(&req, id).await,
        (_, ["packages"]) => Err(no_route(true, &["GET", "POST"])),
        (_, ["packages", _]) | (_, ["packages", _, "manifest"]) => Err(no_route(true, &["GET"])),
        _ => Err(no_route(false, &[])),
    }
}

async fn create(req: &mut Request) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let body = req.json_object().await?;
    let name = str_field(&body, "name", ErrorCode::InvalidName)?;
    validate::package_name(name)?;
    let producer = str_field(&body, "producer", ErrorCode::InvalidProducer)?;
    validate::producer(producer)?;
    let subject = str_field(&body, "subject", ErrorCode::InvalidSubject)?;
    validate::subject(subject)?;
    let class = validate::retention_class(str_field(
        &body,
        "retention_class",
        ErrorCode::InvalidRetentionClass,
    )?)?;
    let metadata = validate::metadata(body.get("metadata"))?;
    if !ctx.principal.can_create_in(producer) {
        return Err(auth::forbidden(format!(
            "principal {} may not create packages for producer {producer}",
            ctx.principal.name
        )));
    }
    let now = time::now();
    let package = ctx
        .meta
        .create_package(NewPackage {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            producer: producer.to_string(),
            subject: subject.to_string(),
            retention_class: class,
            metadata,
            created_at: now,
            expires_at: ctx.config.retention.expires_at(class, now),
            actor: ctx.principal.name.clone(),
        })
        .await?;
    let location = format!("/packages/{}", package.id);
    Ok(Reply::json(201, &ctx.present(package)).with_header("location", location))
}

fn invalid_query(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, detail)
}

/// The list filters of the contract from the query string.
pub fn package_filter(query: &[(String, String)]) -> Result<PackageFilter, ApiError> {
    let mut f = PackageFilter::default();
    for (k, v) in query {
        match k.as_str() {
            "producer" => f.producer = Some(v.clone()),
            "subject" => f.subject = Some(v.clone()),
            "name" => f.name = Some(v.clone()),
            "status" => {
                f.status = Some(
                    PackageStatus::parse(v)
                        .ok_or_else(|| invalid_query(format!("unknown status {v:?}")))?,
                )
            }
            "retention_class" => {
                f.retention_class = Some(
                    RetentionClass::parse(v)
                        .ok_or_else(|| invalid_query(format!("unknown retention_class {v:?}")))?,
                )
            }
            "created_after" => f.created_after = Some(time::parse(v)?),
            "created_before" => f.created_before = Some(time::parse(v)?),
            _ => {
                if let Some(key) = k.strip_prefix("metadata.") {
                    if key.is_empty() {
                        return Err(invalid_query("`metadata.` needs a key".into()));
                    }
                    f.metadata.push((key.to_string(), v.clone()));
                }
            }
        }
    }
    Ok(f)
}

async fn list(req: &Request) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let mut filter = package_filter(&req.query)?;
    let page = page_request(&req.query)?;
    filter.producers = ctx.principal.readable_producers();
    if filter.producers.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Reply::json(200, &super::single_page(Vec::<()>::new())));
    }
    let mut result = ctx.meta.list_packages(&filter, &page).await?;
    result.items = result.items.into_iter().map(|p| ctx.present(p)).collect();
    Ok(Reply::json(200, &result))
}

async fn get(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let package = ctx.readable_package(id).await?;
    Ok(Reply::json(200, &ctx.present(package)))
}

async fn get_manifest(req: &Request, id: &str) -> Result<Reply, ApiError> {
    let ctx = Ctx::open(req).await?;
    let package = ctx.readable_package(id).await?;
    state::check_manifest(package.status)?;
    let files = ctx.meta.list_files(id).await?;
    let events = ctx.meta.list_retention_events(id).await?;
    let m = manifest::build(&package, &files, &events);
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("etag".into(), format!("\"{}\"", m.sha256)),
        ],
        body: m.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_query;

    #[test]
    fn filters_from_query() {
        let f = package_filter(&parse_query(
            "producer=guide-board&status=finalized&retention_class=raw-evidence&metadata.run_id=42&created_after=2026-01-01T00:00:00Z&limit=5",
        ))
        .unwrap();
        assert_eq!(f.producer.as_deref(), Some("guide-board"));
        assert_eq!(f.status, Some(PackageStatus::Finalized));
        assert_eq!(f.retention_class, Some(RetentionClass::RawEvidence));
        assert_eq!(f.metadata, vec![("run_id".to_string(), "42".to_string())]);
        assert!(f.created_after.is_some());
        for bad in [
            "status=gone",
            "retention_class=x",
            "created_before=yesterday",
            "metadata.=1",
        ] {
            assert_eq!(
                package_filter(&parse_query(bad)).unwrap_err().code(),
                ErrorCode::InvalidQuery,
                "{bad}"
            );
        }
    }
}
