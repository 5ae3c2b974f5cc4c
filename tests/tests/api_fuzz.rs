//! The API fuzzed from its contract: schemathesis (property-based, from `openapi.yaml`)
//! sends thousands of generated requests, valid and invalid, through the real harness and
//! components, and follows the contract's links (create a package, then upload, finalize,
//! download ...). Fixed seed, so a failure replays.
//!
//! Every check runs (`tests/schemathesis.toml` says which not, and where: a check chosen on
//! the command line would override its per-operation settings) except
//! `positive_data_acceptance`: some valid-looking inputs are refused by rules a schema
//! cannot state (an opaque cursor this server did not issue, `checkpoint_seq` without
//! `checkpoint_hash`, control characters in a subject), and the contract answers those
//! 422. What must hold: no response is a server error, every
//! status is documented, and every body and header matches the schema.

use anyhow::{Context, Result, ensure};
use artifact_store_tests::{Bytes, Config, Metadata, repo_root, skip, start};
use std::process::Command;

/// Test cases the run must reach (schemathesis counts them in its summary).
const MIN_CASES: u64 = 2000;

fn schemathesis() -> Option<std::path::PathBuf> {
    std::env::var_os("SCHEMATHESIS_BIN")
        .map(Into::into)
        .or_else(|| {
            let venv = repo_root().join("target/schemathesis/bin/schemathesis");
            venv.is_file().then_some(venv)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers_and_no_server_error() {
    if let Err(e) = fuzz().await {
        panic!("{e:#}");
    }
}

async fn fuzz() -> Result<()> {
    let Some(bin) = schemathesis() else {
        skip("schemathesis is not installed (`cargo xtask test` installs it)");
        return Ok(());
    };
    let app = start!(Config::new(Metadata::Sqlite, Bytes::Kv));
    let report = app.state_dir.join("fuzz-report");
    let out = Command::new(&bin)
        .arg("--config-file")
        .arg(repo_root().join("tests/schemathesis.toml"))
        .arg("run")
        .arg(repo_root().join("openapi.yaml"))
        .args(["--url", &app.url("")])
        .args(["-H", &format!("Authorization: Bearer {}", app.tokens.all)])
        .args(["--seed", "42", "--max-examples", "120", "--workers", "1"])
        .args(["--request-timeout", "30", "--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text.lines().rev().take(120).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    ensure!(
        out.status.success(),
        "schemathesis found failures ({}):\n{tail}\n{}\nhost log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        app.log_tail()
    );
    let cases = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.split_once(" generated")
                .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        })
        .context("no `N generated` in the summary")?;
    eprintln!("schemathesis: {cases} test cases, no failure");
    ensure!(
        cases >= MIN_CASES,
        "only {cases} generated test cases (at least {MIN_CASES})\n{tail}"
    );
    Ok(())
}
