//! `cargo xtask bench`, the CLI's part: `artifact-store push` and `pull` of a run directory
//! (50 files, one of them 100 MiB) against the same uploads and downloads done by curl,
//! four at a time, on the same app, side by side in one run (issue 14's target: within
//! 1.2x of curl's time).
//!
//! curl is given the digests (computed before its clock starts); the CLI computes its own
//! within its time, as a producer would run it. Both send `x-artifact-sha256`, so both take
//! the same upload path; the CLI sends files over its session threshold as 8 MiB parts.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::build::step;

const MIB: u64 = 1024 * 1024;
const FILES: usize = 50;
const JOBS: usize = 4;

/// The app the clients talk to.
pub struct Target<'a> {
    pub base: &'a str,
    pub token: &'a str,
}

/// One file of the run directory: its path under the directory and its digest.
struct RunFile {
    path: String,
    sha256: String,
}

/// Writes the run directory: sizes cycle from 16 KiB to 8 MiB, and the first file is 100 MiB.
fn write_run_dir(dir: &Path) -> Result<Vec<RunFile>> {
    let mut files = Vec::new();
    for i in 0..FILES {
        let size = match (i, i % 5) {
            (0, _) => 100 * MIB,
            (_, 0) => 16 * 1024,
            (_, 1) => 256 * 1024,
            (_, 2) => MIB,
            (_, 3) => 4 * MIB,
            _ => 8 * MIB,
        };
        let path = format!("logs/part-{}/file-{i}.bin", i % 4);
        let full = dir.join(&path);
        std::fs::create_dir_all(full.parent().context("parent")?)?;
        let sha256 = crate::bench::write_random_file(&full, size)?;
        files.push(RunFile { path, sha256 });
    }
    Ok(files)
}

fn curl_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new("curl").arg("-sS").args(args).output()?;
    if !out.status.success() {
        bail!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("a JSON reply")
}

impl Target<'_> {
    fn auth(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    fn create_package(&self) -> Result<String> {
        let body = r#"{"name":"cli-bench","producer":"bench","subject":"bench","retention_class":"transient"}"#;
        let reply = curl_json(&[
            "-X",
            "POST",
            "-H",
            &self.auth(),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &format!("{}/packages", self.base),
        ])?;
        reply["id"]
            .as_str()
            .map(str::to_string)
            .context("package id")
    }

    fn finalize(&self, package: &str) -> Result<()> {
        let reply = curl_json(&[
            "-X",
            "POST",
            "-H",
            &self.auth(),
            &format!("{}/packages/{package}/finalize", self.base),
        ])?;
        if reply["status"] != "finalized" {
            bail!("finalize: {reply}");
        }
        Ok(())
    }

    /// `(relative_path, file id)` of every file of the package.
    fn file_ids(&self, package: &str) -> Result<Vec<(String, String)>> {
        let reply = curl_json(&[
            "-H",
            &self.auth(),
            &format!("{}/packages/{package}/files", self.base),
        ])?;
        reply["items"]
            .as_array()
            .context("items")?
            .iter()
            .map(|f| {
                Ok((
                    f["relative_path"].as_str().context("path")?.to_string(),
                    f["id"].as_str().context("id")?.to_string(),
                ))
            })
            .collect()
    }
}

/// Runs `commands`, `JOBS` at a time; fails if any fails.
fn run_parallel(commands: Vec<Command>) -> Result<()> {
    let mut running: Vec<Child> = Vec::new();
    for mut cmd in commands {
        if running.len() == JOBS {
            wait_ok(running.remove(0))?;
        }
        running.push(cmd.stdout(Stdio::null()).spawn()?);
    }
    for child in running {
        wait_ok(child)?;
    }
    Ok(())
}

fn wait_ok(mut child: Child) -> Result<()> {
    let status = child.wait()?;
    if !status.success() {
        bail!("a curl failed ({status})");
    }
    Ok(())
}

fn curl_upload(t: &Target, dir: &Path, package: &str, f: &RunFile) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-H", &t.auth()])
        .args(["-H", &format!("x-artifact-sha256: {}", f.sha256)])
        .args(["-H", "Content-Type: application/octet-stream", "-T"])
        .arg(dir.join(&f.path))
        .arg(format!("{}/packages/{package}/files/{}", t.base, f.path));
    cmd
}

