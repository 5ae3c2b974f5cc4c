//! The binary's contract without a registry: exit codes for usage errors, the documented
//! codes in `--help`, and a failure (not a hang) when the registry cannot be reached. (Its
//! behaviour against a real registry is `tests/tests/cli.rs`.) Being an integration test,
//! this also makes `cargo test -p artifact-store-cli` build the binary that suite runs.

use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_artifact-store"))
        .args(args)
        .env_remove("ARTIFACT_STORE_URL")
        .env_remove("ARTIFACT_STORE_TOKEN")
        .output()
        .expect("running artifact-store")
}

#[test]
fn help_documents_the_exit_codes() {
    let out = cli(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  success",
        "1  failure",
        "2  usage",
        "3  verification mismatch",
        "ARTIFACT_STORE_TOKEN",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    // Unknown flag, missing package fields, no registry URL, a value the registry refuses.
    for args in [
        &["push", "--bogus"][..],
        &["push", "."],
        &["ls"],
        &[
            "--url",
            "http://127.0.0.1:9",
            "push",
            ".",
            "--name",
            "bad name",
            "--producer",
            "p",
            "--subject",
            "s",
            "--class",
            "transient",
        ],
        &[
            "--url",
            "http://127.0.0.1:9",
            "push",
            ".",
            "--name",
            "n",
            "--producer",
            "p",
            "--subject",
            "s",
            "--class",
            "forever",
        ],
    ] {
        let out = cli(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unreachable_registry_fails_with_1_after_its_retries() {
    let started = std::time::Instant::now();
    let out = cli(&["--url", "http://127.0.0.1:9", "--retries", "1", "show", "p"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retrying (1/1)"), "{err}");
    assert!(started.elapsed().as_secs() < 10);
}
