//! `cargo xtask bench`: request rate and byte-path throughput of the app under the harness
//! and under the real Spin CLI, side by side, next to a direct transfer of the same bytes
//! to the same Ceph RGW, and next to the bounds of each path:
//! - `direct-signed`: curl to S3 with the payload's sha256 signed, so the server hashes it,
//!   as for the app's declared-digest uploads (`s3-*`, which move bytes host-side);
//! - `sha256-<host>`: the `hash-probe` component, which only reads and hashes its body: the
//!   bound of every path that hashes in the component (`kv-*`, and `s3-hashed-harness`:
//!   no declared digest, `verify_downloads=true`);
//! - `local-file`: the file copied and synced on this disk, against the kv backend;
//! - `<backend>-<host>-parts`: the same apps, the file sent through an upload session in
//!   8 MiB parts (what a client does under a serverless host's request cap);
//! - `s3-<host>-direct`: a direct upload session: curl PUTs the file straight to Ceph with
//!   the session's presigned URL (signed with the declared sha256, so Ceph checks it), then
//!   the app commits it; against `direct-curl`;
//! - the `artifact-store` CLI pushing and pulling a run directory against curl doing the
//!   same uploads and downloads (`cli_bench`).
//!
//! Decisions:
//! - These machines are two shared, noisy cores, so the bench reports ratios measured side
//!   by side in one run, never pass/fail thresholds. Each round transfers the same bytes to
//!   every target back to back (starting with a different target each round), and the
//!   median of the rounds is reported. Request-rate runs alternate between hosts too.
//! - The same wasm, manifest and runtime config run under both hosts; Spin comes from
//!   `../shared/spin/` (skipped with a note where that folder is absent).
//! - `curl` is the client for every transfer, so the client side costs the same everywhere;
//!   timing is the wall clock around the curl process. The request rate comes from
//!   `load.rs`, one keep-alive connection per client thread.
//! - Each round writes new random bytes, so no upload is deduplicated against an earlier
//!   one.
//! - The harness's peak RSS is read from `VmHWM` and reset through `clear_refs` before each
//!   transfer, so the peak belongs to that transfer (it shows bounded-memory streaming).
//!   Spin serves from a child process of `spin up`, so its RSS is not shown.

use crate::S3Server;
use crate::build::{self, repo_root, step};
use crate::{load, services};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// How long a host may take to compile the components and answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Request-rate runs: concurrency, length of one run, runs per host (median reported).
const RATE_CONNECTIONS: usize = 16;
const RATE_DURATION: Duration = Duration::from_secs(5);
const RATE_RUNS: usize = 3;

/// What serves the app.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    Harness,
    Spin,
}

impl Host {
    fn label(self) -> &'static str {
        match self {
            Host::Harness => "harness",
            Host::Spin => "spin",
        }
    }
}

/// One upload and download (none for `hash-probe`), and the harness's peak RSS during each
/// (harness apps only).
struct Sample {
    upload: Duration,
    download: Option<Duration>,
    upload_rss_kib: Option<u64>,
    download_rss_kib: Option<u64>,
}

/// `app_dir` holds `spin.toml` and the built `target/` (default: this repository).
pub fn bench(
    size_mib: u64,
    runs: usize,
    build_first: bool,
    app_dir: Option<PathBuf>,
) -> Result<()> {
    if runs == 0 || size_mib == 0 {
        bail!("--runs and --size-mib must be at least 1");
    }
    // Another directory brings its own build.
    if build_first && app_dir.is_none() {
        build::build_all()?;
        build::build_wasm(&["hash-probe"])?;
        // Optimized, as a producer installs it (`cargo install --path cli`).
        step("building the artifact-store CLI (release)");
        build::run(Command::new("cargo").args(["build", "--release", "-p", "artifact-store-cli"]))?;
    }
    let root = app_dir.unwrap_or_else(repo_root);
    let harness = root.join("target/debug/harness");
    if !harness.is_file() {
        bail!(
            "{} missing: run `cargo xtask build` (or drop --no-build)",
            harness.display()
        );
    }
    let spin = services::install_spin()?;
    if spin.is_none() {
        step("no ../shared/spin/: measuring the harness only");
    }
    let s3_env = services::start_s3(S3Server::Ceph)?.context("no S3 server")?;
    let result = Workdir::create().and_then(|work| {
        let s3 = S3::from_vars(&s3_env.vars)?;
        let hosts: Vec<(Host, PathBuf)> = std::iter::once((Host::Harness, harness))
            .chain(spin.map(|b| (Host::Spin, b)))
            .collect();
        let outcome = measure(&root, &work, &s3, &hosts, size_mib * MIB, runs);
        s3.remove_prefix(&work.path);
        outcome
    });
    s3_env.stop_if_started();
    result
}

