//! `harness` CLI: `harness up` (serve like `spin up`) and `harness cron <component>`.
//!
//! Decision: flags mirror `spin up` (`--from`, `--listen`, `--state-dir`, `--variable`,
//! `--runtime-config-file`) so scripts work against either; all behaviour lives in the
//! library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use harness::{App, AppOptions, Limits, parse_variable_flag};
use std::path::PathBuf;
use std::time::Duration;

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
    #[command(flatten)]
    limits: LimitFlags,
}

/// `crate::limits::Limits`, each bound settable by flag or environment variable.
#[derive(clap::Args)]
struct LimitFlags {
    /// Seconds a client may take to send a request's head.
    #[arg(long, env = "HARNESS_HEADER_READ_SECONDS", default_value_t = Limits::default().header_read.as_secs())]
    header_read_seconds: u64,
    /// Seconds a request body may send nothing before it fails.
    #[arg(long, env = "HARNESS_BODY_IDLE_SECONDS", default_value_t = Limits::default().body_idle.as_secs())]
    body_idle_seconds: u64,
    /// Seconds a request or cron event may run, guest code included (`--request-timeout`
    /// too, as serverless hosts call it).
    #[arg(long, visible_alias = "request-timeout", env = "HARNESS_REQUEST_DEADLINE_SECONDS", default_value_t = Limits::default().request_deadline.as_secs())]
    request_deadline_seconds: u64,
    /// Largest request body taken, in bytes (0: no limit), like a serverless host's cap.
    #[arg(long, env = "HARNESS_MAX_REQUEST_BYTES", default_value_t = 0)]
    max_request_bytes: u64,
    /// Seconds a request waits for a PostgreSQL connection when all are busy.
    #[arg(long, env = "HARNESS_PG_WAIT_SECONDS", default_value_t = Limits::default().pg_wait.as_secs())]
    pg_wait_seconds: u64,
    /// PostgreSQL connections open at once, per address.
    #[arg(long, env = "HARNESS_PG_MAX_OPEN", default_value_t = Limits::default().pg_max_open)]
    pg_max_open: usize,
    /// Component instances running at once; one more answers 503.
    #[arg(long, env = "HARNESS_MAX_INSTANCES", default_value_t = Limits::default().max_instances)]
    max_instances: u32,
}

impl LimitFlags {
    fn limits(&self) -> Limits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Limits {
            header_read: secs(self.header_read_seconds),
            body_idle: secs(self.body_idle_seconds),
            request_deadline: secs(self.request_deadline_seconds),
            pg_wait: secs(self.pg_wait_seconds),
            pg_max_open: self.pg_max_open.max(1),
            max_instances: self.max_instances.max(1),
            max_request_bytes: (self.max_request_bytes > 0).then_some(self.max_request_bytes),
        }
    }
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
        limits: c.limits.limits(),
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
