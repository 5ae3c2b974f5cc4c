//! `cargo xtask`: the project's build, run and test commands, as Rust instead of shell.
//!
//! Everything a fresh machine needs is installed from here (the wasm target, the S3
//! server through `../shared/s3/`), so the README's two commands are the whole set-up.

mod bench;
mod build;
mod cli_bench;
mod load;
mod services;
mod token;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(about = "artifact-store developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum S3Server {
    /// Ceph RGW, the production target (default).
    Ceph,
    /// Garage (needs `cargo install garage`, or GARAGE_INSTALL=1).
    Garage,
    /// No S3 server: S3 tests are skipped with a printed reason.
    None,
}

#[derive(Subcommand)]
enum Command {
    /// Build the wasm components (release, wasm32-wasip2) and the `harness` binary.
    Build,
    /// Build, then serve the app locally on the embedded defaults (SQLite + kv blobs).
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// Forget the local operator token and print a new one.
        #[arg(long)]
        new_token: bool,
        /// Extra `name=value` variables passed to the host.
        #[arg(long = "variable")]
        variables: Vec<String>,
        /// Serve with the real Spin CLI from `../shared/spin/` instead of the harness (same
        /// manifest, runtime config and state).
        #[arg(long)]
        spin: bool,
    },
    /// Everything CI runs: unit, property, harness and black-box tests on real services.
    Test {
        /// The S3-compatible server the S3 tests run against.
        #[arg(long, value_enum, default_value = "ceph")]
        s3: S3Server,
        /// Extra arguments for `cargo test` (e.g. a test name filter), after `--`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Request rate and upload/download throughput through the app (kv, s3) under the
    /// harness and under real Spin, next to direct curl to Ceph.
    Bench {
        /// Size of the file transferred.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Rounds; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Use the components and harness already built.
        #[arg(long)]
        no_build: bool,
        /// A directory with `spin.toml` and a built `target/` to bench instead of this repo.
        #[arg(long)]
        app_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Build => build::build_all(),
        Command::Up {
            listen,
            new_token,
            variables,
            spin,
        } => build::up(&listen, new_token, &variables, spin),
        Command::Test { s3, cargo_args } => build::test(s3, &cargo_args),
        Command::Bench {
            size_mib,
            runs,
            no_build,
            app_dir,
        } => bench::bench(size_mib, runs, !no_build, app_dir),
    }
}