/// What a round transfers the file to and from.
enum Target {
    App(App),
    /// `hash-probe` under a host: the in-guest sha256 rate (upload only).
    Probe(App),
    /// curl straight to the S3 server. `signed`: the payload's sha256 is signed, so the
    /// server hashes it, as it does for the app's declared-digest uploads.
    Direct {
        signed: bool,
    },
    /// The file copied to a local file and synced: what this disk does.
    LocalFile,
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::App(app) | Target::Probe(app) => app.name.clone(),
            Target::Direct { signed: false } => "direct-curl".into(),
            Target::Direct { signed: true } => "direct-signed".into(),
            Target::LocalFile => "local-file".into(),
        }
    }

    fn transfer(
        &self,
        work: &Workdir,
        s3: &S3,
        file: &Path,
        sha: &str,
        size: u64,
        round: usize,
    ) -> Result<Sample> {
        match self {
            Target::App(app) => app.transfer(work, file, sha, size),
            Target::Probe(app) => app.hash(work, file, sha, size),
            Target::Direct { signed } => {
                s3.transfer(work, file, signed.then_some(sha), size, round)
            }
            Target::LocalFile => local_transfer(work, file),
        }
    }
}

fn measure(
    root: &Path,
    work: &Workdir,
    s3: &S3,
    hosts: &[(Host, PathBuf)],
    size: u64,
    runs: usize,
) -> Result<()> {
    let token = format!("bench_{}", hex::encode(random_bytes::<32>()?));
    let manifest = root.join("spin.toml");
    let probe_manifest = write_probe_manifest(root, work)?;
    let mut targets = Vec::new();
    for (backend, vars) in [("kv", Vec::new()), ("s3", s3.app_variables())] {
        for (host, bin) in hosts {
            let name = format!("{backend}-{}", host.label());
            let app = App::start(root, work, &name, &manifest, *host, bin, &token, &vars)?;
            targets.push(Target::App(app));
        }
    }
    // The same apps with uploads in 8 MiB parts through an upload session (what a client
    // does under a serverless host's request cap).
    for (backend, vars) in [("kv", Vec::new()), ("s3", s3.app_variables())] {
        for (host, bin) in hosts {
            let name = format!("{backend}-{}-parts", host.label());
            let mut app = App::start(root, work, &name, &manifest, *host, bin, &token, &vars)?;
            app.parts = true;
            targets.push(Target::App(app));
        }
    }
    // S3 with a direct session: the bytes go from curl straight to Ceph with a presigned
    // PUT; the app only starts the session and commits it.
    for (host, bin) in hosts {
        let name = format!("s3-{}-direct", host.label());
        let vars = s3.app_variables();
        let mut app = App::start(root, work, &name, &manifest, *host, bin, &token, &vars)?;
        app.direct = true;
        targets.push(Target::App(app));
    }
    // S3 through the paths that hash in the component: no declared digest (staged, hashed,
    // copied) and verified downloads.
    let mut hashed = s3.app_variables();
    hashed.push(("verify_downloads".into(), "true".into()));
    let (host, bin) = &hosts[0];
    let mut app = App::start(
        root,
        work,
        "s3-hashed-harness",
        &manifest,
        *host,
        bin,
        &token,
        &hashed,
    )?;
    app.declare = false;
    targets.push(Target::App(app));
    for (host, bin) in hosts {
        let name = format!("sha256-{}", host.label());
        let probe = App::start(root, work, &name, &probe_manifest, *host, bin, &token, &[])?;
        targets.push(Target::Probe(probe));
    }
    targets.extend([
        Target::Direct { signed: false },
        Target::Direct { signed: true },
        Target::LocalFile,
    ]);
    let idle: Vec<Option<u64>> = targets
        .iter()
        .map(|t| match t {
            Target::App(app) | Target::Probe(app) => app.rss_kib(),
            _ => None,
        })
        .collect();

    let kv_apps: Vec<&App> = targets[..hosts.len()]
        .iter()
        .filter_map(|t| match t {
            Target::App(app) => Some(app),
            _ => None,
        })
        .collect();
    request_rate(&kv_apps)?;
    let cli = repo_root().join("target/release/artifact-store");
    if cli.is_file() {
        let app = kv_apps[0];
        let target = crate::cli_bench::Target {
            base: &app.base,
            token: &app.token,
        };
        crate::cli_bench::cli_against_curl(&target, &cli, &work.path, runs)?;
    } else {
        step("no target/release/artifact-store: the CLI is not measured (drop --no-build)");
    }

    let file = work.path.join("big.bin");
    let mut samples: Vec<Vec<Sample>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        step(&format!(
            "round {}/{runs}: writing {} MiB of random bytes",
            round + 1,
            size / MIB
        ));
        let sha = write_random_file(&file, size)?;
        for i in 0..targets.len() {
            let at = (round + i) % targets.len();
            let sample = targets[at].transfer(work, s3, &file, &sha, size, round)?;
            eprintln!(
                "    {:<18} upload {:>6.1} MiB/s   download {}",
                targets[at].label(),
                mib_per_sec(size, sample.upload),
                sample.download.map_or("-".into(), |d| format!(
                    "{:>6.1} MiB/s",
                    mib_per_sec(size, d)
                ))
            );
            samples[at].push(sample);
        }
    }
    let labels: Vec<String> = targets.iter().map(Target::label).collect();
    report(size, runs, &labels, &samples, &idle);
    Ok(())
}

