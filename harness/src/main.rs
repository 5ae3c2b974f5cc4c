//! `harness` CLI: `harness up` (serve like `spin up`) and `harness cron <component>`.
//!
//! Decision: flags mirror `spin up` (`--from`, `--listen`, `--state-dir`, `--variable`,
//! `--runtime-config-file`) so scripts work against either; all behaviour lives in the
//! library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use harness::{App, AppOptions, Limits, parse_variable_flag};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "harness", about = "Run a Spin spin.toml app on wasmtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Manifest path.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    from: PathBuf,
    /// State directory (default: `.spin` next to the manifest).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Variable override `name=value` (repeatable; wins over SPIN_VARIABLE_* and defaults).
    #[arg(long = "variable", value_parser = parse_variable_flag)]
    variables: Vec<(String, String)>,
    /// Compiled-component cache (default: `<state dir>/cache`). Tests share one across
    /// many state dirs so each start skips compilation.
    #[arg(long, env = "HARNESS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Spin runtime config file (key-value stores, SQLite databases, variables providers),
    /// in Spin's format.
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP triggers and run the cron schedules.
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        #[command(flatten)]
        common: Common,
    },
    /// Invoke a cron component's handle-cron-event once, now.
    Cron {
        component: String,
        #[command(flatten)]
        common: Common,
    },
}

fn options(c: &Common) -> AppOptions {
    AppOptions {
        state_dir: c.state_dir.clone(),
        variables: c.variables.clone(),
        env: None,
        cache_dir: c.cache_dir.clone(),
        runtime_config: c.runtime_config_file.clone(),
        limits: Limits::default(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() {
    // One clear line per failure (the anyhow chain), no backtrace even under RUST_BACKTRACE.
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up { listen, common } => {
            let app = App::load(&common.from, options(&common))?;
            let running = app.serve(&listen).await?;
            let base = running.base_url();
            println!("Serving {} on {base}", app.name());
            println!("Available Routes:");
            for (route, component) in app.routes() {
                println!("  {component}: {base}{route}");
            }
            for (component, expr) in app.cron_triggers() {
                println!("  {component}: cron \"{expr}\"");
            }
            shutdown_signal().await;
            println!("Shutting down...");
            running.shutdown().await;
        }
        Command::Cron { component, common } => {
            let app = App::load(&common.from, options(&common))?;
            app.fire_cron(&component).await?;
            println!("cron {component}: ok");
        }
    }
    Ok(())
}
