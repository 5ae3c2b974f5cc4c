//! The real services the tests talk to: PostgreSQL (already installed on these machines,
//! started if down) and an S3-compatible server started by the scripts in `../shared/s3/`.

use crate::S3Server;
use crate::build::{repo_root, run, step};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// `S3_*` variables printed by a start script, and whether this run started the server.
pub struct S3Env {
    pub vars: Vec<(String, String)>,
    stop_script: PathBuf,
    started_here: bool,
}

impl S3Env {
    pub fn stop_if_started(self) {
        if self.started_here {
            step(&format!(
                "stopping the S3 server ({})",
                self.stop_script.display()
            ));
            let _ = Command::new("bash").arg(&self.stop_script).status();
        }
    }
}

fn shared_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("ARTIFACT_STORE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    if !dir.join("s3").is_dir() {
        bail!(
            "{}/s3 not found: the S3 start scripts live in ../shared beside the repo \
             (or set ARTIFACT_STORE_SHARED)",
            dir.display()
        );
    }
    Ok(dir)
}

/// Starts the chosen S3 server (idempotent scripts) and reads its `S3_*` lines.
pub fn start_s3(server: S3Server) -> Result<Option<S3Env>> {
    // `data` marks the command lines of daemons started with the scripts' default data dir.
    let (start, stop, probe, data) = match server {
        S3Server::None => return Ok(None),
        S3Server::Ceph => (
            "start-ceph.sh",
            "stop-ceph.sh",
            "radosgw",
            "/tmp/s3-ceph/ceph.conf",
        ),
        S3Server::Garage => (
            "start-garage.sh",
            "stop-garage.sh",
            "garage",
            "/tmp/s3-garage",
        ),
    };
    let dir = shared_dir()?.join("s3");
    let already_up = Command::new("pgrep")
        .args(["-x", probe])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    step(&format!("starting the S3 server ({start})"));
    let run_start = |fresh: bool| {
        let mut cmd = Command::new("bash");
        cmd.arg(dir.join(start))
            .stderr(std::process::Stdio::inherit());
        if fresh {
            cmd.env("CEPH_FRESH", "1").env("GARAGE_FRESH", "1");
        }
        cmd.output().with_context(|| format!("running {start}"))
    };
    // CI starts from nothing: a data dir kept from earlier runs on this machine may be
    // unable to restart, or full (a full Ceph OSD blocks every write, and the tests hang).
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci {
        step(&format!("CI: wiping the throwaway data of {start} first"));
        let _ = Command::new("bash")
            .arg(dir.join(stop))
            .arg("--wipe")
            .status();
        kill_strays(data);
    }
    let mut out = run_start(ci)?;
    if !out.status.success() {
        // The data dir is throwaway test state; a run killed mid-write (or a machine that
        // was reset under it) can leave it unable to restart. Start over from nothing once.
        step(&format!(
            "{start} failed ({}); wiping its throwaway data and starting fresh",
            out.status
        ));
        let _ = Command::new("bash")
            .arg(dir.join(stop))
            .arg("--wipe")
            .status();
        kill_strays(data);
        out = run_start(true)?;
    }
    if !out.status.success() {
        bail!("{start} failed ({})", out.status);
    }
    let vars = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    if !vars.iter().any(|(k, _)| k == "S3_ENDPOINT") {
        bail!("{start} printed no S3_ENDPOINT");
    }
    Ok(Some(S3Env {
        vars,
        stop_script: dir.join(stop),
        // Restarted from nothing under CI: ours to stop, whoever ran it before.
        started_here: ci || !already_up,
    }))
}

/// Daemons of a test server whose PID files were lost (their stop script cannot see them)
/// still hold its ports; only processes whose command line names `data` are killed.
fn kill_strays(data: &str) {
    let _ = Command::new("pkill").args(["-9", "-f", data]).status();
    std::thread::sleep(std::time::Duration::from_millis(500));
}

/// PostgreSQL runs on these machines; start the cluster if it is down.
pub fn ensure_postgres() -> Result<()> {
    if pg_ready() {
        return Ok(());
    }
    step("starting PostgreSQL");
    let version = std::fs::read_dir("/etc/postgresql")
        .context("PostgreSQL is not installed (/etc/postgresql missing)")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .context("no PostgreSQL cluster in /etc/postgresql")?;
    run(Command::new("pg_ctlcluster").args([
        "--skip-systemctl-redirect",
        &version,
        "main",
        "start",
    ]))?;
    for _ in 0..50 {
        if pg_ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    bail!("PostgreSQL did not become ready on 127.0.0.1:5432")
}

fn pg_ready() -> bool {
    Command::new("pg_isready")
        .args(["-h", "127.0.0.1", "-p", "5432", "-q"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The real Spin CLI (and its trigger-cron plugin) from `../shared/spin/`, installed by its
/// `install.sh`; `None` when this machine has no such folder.
pub fn install_spin() -> Result<Option<PathBuf>> {
    let script = match shared_dir() {
        Ok(dir) => dir.join("spin/install.sh"),
        Err(_) => return Ok(None),
    };
    if !script.is_file() {
        return Ok(None);
    }
    step("installing the real Spin CLI (../shared/spin/install.sh)");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let bin = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("SPIN_BIN="))
        .map(|b| PathBuf::from(b.trim()))
        .context("install.sh printed no SPIN_BIN")?;
    Ok(Some(bin))
}

/// The pinned schemathesis (the API fuzzer) in a virtualenv under `target/`, installed from
/// PyPI on first use; its executable.
pub fn install_schemathesis() -> Result<PathBuf> {
    const VERSION: &str = "4.32.5";
    let venv = repo_root().join("target/schemathesis");
    let bin = venv.join("bin/schemathesis");
    let stamp = venv.join(format!("installed-{VERSION}"));
    if bin.is_file() && stamp.is_file() {
        return Ok(bin);
    }
    step(&format!(
        "installing schemathesis {VERSION} (the API fuzzer) into target/schemathesis"
    ));
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={VERSION}"),
    ]))?;
    std::fs::write(&stamp, "")?;
    Ok(bin)
}
