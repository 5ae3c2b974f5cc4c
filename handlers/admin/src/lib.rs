//! The `admin` component: `/admin/sweeps` and `/admin/scrub`.
//!
//! Thin on purpose: the handler lives in `artifact_store_handlers::api::admin`, so every
//! component shares one tested implementation and this crate only binds it to Spin.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    artifact_store_handlers::api::admin::handle(req, out).await
}
