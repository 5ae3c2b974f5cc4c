//! Build, run and test: the steps behind `cargo xtask build|up|test`.

use crate::services::{self, S3Env};
use crate::{S3Server, token};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every component in `spin.toml`, built for wasm32-wasip2.
pub const COMPONENTS: [&str; 8] = [
    "ops",
    "packages",
    "ingest",
    "download",
    "retention",
    "audit",
    "admin",
    "sweeper",
];

/// The native crates whose tests `cargo xtask test` runs.
/// Testing `artifact-store-cli` (it has an integration test) also builds its binary, which
/// the black-box suite `tests/tests/cli.rs` runs.
const TESTED_CRATES: [&str; 6] = [
    "artifact-store-core",
    "artifact-store-handlers",
    "harness",
    "artifact-store-tests",
    "xtask",
    "artifact-store-cli",
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repo root")
        .to_path_buf()
}

pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `rustup target add wasm32-wasip2` when the target is missing.
fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to add the wasm32-wasip2 target")?;
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        step("installing the wasm32-wasip2 target");
        run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    }
    Ok(())
}

pub fn build_components() -> Result<()> {
    build_wasm(&COMPONENTS)
}

/// Builds `crates` for wasm32-wasip2 with the release profile (the app's, or the bench's
/// `hash-probe`).
pub fn build_wasm(crates: &[&str]) -> Result<()> {
    ensure_wasm_target()?;
    step(&format!(
        "building wasm components (release, wasm32-wasip2): {}",
        crates.join(", ")
    ));
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", "wasm32-wasip2"]);
    for c in crates {
        cmd.args(["-p", c]);
    }
    run(&mut cmd)
}

fn build_harness() -> Result<()> {
    step("building the harness");
    run(cargo().args(["build", "-p", "harness", "--bin", "harness"]))
}

pub fn build_all() -> Result<()> {
    build_components()?;
    build_harness()
}

/// The runtime config `up` passes to either host: it defines the `blobs` store (in
/// `.spin/blobs.db`) that Spin requires, so both hosts serve the same state.
pub const LOCAL_RUNTIME_CONFIG: &str = "runtime-config.local.toml";

pub fn up(listen: &str, new_token: bool, extra: &[String], spin: bool) -> Result<()> {
    let root = repo_root();
    let host = if spin {
        build_components()?;
        services::install_spin()?
            .context("../shared/spin/ is missing: the real Spin CLI comes from there")?
    } else {
        build_all()?;
        root.join("target/debug/harness")
    };
    let state_dir = root.join(".spin");
    std::fs::create_dir_all(&state_dir)?;
    let auth_tokens = token::local_operator(&state_dir, new_token)?;
    let name = if spin { "Spin" } else { "the harness" };
    step(&format!(
        "serving with {name} on http://{listen} (Ctrl-C stops)"
    ));
    let mut cmd = Command::new(host);
    cmd.current_dir(&root).args([
        "up",
        "--from",
        "spin.toml",
        "--state-dir",
        ".spin",
        "--runtime-config-file",
        LOCAL_RUNTIME_CONFIG,
        "--listen",
        listen,
        "--variable",
    ]);
    cmd.arg(format!("auth_tokens={auth_tokens}"));
    for v in extra {
        cmd.args(["--variable", v]);
    }
    run(&mut cmd)
}

pub fn test(s3: S3Server, cargo_args: &[String]) -> Result<()> {
    check_core_is_pure()?;
    // The black-box tests run the `harness` and `artifact-store` binaries as child
    // processes; `cargo test -p harness -p artifact-store-cli` builds them (with the same
    // unified features as the tests, so wasmtime is compiled once) before any test runs.
    build_components()?;
    services::ensure_postgres()?;
    let spin = services::install_spin()?;
    if spin.is_none() {
        step("no ../shared/spin/ on this machine: the parity suite (spin_*) will skip");
    }
    // Without PyPI the fuzz suite skips (and under CI a skip fails the run, with the reason).
    let fuzzer = services::install_schemathesis()
        .map_err(|e| {
            step(&format!(
                "schemathesis not installed ({e:#}): api_fuzz will skip"
            ))
        })
        .ok();
    let s3_env = services::start_s3(s3)?;
    let result = run_tests(
        s3_env.as_ref(),
        spin.as_deref(),
        fuzzer.as_deref(),
        cargo_args,
    );
    if let Some(env) = s3_env {
        env.stop_if_started();
    }
    result
}

/// `core` must not depend on Spin, wasmtime or a SQL client (ARCHITECTURE.md).
fn check_core_is_pure() -> Result<()> {
    step("checking that core depends on no runtime");
    let out = cargo()
        .args([
            "tree",
            "-p",
            "artifact-store-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let forbidden: Vec<&str> = tree
        .lines()
        .filter(|l| {
            [
                "spin-",
                "wasmtime",
                "rusqlite",
                "tokio-postgres",
                "wit-bindgen",
            ]
            .iter()
            .any(|f| l.starts_with(f))
        })
        .collect();
    if !forbidden.is_empty() {
        bail!("artifact-store-core depends on {forbidden:?}");
    }
    Ok(())
}

fn run_tests(
    s3: Option<&S3Env>,
    spin: Option<&Path>,
    fuzzer: Option<&Path>,
    cargo_args: &[String],
) -> Result<()> {
    step("running the test suite");
    let mut cmd = cargo();
    if let Some(bin) = fuzzer {
        cmd.env("SCHEMATHESIS_BIN", bin);
    }
    if let Some(bin) = spin {
        cmd.env("SPIN_BIN", bin);
    }
    // Every test binary runs even when one fails, so one run shows everything that is red.
    cmd.args(["test", "--no-fail-fast"]);
    for c in TESTED_CRATES {
        cmd.args(["-p", c]);
    }
    match s3 {
        Some(env) => {
            for (k, v) in &env.vars {
                cmd.env(k, v);
            }
        }
        None => {
            cmd.env("ARTIFACT_STORE_NO_S3", "1");
        }
    }
    if !cargo_args.is_empty() {
        cmd.arg("--").args(cargo_args);
    }
    // libtest reports a test that skipped its body as passed: skips are logged here
    // (`artifact_store_tests::skip`) and counted after the run.
    let skip_log = repo_root().join("target").join("skipped-tests.log");
    let _ = std::fs::remove_file(&skip_log);
    cmd.env("ARTIFACT_STORE_SKIP_LOG", &skip_log);
    let result = run(&mut cmd);
    let skipped = std::fs::read_to_string(&skip_log).unwrap_or_default();
    let mut skipped: Vec<&str> = skipped.lines().collect();
    skipped.sort();
    skipped.dedup();
    step(&format!("skipped: {} tests", skipped.len()));
    for line in &skipped {
        eprintln!("  {line}");
    }
    result?;
    if !skipped.is_empty() && std::env::var_os("CI").is_some() {
        bail!("under CI every service is started, so no test may skip");
    }
    Ok(())
}
