//! artifact-store's domain, free of any runtime.
//!
//! Everything here is pure Rust that compiles for the host and for wasm32-wasip2: the
//! model, the rules (validation, retention, package states), the manifest, the audit
//! chain, content addressing and the ports that adapters implement. The cost of that
//! purity is a little plumbing in `handlers` (adapters turn Spin and SQL types into
//! these); the gain is that every rule is unit- and property-tested natively.

pub mod error;
pub mod model;
pub mod ports;

pub mod access;
pub mod audit;
pub mod canonical;
pub mod content;
pub mod cursor;
pub mod manifest;
pub mod migrate;
pub mod retention;
pub mod session;
pub mod state;
pub mod time;
pub mod validate;