/// A manifest that serves `hash-probe` on every path.
fn write_probe_manifest(root: &Path, work: &Workdir) -> Result<PathBuf> {
    let wasm = root.join("target/wasm32-wasip2/release/hash_probe.wasm");
    if !wasm.is_file() {
        bail!(
            "{} missing: run `cargo xtask bench` without --no-build",
            wasm.display()
        );
    }
    let path = work.path.join("probe-spin.toml");
    std::fs::write(
        &path,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"hash-probe\"\n\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hash\"\n\n\
             [component.hash]\nsource = \"{}\"\n",
            wasm.display()
        ),
    )?;
    Ok(path)
}

/// Copies the file and syncs the copy (upload), then reads the copy back (download, from
/// the page cache).
fn local_transfer(work: &Workdir, file: &Path) -> Result<Sample> {
    let copy = work.path.join("local-copy.bin");
    let started = Instant::now();
    std::fs::copy(file, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let upload = started.elapsed();
    let started = Instant::now();
    std::io::copy(&mut std::fs::File::open(&copy)?, &mut std::io::sink())?;
    let download = started.elapsed();
    std::fs::remove_file(&copy)?;
    Ok(Sample {
        upload,
        download: Some(download),
        upload_rss_kib: None,
        download_rss_kib: None,
    })
}
/// `GET /packages/{id}` at `RATE_CONNECTIONS` connections on each host (kv apps), runs
/// alternating between hosts; prints req/s, p50 and p99 (median run by req/s).
fn request_rate(apps: &[&App]) -> Result<()> {
    let mut results: Vec<Vec<load::LoadResult>> = apps.iter().map(|_| Vec::new()).collect();
    let mut paths = Vec::new();
    for app in apps {
        let reply = std::env::temp_dir().join(format!("bench-rate-{}.json", std::process::id()));
        paths.push(format!("/packages/{}", app.create_package(&reply)?));
    }
    for run in 0..RATE_RUNS {
        for i in 0..apps.len() {
            let at = (run + i) % apps.len();
            let app = &apps[at];
            step(&format!(
                "request rate {}/{RATE_RUNS}: GET /packages/{{id}} on {} ({RATE_CONNECTIONS} connections, {:?})",
                run + 1,
                app.label(),
                RATE_DURATION
            ));
            let r = load::run(
                app.base.trim_start_matches("http://"),
                &paths[at],
                &app.token,
                RATE_CONNECTIONS,
                RATE_DURATION,
            )?;
            results[at].push(r);
        }
    }
    println!();
    println!(
        "GET /packages/{{id}}, {RATE_CONNECTIONS} connections, {RATE_RUNS} runs of {:?} (median run)",
        RATE_DURATION
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9}",
        "", "req/s", "p50 ms", "p99 ms", "requests"
    );
    let mut medians = Vec::new();
    for (app, mut runs) in apps.iter().zip(results) {
        runs.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
        let m = runs.swap_remove(runs.len() / 2);
        println!(
            "{:<16} {:>9.0} {:>9.1} {:>9.1} {:>9}",
            app.label(),
            m.per_sec,
            m.p50.as_secs_f64() * 1e3,
            m.p99.as_secs_f64() * 1e3,
            m.requests
        );
        medians.push(m.per_sec);
    }
    if medians.len() == 2 {
        println!(
            "req/s {} / {} = {:.2}",
            apps[0].label(),
            apps[1].label(),
            medians[0] / medians[1]
        );
    }
    Ok(())
}

