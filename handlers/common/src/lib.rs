//! Spin-side code shared by every component: adapters that implement core's ports on Spin
//! host interfaces, plus the HTTP plumbing (auth, problems, parsing) the handlers share.
//!
//! Component crates stay thin (a `#[http_component]` that calls into `api`), so moving to a
//! newer Spin ABI touches this crate only.

pub mod api;
pub mod auth;
pub mod body;
pub mod config;
pub mod metadata;
pub mod multipart;
pub mod problem;
pub mod range;
pub mod request;
pub mod scrub;
pub mod splice;
pub mod storage;
pub mod sweep;
pub mod upload;
pub mod upload_session;
pub mod verify;
