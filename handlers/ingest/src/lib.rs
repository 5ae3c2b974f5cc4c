//! The `ingest` component: `POST /packages/{id}/files`, `PUT /packages/{id}/files/{relative_path}`, `POST /packages/{id}/finalize` (streaming request bodies).
//!
//! Thin on purpose: the handler lives in `artifact_store_handlers::api::ingest`, so every
//! component shares one tested implementation and this crate only binds it to Spin.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    artifact_store_handlers::api::ingest::handle(req, out).await
}