fn report(
    size: u64,
    runs: usize,
    labels: &[String],
    samples: &[Vec<Sample>],
    idle_kib: &[Option<u64>],
) {
    println!();
    println!(
        "{} MiB file, median of {runs} run(s), MiB/s (client: curl)",
        size / MIB
    );
    println!(
        "{:<18} {:>9} {:>9} {:>16} {:>18}",
        "", "upload", "download", "peak RSS upload", "peak RSS download"
    );
    let mut medians = std::collections::HashMap::new();
    for (label, runs) in labels.iter().zip(samples) {
        let up = median(runs.iter().map(|s| s.upload).collect());
        let downs: Vec<Duration> = runs.iter().filter_map(|s| s.download).collect();
        let down = (!downs.is_empty()).then(|| median(downs));
        let rss = |f: fn(&Sample) -> Option<u64>| kib_as_mib(runs.iter().filter_map(f).max());
        println!(
            "{:<18} {:>9.1} {:>9} {:>16} {:>18}",
            label,
            mib_per_sec(size, up),
            down.map_or("-".into(), |d| format!("{:.1}", mib_per_sec(size, d))),
            rss(|s| s.upload_rss_kib),
            rss(|s| s.download_rss_kib)
        );
        medians.insert(label.as_str(), (Some(up), down));
    }
    let idle: Vec<String> = labels
        .iter()
        .zip(idle_kib)
        .filter(|(_, k)| k.is_some())
        .map(|(l, k)| format!("{l} {}", kib_as_mib(*k)))
        .collect();
    println!(
        "(peak RSS: the harness process's VmHWM during the transfer, max over runs; \
         idle after start: {})",
        idle.join(", ")
    );
    println!();
    // A throughput ratio is the inverse of the time ratio; pairs missing in this run
    // (no Spin) are skipped.
    let line = |name: &str, a: &str, b: &str, why: &str| {
        let pick = |l: &str| {
            medians.get(l).and_then(
                |m: &(Option<Duration>, Option<Duration>)| {
                    if name == "upload" { m.0 } else { m.1 }
                },
            )
        };
        if let (Some(x), Some(y)) = (pick(a), pick(b)) {
            println!(
                "{name:<8} {a:>17} / {b:<16} = {:.2}   {why}",
                y.as_secs_f64() / x.as_secs_f64()
            );
        }
    };
    for name in ["upload", "download"] {
        for app in [
            "kv-harness",
            "kv-spin",
            "s3-harness",
            "s3-spin",
            "s3-hashed-harness",
        ] {
            line(name, app, "direct-curl", "of the storage's own speed");
        }
        for (a, b) in [("kv-harness", "kv-spin"), ("s3-harness", "s3-spin")] {
            line(name, a, b, "harness against Spin");
        }
    }
    for (parts, whole) in [
        ("kv-harness-parts", "kv-harness"),
        ("kv-spin-parts", "kv-spin"),
        ("s3-harness-parts", "s3-harness"),
        ("s3-spin-parts", "s3-spin"),
    ] {
        line(
            "upload",
            parts,
            whole,
            "8 MiB parts through a session against one PUT (target 0.8)",
        );
    }
    for app in ["s3-harness-direct", "s3-spin-direct"] {
        line(
            "upload",
            app,
            "direct-curl",
            "presigned direct PUT, session and commit included (target 0.9)",
        );
    }
    for app in ["s3-harness", "s3-spin"] {
        line(
            "upload",
            app,
            "direct-signed",
            "bound: the server hashes the payload",
        );
    }
    for (app, probe) in [
        ("kv-harness", "sha256-harness"),
        ("kv-spin", "sha256-spin"),
        ("s3-hashed-harness", "sha256-harness"),
    ] {
        line("upload", app, probe, "bound: sha256 in the component");
    }
    line(
        "download",
        "s3-hashed-harness",
        "sha256-harness",
        "bound: sha256 in the component",
    );
    line(
        "upload",
        "kv-harness",
        "local-file",
        "against writing a local file",
    );
    line(
        "upload",
        "direct-signed",
        "direct-curl",
        "what signing the digest costs the server",
    );
}

