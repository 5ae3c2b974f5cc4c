//! Parity with the real host: the same fixture app, flags, runtime config and requests under
//! `spin up` (Spin 3.5 + trigger-cron 0.3.0 from `../shared/spin/`) and `harness up`. Every
//! answer must match, and every configuration one host refuses the other must refuse too.
//! The harness is only worth having if it behaves as the host users deploy to.
//!
//! Without `../shared/spin/` (outside this project's machines) each test prints why it has
//! nothing to compare against and returns.

mod common;

use common::{repo_root, temp_dir, write_manifest};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Spin,
    Harness,
}

/// The real Spin CLI (`SPIN_BIN`, or installed by `../shared/spin/install.sh`).
fn spin_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SPIN_BIN") {
            return Some(bin.into());
        }
        let script = repo_root().join("../shared/spin/install.sh");
        if !script.exists() {
            return None;
        }
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("install.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("SPIN_BIN=").map(PathBuf::from))
    })
    .clone()
}

macro_rules! require_spin {
    () => {
        if spin_bin().is_none() {
            skip("no ../shared/spin/ on this machine, so no real Spin to compare with");
            return;
        }
    };
}

/// Records that the running test skips its body, as `artifact_store_tests::skip` does (this
/// crate cannot depend on that one): libtest counts the test as passed, so the skip is also
/// appended to the file `ARTIFACT_STORE_SKIP_LOG` names, which `cargo xtask test` counts
/// (and fails on under CI). The test's name is its thread's, as libtest names it.
fn skip(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIP: {test}: {reason}");
    if let Some(path) = std::env::var_os("ARTIFACT_STORE_SKIP_LOG") {
        let line = format!("{test}: {reason}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("cannot record a skip in {}: {e}", path.to_string_lossy());
        }
    }
}

/// How one host is started: `<bin> up --from <manifest> --listen .. --state-dir ..` plus
/// `args`, in `cwd`, with exactly `env` added to a minimal environment.
struct Launch<'a> {
    manifest: &'a Path,
    cwd: &'a Path,
    args: Vec<String>,
    env: Vec<(&'a str, &'a str)>,
}

