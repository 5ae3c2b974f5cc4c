//! `cargo xtask bench`: request rate and byte-path throughput of the app under the harness
//! and under the real Spin CLI, side by side, next to a direct transfer of the same bytes
//! to the same Ceph RGW.
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
//!   one: every app upload includes the promote from staging to the final key.
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

/// One upload and download, and the harness's peak RSS during each (harness apps only).
struct Sample {
    upload: Duration,
    download: Duration,
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

fn measure(
    root: &Path,
    work: &Workdir,
    s3: &S3,
    hosts: &[(Host, PathBuf)],
    size: u64,
    runs: usize,
) -> Result<()> {
    let token = format!("bench_{}", hex::encode(random_bytes::<32>()?));
    let mut apps = Vec::new();
    for (backend, vars) in [("kv", Vec::new()), ("s3", s3.app_variables())] {
        for (host, bin) in hosts {
            apps.push(App::start(root, work, backend, *host, bin, &token, &vars)?);
        }
    }
    let idle: Vec<Option<u64>> = apps.iter().map(App::rss_kib).collect();

    request_rate(&apps[..hosts.len()])?;

    // Targets: every app, then curl straight to S3 (index apps.len()).
    let targets = apps.len() + 1;
    let label = |t: usize| apps.get(t).map_or("direct-curl".to_string(), App::label);
    let file = work.path.join("big.bin");
    let mut samples: Vec<Vec<Sample>> = (0..targets).map(|_| Vec::new()).collect();
    for round in 0..runs {
        step(&format!(
            "round {}/{runs}: writing {} MiB of random bytes",
            round + 1,
            size / MIB
        ));
        let sha = write_random_file(&file, size)?;
        for i in 0..targets {
            let at = (round + i) % targets;
            let sample = match apps.get(at) {
                Some(app) => app.transfer(work, &file, &sha, size)?,
                None => s3.transfer(work, &file, size, round)?,
            };
            eprintln!(
                "    {:<15} upload {:>6.1} MiB/s   download {:>6.1} MiB/s",
                label(at),
                mib_per_sec(size, sample.upload),
                mib_per_sec(size, sample.download)
            );
            samples[at].push(sample);
        }
    }
    let labels: Vec<String> = (0..targets).map(label).collect();
    report(size, runs, &labels, &samples, &idle);
    Ok(())
}

/// `GET /packages/{id}` at `RATE_CONNECTIONS` connections on each host (kv apps), runs
/// alternating between hosts; prints req/s, p50 and p99 (median run by req/s).
fn request_rate(apps: &[App]) -> Result<()> {
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
        "{:<16} {:>9} {:>9} {:>16} {:>18}",
        "", "upload", "download", "peak RSS upload", "peak RSS download"
    );
    let mut medians = Vec::new();
    for (label, runs) in labels.iter().zip(samples) {
        let up = median(runs.iter().map(|s| s.upload).collect());
        let down = median(runs.iter().map(|s| s.download).collect());
        let rss = |f: fn(&Sample) -> Option<u64>| kib_as_mib(runs.iter().filter_map(f).max());
        println!(
            "{:<16} {:>9.1} {:>9.1} {:>16} {:>18}",
            label,
            mib_per_sec(size, up),
            mib_per_sec(size, down),
            rss(|s| s.upload_rss_kib),
            rss(|s| s.download_rss_kib)
        );
        medians.push((up, down));
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
    let direct = medians.len() - 1;
    // A throughput ratio is the inverse of the time ratio.
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    for (name, pick) in [
        (
            "upload",
            (|m: &(Duration, Duration)| m.0) as fn(&(Duration, Duration)) -> Duration,
        ),
        ("download", |m| m.1),
    ] {
        for (i, label) in labels[..direct].iter().enumerate() {
            println!(
                "{name} {label} / {} = {:.2}",
                labels[direct],
                ratio(pick(&medians[i]), pick(&medians[direct]))
            );
        }
        // Harness against Spin on the same backend (apps come in host pairs).
        if direct % 2 == 0 && direct >= 2 {
            for pair in (0..direct).step_by(2) {
                println!(
                    "{name} {} / {} = {:.2}",
                    labels[pair],
                    labels[pair + 1],
                    ratio(pick(&medians[pair]), pick(&medians[pair + 1]))
                );
            }
        }
    }
}

/// A running host serving the app with one backend.
struct App {
    backend: &'static str,
    host: Host,
    base: String,
    token: String,
    child: Child,
}

impl App {
    fn start(
        root: &Path,
        work: &Workdir,
        backend: &'static str,
        host: Host,
        bin: &Path,
        token: &str,
        extra: &[(String, String)],
    ) -> Result<App> {
        let port = free_port()?;
        let name = format!("{backend}-{}", host.label());
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
            .args(["up", "--from", "spin.toml", "--listen"])
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
            backend,
            host,
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            child,
        };
        app.wait_ready(&log_path)?;
        Ok(app)
    }