/// A running host serving a manifest (the app, or `hash-probe`).
struct App {
    name: String,
    host: Host,
    base: String,
    token: String,
    /// Uploads declare their sha256 (`x-artifact-sha256`).
    declare: bool,
    /// Uploads go through an upload session: 8 MiB parts in order, then `complete`.
    parts: bool,
    /// Uploads go through a direct session: one presigned PUT straight to S3, then
    /// `complete`.
    direct: bool,
    child: Child,
}

impl App {
    #[allow(clippy::too_many_arguments)]
    fn start(
        root: &Path,
        work: &Workdir,
        name: &str,
        manifest: &Path,
        host: Host,
        bin: &Path,
        token: &str,
        extra: &[(String, String)],
    ) -> Result<App> {
        let port = free_port()?;
        let state = work.path.join(format!("state-{name}"));
        std::fs::create_dir_all(&state)?;
        // Both hosts need the `blobs` store defined (Spin refuses the app otherwise).
        let runtime_config = state.join("runtime-config.toml");
        std::fs::write(
            &runtime_config,
            "[key_value_store.blobs]\ntype = \"spin\"\npath = \"blobs.db\"\n",
        )?;
        let log_path = work.path.join(format!("host-{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let token_sha = hex::encode(Sha256::digest(token.as_bytes()));
        let auth = format!(
            r#"[{{"token_sha256":"{token_sha}","principal":"bench","roles":["producer","operator"],"producers":["bench"]}}]"#
        );
        let mut cmd = Command::new(bin);
        // Its own process group: Spin runs its triggers as child processes.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.current_dir(root)
            .args(["up", "--from"])
            .arg(manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--runtime-config-file")
            .arg(&runtime_config)
            .args(["--variable", &format!("auth_tokens={auth}")]);
        for (k, v) in extra {
            cmd.args(["--variable", &format!("{k}={v}")]);
        }
        step(&format!(
            "starting the {name} app on 127.0.0.1:{port} (log: {})",
            log_path.display()
        ));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut app = App {
            name: name.to_string(),
            host,
            declare: true,
            parts: false,
            direct: false,
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            child,
        };
        app.wait_ready(&log_path)?;
        Ok(app)
    }

    fn label(&self) -> String {
        self.name.clone()
    }

    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the {} app exited ({status}); see {}",
                    self.label(),
                    log.display()
                );
            }
            let probe = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "5",
                ])
                .arg(format!("{}/health", self.base))
                .output()?;
            if probe.stdout == b"200" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!(
            "the {} app did not answer /health within {:?}; see {}",
            self.label(),
            START_TIMEOUT,
            log.display()
        )
    }

    /// Creates a package; returns its id.
    fn create_package(&self, reply: &Path) -> Result<String> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let body = r#"{"name":"bench","producer":"bench","subject":"bench","retention_class":"transient"}"#;
        let mut create = curl(reply);
        create
            .args(["-X", "POST", "-H", &auth])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ])
            .arg(format!("{}/packages", self.base));
        expect_status(&mut create, "201", reply, "POST /packages")?;
        json_id(reply)
    }

    /// Uploads `file` through an upload session into `package`, a part per request, in
    /// order (so `complete` reads nothing back); the time from the session's start to the
    /// file's commit. The parts are cut beforehand (not timed).
    fn upload_in_parts(
        &self,
        work: &Workdir,
        package: &str,
        file: &Path,
        sha: &str,
        size: u64,
    ) -> Result<(Duration, String)> {
        const PART: u64 = 8 * MIB;
        let auth = format!("Authorization: Bearer {}", self.token);
        let reply = work.path.join("reply.json");
        let mut parts = Vec::new();
        let mut source = std::fs::File::open(file)?;
        for n in 1..=size.div_ceil(PART) {
            let path = work.path.join(format!("part-{n}"));
            let mut out = std::fs::File::create(&path)?;
            std::io::copy(&mut std::io::Read::take(&mut source, PART), &mut out)?;
            parts.push(path);
        }
        let body = format!(r#"{{"relative_path":"big.bin","size_bytes":{size},"sha256":"{sha}"}}"#);
        let started = Instant::now();
        let mut begin = curl(&reply);
        begin
            .args(["-X", "POST", "-H", &auth])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ])
            .arg(format!("{}/packages/{package}/uploads", self.base));
        expect_status(&mut begin, "201", &reply, "POST uploads")?;
        let session = json_id(&reply)?;
        for (i, part) in parts.iter().enumerate() {
            let mut put = curl(&reply);
            put.args(["-H", &auth, "-T"]).arg(part).arg(format!(
                "{}/uploads/{session}/parts/{}",
                self.base,
                i + 1
            ));
            expect_status(&mut put, "200", &reply, "PUT part")?;
        }
        let mut complete = curl(&reply);
        complete
            .args(["-X", "POST", "-H", &auth])
            .arg(format!("{}/uploads/{session}/complete", self.base));
        expect_status(&mut complete, "201", &reply, "POST complete")?;
        let took = started.elapsed();
        for part in parts {
            std::fs::remove_file(part)?;
        }
        Ok((took, json_id(&reply)?))
    }

    /// Uploads `file` through a direct session: the session, one presigned PUT straight to
    /// storage with the headers the session lists, then `complete`; the time from the
    /// session's start to the file's commit.
    fn upload_direct(
        &self,
        work: &Workdir,
        package: &str,
        file: &Path,
        sha: &str,
        size: u64,
    ) -> Result<(Duration, String)> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let reply = work.path.join("reply.json");
        let body = format!(
            r#"{{"relative_path":"big.bin","size_bytes":{size},"sha256":"{sha}","direct":true}}"#
        );
        let started = Instant::now();
        let mut begin = curl(&reply);
        begin
            .args(["-X", "POST", "-H", &auth])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ])
            .arg(format!("{}/packages/{package}/uploads", self.base));
        expect_status(&mut begin, "201", &reply, "POST uploads")?;
        let session: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&reply)?)?;
        let id = session["id"].as_str().context("session id")?.to_string();
        let target = &session["parts"][0];
        if session["transfer"] != "direct" {
            bail!("the session is not direct: {session}");
        }
        let mut put = curl(&work.path.join("s3-reply.xml"));
        put.arg("-T").arg(file);
        for (k, v) in target["headers"].as_object().into_iter().flatten() {
            put.args(["-H", &format!("{k}: {}", v.as_str().unwrap_or_default())]);
        }
        put.arg(target["url"].as_str().context("part url")?);
        expect_status(
            &mut put,
            "200",
            &work.path.join("s3-reply.xml"),
            "presigned PUT",
        )?;
        let mut complete = curl(&reply);
        complete
            .args(["-X", "POST", "-H", &auth])
            .arg(format!("{}/uploads/{id}/complete", self.base));
        expect_status(&mut complete, "201", &reply, "POST complete")?;
        Ok((started.elapsed(), json_id(&reply)?))
    }

    /// Creates a package, uploads `file` into it, downloads it back.
    fn transfer(&self, work: &Workdir, file: &Path, sha: &str, size: u64) -> Result<Sample> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let reply = work.path.join("reply.json");
        let package = self.create_package(&reply)?;
        if self.parts || self.direct {
            self.reset_peak_rss();
            let (upload, file_id) = if self.direct {
                self.upload_direct(work, &package, file, sha, size)?
            } else {
                self.upload_in_parts(work, &package, file, sha, size)?
            };
            let upload_rss_kib = self.peak_rss_kib();
            let (download, download_rss_kib) = self.download(&file_id, size)?;
            return Ok(Sample {
                upload,
                download: Some(download),
                upload_rss_kib,
                download_rss_kib,
            });
        }

        let mut upload = curl(&reply);
        upload.args(["-H", &auth]);
        if self.declare {
            upload.args(["-H", &format!("x-artifact-sha256: {sha}")]);
        }
        upload
            .args(["-H", "Content-Type: application/octet-stream", "-T"])
            .arg(file)
            .arg(format!("{}/packages/{package}/files/big.bin", self.base));
        self.reset_peak_rss();
        let started = Instant::now();
        expect_status(&mut upload, "201", &reply, "PUT big.bin")?;
        let upload_time = started.elapsed();
        let upload_rss_kib = self.peak_rss_kib();
        let file_id = json_id(&reply)?;
        let (download, download_rss_kib) = self.download(&file_id, size)?;
        Ok(Sample {
            upload: upload_time,
            download: Some(download),
            upload_rss_kib,
            download_rss_kib,
        })
    }

    /// Downloads a file whole: the time and the host's peak RSS meanwhile.
    fn download(&self, file_id: &str, size: u64) -> Result<(Duration, Option<u64>)> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let mut download = curl(Path::new("/dev/null"));
        download
            .args(["-H", &auth])
            .arg(format!("{}/files/{file_id}/download", self.base));
        self.reset_peak_rss();
        let started = Instant::now();
        expect_download(&mut download, size, "GET download")?;
        Ok((started.elapsed(), self.peak_rss_kib()))
    }

    /// Sends `file` to `hash-probe`, which answers its sha256 and size.
    fn hash(&self, work: &Workdir, file: &Path, sha: &str, size: u64) -> Result<Sample> {
        let reply = work.path.join("probe.txt");
        let mut upload = curl(&reply);
        upload
            .arg("-T")
            .arg(file)
            .arg(format!("{}/hash", self.base));
        self.reset_peak_rss();
        let started = Instant::now();
        expect_status(&mut upload, "200", &reply, "hash-probe")?;
        let upload = started.elapsed();
        let answer = std::fs::read_to_string(&reply)?;
        if answer.trim() != format!("{sha} {size}") {
            bail!("hash-probe answered {answer:?}, expected {sha} {size}");
        }
        Ok(Sample {
            upload,
            download: None,
            upload_rss_kib: self.peak_rss_kib(),
            download_rss_kib: None,
        })
    }

    /// Resets `VmHWM` (Linux: `5` to `clear_refs`); without it the peak spans the run.
    fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// Peak RSS since the reset: the harness only (Spin serves from a child process).
    fn peak_rss_kib(&self) -> Option<u64> {
        (self.host == Host::Harness).then(|| self.status_kib("VmHWM:"))?
    }

    fn rss_kib(&self) -> Option<u64> {
        (self.host == Host::Harness).then(|| self.status_kib("VmRSS:"))?
    }

    /// A `kB` field of `/proc/<pid>/status`.
    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Only the process group this bench started (the host and its trigger processes).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Ceph RGW from `start-ceph.sh`, and a key prefix only this run uses.
