//! The `sweeper` component: Spin's cron trigger runs the expiry and orphan sweep.
//!
//! Decision: the `fermyon:spin-cron@2.0.0` export is generated here with wit-bindgen from
//! our own copy of the WIT (`wit/spin-cron.wit`), next to spin-sdk's imports in the same
//! component; the upstream `spin-cron-sdk` fails to link on wasm32-wasip2. The export is
//! synchronous, so the async sweep is driven by spin-sdk's executor. The sweep itself is
//! `artifact_store_handlers::sweep::run_sweep`, the same code `POST /admin/sweeps` runs.

wit_bindgen::generate!({
    world: "spin-cron",
    path: "wit",
});

use artifact_store_core::time;
use artifact_store_handlers::config::Config;
use artifact_store_handlers::metadata;
use artifact_store_handlers::storage::Backends;
use artifact_store_handlers::sweep::{SweepConfig, run_sweep};

/// The audit actor of scheduled sweeps.
const ACTOR: &str = "sweeper";

struct Sweeper;

impl Guest for Sweeper {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        // The trigger's timestamp is when the schedule fired; the sweep uses the clock
        // (a delayed run must still see what expired meanwhile).
        let _ = metadata.timestamp;
        spin_sdk::http::run(sweep()).map_err(Error::Other)
    }
}

async fn sweep() -> Result<(), String> {
    let config = Config::load().map_err(|e| format!("configuration: {}", e.problem.detail))?;
    let backends =
        Backends::from_config(&config).map_err(|e| format!("backends: {}", e.problem.detail))?;
    let meta = metadata::open_from_variables()
        .await
        .map_err(|e| format!("metadata store: {e}"))?;
    let cfg = SweepConfig::from_config(&config);
    run_sweep(&meta, &backends, time::now(), &cfg, ACTOR)
        .await
        .map(|_| ())
        .map_err(|e| format!("sweep: {e}"))
}

export!(Sweeper);