fn curl_download(t: &Target, out: &Path, file_id: &str) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-H", &t.auth(), "-o"])
        .arg(out)
        .arg(format!("{}/files/{file_id}/download", t.base));
    cmd
}

fn cli(bin: &Path, t: &Target) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("ARTIFACT_STORE_URL", t.base)
        .env("ARTIFACT_STORE_TOKEN", t.token)
        .stdout(Stdio::null());
    cmd
}

fn timed(mut cmd: Command, what: &str) -> Result<Duration> {
    let started = Instant::now();
    let status = cmd.status().with_context(|| what.to_string())?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(started.elapsed())
}

/// Pushes and pulls the run directory with the CLI and with curl, `runs` times each
/// (alternating), and prints the median times and their ratios.
pub fn cli_against_curl(t: &Target, cli_bin: &Path, work: &Path, runs: usize) -> Result<()> {
    let dir = work.join("run-dir");
    step("CLI against curl: writing a run directory of 50 files (about 250 MiB)");
    let files = write_run_dir(&dir)?;
    let total: u64 = walk_size(&dir)?;
    let (mut push, mut pull, mut curl_push, mut curl_pull) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        step(&format!("CLI against curl: round {}/{runs}", round + 1));
        // curl: the uploads, then the downloads, four at a time.
        let package = t.create_package()?;
        let uploads = files
            .iter()
            .map(|f| curl_upload(t, &dir, &package, f))
            .collect();
        let started = Instant::now();
        run_parallel(uploads)?;
        curl_push.push(started.elapsed());
        t.finalize(&package)?;
        let out = work.join(format!("curl-pull-{round}"));
        std::fs::create_dir_all(&out)?;
        let downloads = t
            .file_ids(&package)?
            .iter()
            .enumerate()
            .map(|(i, (_, id))| curl_download(t, &out.join(format!("f{i}")), id))
            .collect();
        let started = Instant::now();
        run_parallel(downloads)?;
        curl_pull.push(started.elapsed());
        std::fs::remove_dir_all(&out)?;

        // The CLI: one push (hashing included) into a new package, one pull.
        let package = t.create_package()?;
        let mut cmd = cli(cli_bin, t);
        cmd.arg("push")
            .arg(&dir)
            .args(["--package", &package, "--jobs", &JOBS.to_string()])
            .arg("--finalize");
        push.push(timed(cmd, "artifact-store push")?);
        let out = work.join(format!("cli-pull-{round}"));
        let mut cmd = cli(cli_bin, t);
        cmd.args(["pull", &package])
            .arg(&out)
            .args(["--jobs", &JOBS.to_string()]);
        pull.push(timed(cmd, "artifact-store pull")?);
        check_same(&dir, &out, &files)?;
        std::fs::remove_dir_all(&out)?;
    }
    let (push, pull) = (median(push), median(pull));
    let (curl_push, curl_pull) = (median(curl_push), median(curl_pull));
    println!();
    println!(
        "CLI against curl ({} at a time), {FILES} files, {} MiB, median of {runs} run(s)",
        JOBS,
        total / MIB
    );
    for (what, cli, curl) in [("push", push, curl_push), ("pull", pull, curl_pull)] {
        println!(
            "{what:<5} artifact-store {:>6.2} s   curl {:>6.2} s   = {:.2}x curl's time (target 1.2)",
            cli.as_secs_f64(),
            curl.as_secs_f64(),
            cli.as_secs_f64() / curl.as_secs_f64()
        );
    }
    Ok(())
}

/// The pulled files are the pushed ones (same digests).
fn check_same(src: &Path, out: &Path, files: &[RunFile]) -> Result<()> {
    for f in files {
        let got = std::fs::read(out.join(&f.path)).with_context(|| format!("pulled {}", f.path))?;
        if hex::encode(Sha256::digest(&got)) != f.sha256 {
            bail!("pulled {} differs from {}", f.path, src.display());
        }
    }
    Ok(())
}

fn walk_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
