//! The registry API, black box: one suite of scenarios run on every deployment shape
//! (SQLite or PostgreSQL metadata, kv or S3 bytes). Each scenario starts its own app.

mod scenarios;

use artifact_store_tests::{Bytes, Config, Metadata};

/// Runs a scenario on one deployment shape.
async fn run<F, Fut>(scenario: F, metadata: Metadata, bytes: Bytes)
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(e) = scenario(Config::new(metadata, bytes)).await {
        panic!("{e:#}");
    }
}

macro_rules! suite {
    ($($shape:ident => ($meta:ident, $bytes:ident)),* ; $names:tt) => {
        $( shape!($shape, $meta, $bytes, $names); )*
    };
}

/// One module of tests per deployment shape, one test per scenario.
macro_rules! shape {
    ($shape:ident, $meta:ident, $bytes:ident, [$($name:ident),* $(,)?]) => {
        mod $shape {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    run(scenarios::$name, Metadata::$meta, Bytes::$bytes).await
                }
            )*
        }
    };
}

suite!(
    sqlite_kv => (Sqlite, Kv),
    sqlite_s3 => (Sqlite, S3),
    postgres_kv => (Postgres, Kv),
    postgres_s3 => (Postgres, S3); [
    pilot_flow,
    bad_inputs_store_nothing,
    oversize_upload,
    authz_matrix,
    range_requests,
    dedupe_same_bytes,
    audit_chain_detects_tampering,
    dropped_upload_commits_nothing,
    search_and_pagination,
    retention_extensions_and_holds,
]);