struct Running {
    kind: Kind,
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The whole process group: Spin runs its triggers as child processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn spawn(kind: Kind, launch: &Launch, tag: &str) -> (Child, u16, PathBuf) {
    let bin = match kind {
        Kind::Spin => spin_bin().unwrap(),
        Kind::Harness => PathBuf::from(env!("CARGO_BIN_EXE_harness")),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = launch.cwd.join(format!("state-{tag}-{kind:?}"));
    let log = launch.cwd.join(format!("{tag}-{kind:?}.log"));
    let mut cmd = Command::new(bin);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env(
            "HARNESS_CACHE_DIR",
            repo_root().join("target/harness-tests/cache"),
        )
        .envs(launch.env.iter().copied())
        .current_dir(launch.cwd)
        .args(["up", "--from"])
        .arg(launch.manifest)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(&state)
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    (cmd.spawn().expect("starting host"), port, log)
}

fn log_text(log: &Path) -> String {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    format!("{}{}", read(log), read(&log.with_extension("err")))
}

/// Starts `kind` and waits until it answers HTTP; `Err(log)` if it exits first.
async fn start(kind: Kind, launch: &Launch<'_>, tag: &str) -> Result<Running, String> {
    let (mut child, port, log) = spawn(kind, launch, tag);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("{kind:?} exited ({status}): {}", log_text(&log)));
        }
        if reqwest::get(format!("{base}/exact")).await.is_ok() {
            return Ok(Running {
                kind,
                child,
                base,
                log,
            });
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?} did not start: {}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `kind` expecting a refusal: `Some(log)` when it exits non-zero at start.
async fn refused(kind: Kind, launch: &Launch<'_>, tag: &str) -> Option<String> {
    match start(kind, launch, tag).await {
        Err(log) => Some(log),
        Ok(running) => {
            // Spin may serve HTTP for a moment before a failing trigger ends the app.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut running = running;
            while Instant::now() < deadline {
                if let Some(status) = running.child.try_wait().unwrap() {
                    return (!status.success()).then(|| log_text(&running.log));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    }
}

/// The parity app: the fixture components on routes without a catch-all, so unknown
/// paths and the router's edge cases show.
const ROUTES: &str = r#"
[[trigger.http]]
route = "/exact"
component = "exact"

[[trigger.http]]
route = "/items/:id"
component = "main"

[[trigger.http]]
route = "/items/:id/parts/:part"
component = "main"

[[trigger.http]]
route = "/api/..."
component = "main"

[[trigger.http]]
route = "/restricted/..."
component = "restricted"
"#;

fn write_app(dir: &Path, extra: &str, cron: &str) -> PathBuf {
    write_manifest(dir, ROUTES, cron, extra)
}

const NEVER: &str = "0 0 0 31 2 *";
const RUNTIME_CONFIG: &str = "[key_value_store.blobs]\ntype = \"spin\"\npath = \"blobs.db\"\n";

/// One request and the parts of its answer both hosts must agree on.
async fn probe(host: &Running, method: &str, path: &str, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Raw HTTP/1.1, so the path reaches the host exactly as written.
    let addr = host.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("none").to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    // What legitimately differs between two processes: their port and the client's port.
    let body = body.replace(&host.base, "BASE");
    let body = regex_free_client_addr(&body);
    let summary = if body.len() > 300 {
        format!("{} bytes, {} x", body.len(), body.matches('x').count())
    } else {
        body
    };
    format!("{status} [{content_type}] {summary}")
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Replaces the value of `"spin-client-addr":"127.0.0.1:PORT"`.
fn regex_free_client_addr(s: &str) -> String {
    let key = "\"spin-client-addr\":\"";
    match s.find(key) {
        Some(i) => {
            let start = i + key.len();
            let end = s[start..].find('"').map_or(s.len(), |j| start + j);
            format!("{}CLIENT{}", &s[..start], &s[end..])
        }
        None => s.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn same_answers_for_the_same_requests() {
    require_spin!();
    let dir = temp_dir("parity-answers");
    std::fs::write(dir.join("runtime-config.toml"), RUNTIME_CONFIG).unwrap();
    let manifest = write_app(&dir, "", NEVER);
    let launch = Launch {
        manifest: &manifest,
        cwd: &dir,
        args: vec![
            "--runtime-config-file".into(),
            dir.join("runtime-config.toml").display().to_string(),
            "--variable".into(),
            "token=s3cret".into(),
        ],
        env: vec![],
    };
    let spin = start(Kind::Spin, &launch, "a").await.unwrap();
    let harness = start(Kind::Harness, &launch, "a").await.unwrap();
    let requests: Vec<(&str, &str, Vec<u8>)> = vec![
        ("GET", "/exact", vec![]),
        ("GET", "/exact/", vec![]),
        ("GET", "/exact/more", vec![]),
        ("GET", "/EXACT", vec![]),
        ("GET", "/exact?q=1&r=%2F", vec![]),
        ("GET", "/items/5", vec![]),
        ("GET", "/items/5/", vec![]),
        ("GET", "/items", vec![]),
        ("GET", "/items/", vec![]),
        ("GET", "/items/5/parts/7", vec![]),
        ("GET", "/items/a%20b/headers?x=1", vec![]),
        ("GET", "/items/5/parts/7/headers", vec![]),
        ("GET", "/api", vec![]),
        ("GET", "/api/", vec![]),
        ("GET", "/api/x/y/headers?z=%41", vec![]),
        ("GET", "/api/headers", vec![]),
        ("GET", "/apix", vec![]),
        ("GET", "/nothing", vec![]),
        ("GET", "/", vec![]),
        ("GET", "//exact", vec![]),
        ("GET", "/api//x", vec![]),
        ("GET", "/items/5//parts/7", vec![]),
        ("GET", "/items//parts/7", vec![]),
        ("GET", "/items/5/parts//", vec![]),
        ("GET", "/items//parts/7/headers", vec![]),
        ("GET", "/api//x//headers", vec![]),
        ("GET", "//api/x/headers", vec![]),
        ("GET", "/api/x/headers/", vec![]),
        ("GET", "/api/../exact", vec![]),
        ("GET", "/api/%2e%2e/exact", vec![]),
        ("HEAD", "/exact", vec![]),
        ("DELETE", "/exact", vec![]),
        ("OPTIONS", "/api/x", vec![]),
        ("POST", "/api/echo", b"echo me".to_vec()),
        ("PUT", "/api/hash", vec![b'h'; 1 << 20]),
        // No request body limit on either host (the app enforces its own).
        ("PUT", "/api/hash", vec![b'h'; 64 << 20]),
        ("GET", "/api/download?size=100000", vec![]),
        ("GET", "/api/var?name=greeting", vec![]),
        ("GET", "/api/var?name=token", vec![]),
        ("GET", "/api/var?name=nope", vec![]),
        ("GET", "/api/var?name=Bad-Name", vec![]),
        ("GET", "/api/config?name=greeting", vec![]),
        ("GET", "/api/config?name=nope", vec![]),
        ("GET", "/api/kv", vec![]),
        ("GET", "/api/kv?store=nope", vec![]),
        ("GET", "/restricted/kv", vec![]),
        ("GET", "/api/sqlite", vec![]),
        ("GET", "/api/sqlite?db=other", vec![]),
        ("GET", "/restricted/sqlite", vec![]),
        ("GET", "/api/outbound?url=http://localhost:9/", vec![]),
        ("GET", "/api/trap", vec![]),
        ("GET", "/exact", vec![]),
    ];
    let mut differences = Vec::new();
    for (method, path, body) in requests {
        let a = probe(&spin, method, path, body.clone()).await;
        let b = probe(&harness, method, path, body).await;
        if a != b {
            differences.push(format!("{method} {path}\n  spin:    {a}\n  harness: {b}"));
        }
    }
    assert!(
        differences.is_empty(),
        "the harness answers differently from Spin:\n{}",
        differences.join("\n")
    );
    drop((spin, harness));
}

/// Both hosts must refuse, at start, what Spin refuses (and start what Spin starts).
#[tokio::test(flavor = "multi_thread")]
async fn same_start_up_verdicts() {
    require_spin!();
    let dir = temp_dir("parity-start");
    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, RUNTIME_CONFIG).unwrap();
    let rc_arg = rc.display().to_string();
    let with_rc = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["--runtime-config-file".to_string(), rc_arg.clone()];
        v.extend(["--variable".to_string(), "token=t".to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let bad_rc = dir.join("bad-runtime-config.toml");
    std::fs::write(&bad_rc, format!("{RUNTIME_CONFIG}[nonsense]\nx = 1\n")).unwrap();
    // (case, manifest extra, cron expression, args, refused?, phrase the harness names)
    let cases: Vec<(&str, &str, &str, Vec<String>, bool, &str)> = vec![
        ("valid app", "", NEVER, with_rc(&[]), false, ""),
        (
            "7-field cron (with a year)",
            "",
            "0 */10 * * * * *",
            with_rc(&[]),
            true,
            "ParseSchedule",
        ),
        (
            "5-field cron (no seconds)",
            "",
            "*/10 * * * *",
            with_rc(&[]),
            true,
            "ParseSchedule",
        ),
        (
            "key-value label without runtime config",
            "[component.extra]\nsource = \"http_guest.wasm\"\nkey_value_stores = [\"blobs\"]\n",
            NEVER,
            vec!["--variable".into(), "token=t".into()],
            true,
            "unknown key_value_stores label \"blobs\"",
        ),
        (
            "unknown runtime config key",
            "",
            NEVER,
            vec![
                "--runtime-config-file".into(),
                bad_rc.display().to_string(),
                "--variable".into(),
                "token=t".into(),
            ],
            true,
            "unused runtime config key(s): nonsense",
        ),
        (
            "undefined SQLite label",
            "[component.extra]\nsource = \"http_guest.wasm\"\nsqlite_databases = [\"other\"]\n",
            NEVER,
            with_rc(&[]),
            true,
            "Component extra uses database 'other'",
        ),
        (
            "required variable without a value",
            "",
            NEVER,
            vec!["--runtime-config-file".into(), rc_arg.clone()],
            true,
            "token",
        ),
        (
            "template naming an undeclared variable",
            "[component.extra]\nsource = \"http_guest.wasm\"\n[component.extra.variables]\nx = \"{{ nosuch }}\"\n",
            NEVER,
            with_rc(&[]),
            true,
            "nosuch",
        ),
        (
            "--variable naming no declared variable",
            "",
            NEVER,
            with_rc(&["--variable", "nosuch=1", "--variable", "Bad-Name=2"]),
            false,
            "",
        ),
    ];
    let mut differences = Vec::new();
    for (i, (case, extra, cron, args, refuse, phrase)) in cases.into_iter().enumerate() {
        let sub = dir.join(format!("case{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let manifest = write_app(&sub, extra, cron);
        let launch = Launch {
            manifest: &manifest,
            cwd: &sub,
            args,
            env: vec![],
        };
        for kind in [Kind::Spin, Kind::Harness] {
            let verdict = refused(kind, &launch, "s").await;
            match (&verdict, refuse) {
                (Some(log), true) if kind == Kind::Harness && !log.contains(phrase) => differences
                    .push(format!(
                        "{case}: harness refused without naming `{phrase}`: {log}"
                    )),
                (Some(_), true) | (None, false) => {}
                (Some(log), false) => differences.push(format!("{case}: {kind:?} refused: {log}")),
                (None, true) => differences.push(format!("{case}: {kind:?} started")),
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Variables come from the same sources in the same order: `--variable`, runtime-config
/// providers, `SPIN_VARIABLE_*`, `.env` in the working directory, the manifest default.
#[tokio::test(flavor = "multi_thread")]
async fn same_variable_precedence() {
    require_spin!();
    let dir = temp_dir("parity-vars");
    std::fs::write(
        dir.join("runtime-config.toml"),
        format!("{RUNTIME_CONFIG}[[variables_provider]]\ntype = \"env\"\nprefix = \"MYP\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "SPIN_VARIABLE_TOKEN=from-dotenv\n").unwrap();
    let manifest = write_app(&dir, "", NEVER);
    let rc = dir.join("runtime-config.toml").display().to_string();
    let launch = Launch {
        manifest: &manifest,
        cwd: &dir,
        args: vec!["--runtime-config-file".into(), rc],
        env: vec![
            ("MYP_GREETING", "from-provider"),
            ("SPIN_VARIABLE_GREETING", "from-env"),
        ],
    };
    let spin = start(Kind::Spin, &launch, "v").await.unwrap();
    let harness = start(Kind::Harness, &launch, "v").await.unwrap();
    for path in ["/api/var?name=greeting", "/api/var?name=token"] {
        let a = probe(&spin, "GET", path, vec![]).await;
        let b = probe(&harness, "GET", path, vec![]).await;
        assert_eq!(a, b, "{path}");
    }
    assert!(
        probe(&spin, "GET", "/api/var?name=greeting", vec![])
            .await
            .contains("from-provider there")
    );
    assert!(
        probe(&spin, "GET", "/api/var?name=token", vec![])
            .await
            .contains("from-dotenv")
    );
}

/// State written under one host is read by the other: SQLite and key-value files share
/// Spin's formats and locations.
#[tokio::test(flavor = "multi_thread")]
async fn state_carries_over_between_hosts() {
    require_spin!();
    let dir = temp_dir("parity-state");
    std::fs::write(dir.join("runtime-config.toml"), RUNTIME_CONFIG).unwrap();
    let manifest = write_app(&dir, "", NEVER);
    let rc = dir.join("runtime-config.toml").display().to_string();
    let launch = Launch {
        manifest: &manifest,
        cwd: &dir,
        args: vec![
            "--runtime-config-file".into(),
            rc,
            "--variable".into(),
            "token=t".into(),
        ],
        env: vec![],
    };
    // Spin writes: the kv sequence leaves only k2 in the store; sqlite inserts note 1.
    let spin = start(Kind::Spin, &launch, "st").await.unwrap();
    assert!(
        probe(&spin, "GET", "/api/kv", vec![])
            .await
            .starts_with("200")
    );
    assert!(
        probe(&spin, "GET", "/api/sqlite", vec![])
            .await
            .starts_with("200")
    );
    drop(spin);
    // The harness, on the same state dir (tag "st" and kind differ, so share it by hand).
    let spin_state = dir.join("state-st-Spin");
    let harness_state = dir.join("state-st-Harness");
    std::fs::rename(&spin_state, &harness_state).unwrap();
    let harness = start(Kind::Harness, &launch, "st").await.unwrap();
    let kv = rusqlite::Connection::open(harness_state.join("sqlite_key_value.db")).unwrap();
    let keys: Vec<String> = kv
        .prepare("SELECT key FROM spin_key_value WHERE store = 'default' ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        keys,
        ["k2"],
        "Spin's key-value rows, in the table the harness reads"
    );
    // The harness's second sqlite run sees Spin's row: the new note gets id 2.
    let answer = probe(&harness, "GET", "/api/sqlite", vec![]).await;
    let db = rusqlite::Connection::open(harness_state.join("sqlite_db.db")).unwrap();
    let notes: i64 = db
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert!(answer.starts_with("200"), "{answer}");
    assert_eq!(notes, 2, "one note from each host in one database");
    assert_eq!(harness.kind, Kind::Harness);
}