struct S3 {
    endpoint: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    prefix: String,
}

impl S3 {
    fn from_vars(vars: &[(String, String)]) -> Result<S3> {
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("the S3 start script printed no {k}"))
        };
        Ok(S3 {
            endpoint: get("S3_ENDPOINT")?.trim_end_matches('/').to_string(),
            bucket: get("S3_BUCKET")?,
            region: get("S3_REGION").unwrap_or_else(|_| "default".into()),
            access_key: get("S3_ACCESS_KEY")?,
            secret_key: get("S3_SECRET_KEY")?,
            prefix: format!("bench-{}/", hex::encode(random_bytes::<6>()?)),
        })
    }

    fn app_variables(&self) -> Vec<(String, String)> {
        [
            ("default_backend", "s3"),
            ("s3_endpoint", &self.endpoint),
            ("s3_bucket", &self.bucket),
            ("s3_region", &self.region),
            ("s3_access_key_id", &self.access_key),
            ("s3_secret_access_key", &self.secret_key),
            ("s3_key_prefix", &self.prefix),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.endpoint, self.bucket)
    }

    /// A curl signing with SigV4 for this server; `payload` is the signed payload hash.
    fn curl(&self, out: &Path, payload: &str) -> Command {
        let mut cmd = curl(out);
        cmd.args(["--aws-sigv4", &format!("aws:amz:{}:s3", self.region)])
            .args([
                "--user",
                &format!("{}:{}", self.access_key, self.secret_key),
            ])
            .args(["-H", &format!("x-amz-content-sha256: {payload}")]);
        cmd
    }

    /// PUT then GET of `file` straight to the bucket, under this run's prefix; with
    /// `signed_sha`, the PUT signs the payload's digest (the server then hashes the body and
    /// refuses a mismatch, like the app's declared-digest uploads).
    fn transfer(
        &self,
        work: &Workdir,
        file: &Path,
        signed_sha: Option<&str>,
        size: u64,
        round: usize,
    ) -> Result<Sample> {
        let name = if signed_sha.is_some() {
            "signed"
        } else {
            "direct"
        };
        let url = self.url(&format!("{}{name}/round-{round}", self.prefix));
        let reply = work.path.join("reply.xml");
        let mut put = self.curl(&reply, signed_sha.unwrap_or("UNSIGNED-PAYLOAD"));
        put.arg("-T").arg(file).arg(&url);
        let started = Instant::now();
        expect_status(&mut put, "200", &reply, "direct PUT")?;
        let upload = started.elapsed();
        let mut get = self.curl(Path::new("/dev/null"), "UNSIGNED-PAYLOAD");
        get.arg(&url);
        let started = Instant::now();
        expect_download(&mut get, size, "direct GET")?;
        Ok(Sample {
            upload,
            download: Some(started.elapsed()),
            upload_rss_kib: None,
            download_rss_kib: None,
        })
    }

    /// Best effort: deletes every object under this run's prefix (direct and app ones).
    fn remove_prefix(&self, scratch: &Path) {
        let listing = scratch.join("listing.xml");
        for _ in 0..100 {
            let mut list = self.curl(&listing, "UNSIGNED-PAYLOAD");
            // curl signs the query as written: escape the `/` as SigV4 does.
            list.arg(format!(
                "{}/{}?list-type=2&prefix={}",
                self.endpoint,
                self.bucket,
                self.prefix.replace('/', "%2F")
            ));
            if expect_status(&mut list, "200", &listing, "list").is_err() {
                eprintln!("    could not list {} for clean-up", self.prefix);
                return;
            }
            let text = std::fs::read_to_string(&listing).unwrap_or_default();
            let keys = xml_texts(&text, "Key");
            if keys.is_empty() {
                return;
            }
            for key in keys {
                let mut delete = self.curl(Path::new("/dev/null"), "UNSIGNED-PAYLOAD");
                delete.args(["-X", "DELETE"]).arg(self.url(&key));
                let _ = delete.output();
            }
        }
    }
}

