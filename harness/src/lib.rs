//! A wasmtime 48 host that runs a Spin `spin.toml` application locally, like `spin up`.
//!
//! Decision: the crate mirrors Spin's factor layout, one module per host capability
//! (`sqlite`, `key_value`, `variables`, `postgres`, `outbound_http`, `cron`) plus `manifest`,
//! `routing`, `server` and `engine`; `app` ties them together. Components target WASI 0.2 and
//! spin-sdk 5.2's imports; each request or cron event gets a fresh instance.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let app = harness::App::load("spin.toml", harness::AppOptions::default())?;
//! let running = app.serve("127.0.0.1:0").await?;
//! println!("{}", running.base_url());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
pub mod bindings;
pub mod cron;
pub mod engine;
pub mod key_value;
pub mod limits;
pub mod manifest;
pub mod outbound_http;
pub mod postgres;
pub mod routing;
pub mod runtime_config;
pub mod server;
pub mod sqlite;
pub mod state;
mod stdio;
pub mod variables;

pub use app::{App, AppOptions};
pub use limits::Limits;
pub use server::RunningApp;

/// Parses a `name=value` `--variable` flag.
pub fn parse_variable_flag(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--variable `{s}`: expected name=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}