    fn label(&self) -> String {
        format!("{}-{}", self.backend, self.host.label())
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

    /// Creates a package, uploads `file` into it, downloads it back.
    fn transfer(&self, work: &Workdir, file: &Path, sha: &str, size: u64) -> Result<Sample> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let reply = work.path.join("reply.json");
        let package = self.create_package(&reply)?;

        let mut upload = curl(&reply);
        upload
            .args(["-H", &auth, "-H", &format!("x-artifact-sha256: {sha}")])
            .args(["-H", "Content-Type: application/octet-stream", "-T"])
            .arg(file)
            .arg(format!("{}/packages/{package}/files/big.bin", self.base));
        self.reset_peak_rss();
        let started = Instant::now();
        expect_status(&mut upload, "201", &reply, "PUT big.bin")?;
        let upload_time = started.elapsed();
        let upload_rss_kib = self.peak_rss_kib();
        let file_id = json_id(&reply)?;

        let mut download = curl(Path::new("/dev/null"));
        download
            .args(["-H", &auth])
            .arg(format!("{}/files/{file_id}/download", self.base));
        self.reset_peak_rss();
        let started = Instant::now();
        expect_download(&mut download, size, "GET download")?;
        let download_time = started.elapsed();
        Ok(Sample {
            upload: upload_time,
            download: download_time,
            upload_rss_kib,
            download_rss_kib: self.peak_rss_kib(),
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

    /// A curl signing with SigV4 for this server.
    fn curl(&self, out: &Path) -> Command {
        let mut cmd = curl(out);
        cmd.args(["--aws-sigv4", &format!("aws:amz:{}:s3", self.region)])
            .args([
                "--user",
                &format!("{}:{}", self.access_key, self.secret_key),
            ])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
        cmd
    }

    /// PUT then GET of `file` straight to the bucket, under this run's prefix.
    fn transfer(&self, work: &Workdir, file: &Path, size: u64, round: usize) -> Result<Sample> {
        let url = self.url(&format!("{}direct/round-{round}", self.prefix));
        let reply = work.path.join("reply.xml");
        let mut put = self.curl(&reply);
        put.arg("-T").arg(file).arg(&url);
        let started = Instant::now();
        expect_status(&mut put, "200", &reply, "direct PUT")?;
        let upload = started.elapsed();
        let mut get = self.curl(Path::new("/dev/null"));
        get.arg(&url);
        let started = Instant::now();
        expect_download(&mut get, size, "direct GET")?;
        Ok(Sample {
            upload,
            download: started.elapsed(),
            upload_rss_kib: None,
            download_rss_kib: None,
        })
    }

    /// Best effort: deletes every object under this run's prefix (direct and app ones).
    fn remove_prefix(&self, scratch: &Path) {
        let listing = scratch.join("listing.xml");
        for _ in 0..100 {
            let mut list = self.curl(&listing);
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
                let mut delete = self.curl(Path::new("/dev/null"));
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
fn write_random_file(path: &Path, size: u64) -> Result<String> {
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