/// The bench's scratch directory, removed when dropped.
struct Workdir {
    path: PathBuf,
}

impl Workdir {
    fn create() -> Result<Workdir> {
        let path =
            std::env::temp_dir().join(format!("artifact-store-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Workdir { path })
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// curl, quiet but showing errors, writing the reply body to `out` and printing
/// `<status> <bytes downloaded>`.
fn curl(out: &Path) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "%{http_code} %{size_download}", "-o"])
        .arg(out);
    cmd
}

/// Runs curl; returns `(status, bytes downloaded)`.
fn run_curl(cmd: &mut Command, what: &str) -> Result<(String, u64)> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running curl (is it installed?)")?;
    if !out.status.success() {
        bail!("{what}: curl failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let status = fields.next().unwrap_or_default().to_string();
    let bytes = fields.next().and_then(|b| b.parse().ok()).unwrap_or(0);
    Ok((status, bytes))
}

fn expect_status(cmd: &mut Command, want: &str, reply: &Path, what: &str) -> Result<()> {
    let (status, _) = run_curl(cmd, what)?;
    if status != want {
        let body = std::fs::read_to_string(reply).unwrap_or_default();
        bail!("{what}: HTTP {status} (expected {want}): {body}");
    }
    Ok(())
}

fn expect_download(cmd: &mut Command, size: u64, what: &str) -> Result<()> {
    let (status, bytes) = run_curl(cmd, what)?;
    if status != "200" || bytes != size {
        bail!("{what}: HTTP {status}, {bytes} bytes (expected 200, {size} bytes)");
    }
    Ok(())
}

/// The `id` of the JSON object in `reply`.
fn json_id(reply: &Path) -> Result<String> {
    let text = std::fs::read_to_string(reply)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reply is not JSON: {text}"))?;
    value["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("reply has no id: {text}"))
}

/// Writes `size` pseudo-random (incompressible) bytes in 1 MiB chunks; returns their sha256.
pub(crate) fn write_random_file(path: &Path, size: u64) -> Result<String> {
    let seed = u64::from_le_bytes(random_bytes::<8>()?) | 1;
    let mut state = seed;
    let mut hasher = Sha256::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        for word in chunk[..n].chunks_mut(8) {
            // xorshift64: fast enough that writing the file costs little next to the bench.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut raw = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom")?;
    Ok(raw)
}

fn free_port() -> Result<u16> {
    // The port is free once the listener is dropped; the harness binds it right after.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn kib_as_mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{} MiB", k / 1024))
}

fn mib_per_sec(size: u64, time: Duration) -> f64 {
    size as f64 / MIB as f64 / time.as_secs_f64().max(1e-9)
}

/// Texts of `<tag>...</tag>` elements (S3 list replies are flat enough for this).
fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].replace("&amp;", "&"));
        rest = &after[end + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(median(vec![s(3), s(1), s(2)]), s(2));
        assert_eq!(median(vec![s(4), s(1)]), s(4));
    }

    #[test]
    fn listed_keys() {
        let x = "<R><Contents><Key>a/b</Key></Contents><Contents><Key>c&amp;d</Key></Contents></R>";
        assert_eq!(xml_texts(x, "Key"), vec!["a/b", "c&d"]);
    }
}
