//! The `s3` backend: objects in an S3-compatible bucket (AWS S3, Ceph RGW, Garage).
//!
//! Decision: the module is split along what can be tested where. `config`, `request`
//! (SigV4 signing with `aws-sigv4`), `error` and `xml` are pure and run natively against a
//! real RGW; `client` holds the `ObjectStore` logic over a `Transport` seam; `spin_http` is
//! the only part that knows Spin. Only this module knows SigV4.

pub mod client;
pub mod config;
pub mod error;
pub mod request;
pub mod spin_http;
pub mod transport;
mod xml;

pub use client::{BACKEND_ID, MAX_SINGLE_PUT_BYTES, S3Store};
pub use config::{S3Config, Sse};
pub use request::S3Requests;
pub use spin_http::SpinHttp;
pub use transport::Transport;
