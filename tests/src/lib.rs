//! Test support for the black-box suite: the real app, served by the real `harness` binary
//! as a child process, talked to over real HTTP.
//!
//! A child process (not the harness library in-process) because several tests need what
//! only a process gives: its own peak memory to measure, a kill in the middle of work, and
//! two instances side by side on one database. Each `TestApp` gets its own state dir,
//! PostgreSQL database and S3 key prefix, so tests run in parallel without seeing each
//! other.

pub mod proxy;
pub mod s3;
pub mod services;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use services::{pg_admin_url, s3_env};

/// Where metadata lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    Sqlite,
    Postgres,
}

/// Where bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {
    Kv,
    S3,
}

/// What runs `spin.toml`: the project's wasmtime host or the real Spin CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Harness,
    Spin,
}

/// One deployment shape the suite runs against.
#[derive(Debug, Clone)]
pub struct Config {
    pub metadata: Metadata,
    pub bytes: Bytes,
    pub host: Host,
    /// Extra `name=value` variables (retention rules in seconds, size limits ...).
    pub variables: Vec<(String, String)>,
    /// Serve a copy of `spin.toml` whose `[[trigger.cron]]` runs on this schedule.
    pub cron_expression: Option<String>,
    /// Environment for the harness only (its `HARNESS_*` limits); Spin ignores it.
    pub harness_env: Vec<(String, String)>,
}

impl Config {
    pub fn new(metadata: Metadata, bytes: Bytes) -> Config {
        Config {
            metadata,
            bytes,
            host: Host::Harness,
            variables: Vec::new(),
            cron_expression: None,
            harness_env: Vec::new(),
        }
    }

    /// Runs the sweeper on `expr` instead of the manifest's schedule (spin-trigger-cron
    /// takes the expression literally, so the test serves a copy of the manifest).
    pub fn cron(mut self, expr: &str) -> Config {
        self.cron_expression = Some(expr.to_string());
        self
    }

    pub fn on(mut self, host: Host) -> Config {
        self.host = host;
        self
    }

    /// Sets one of the harness's limits (`HARNESS_REQUEST_DEADLINE_SECONDS` ...).
    pub fn harness_limit(mut self, name: &str, value: impl Into<String>) -> Config {
        self.harness_env.push((name.to_string(), value.into()));
        self
    }

    pub fn var(mut self, name: &str, value: impl Into<String>) -> Config {
        self.variables.push((name.to_string(), value.into()));
        self
    }
}

/// The tokens every test app knows, by the role they carry.
#[derive(Clone)]
pub struct Tokens {
    pub operator: String,
    /// producer for `guide-board`
    pub producer: String,
    /// producer for `other-team`
    pub other_producer: String,
    /// reader of `guide-board`
    pub reader: String,
    /// reader of everything (`*`)
    pub reader_all: String,
    /// every role, every producer (`*`): for the API fuzzer, which invents producers
    pub all: String,
}

pub const PRODUCER: &str = "guide-board";
pub const OTHER_PRODUCER: &str = "other-team";

impl Tokens {
    fn new() -> Tokens {
        let t = |name: &str| format!("test_{name}_{}", uuid::Uuid::now_v7().simple());
        Tokens {
            operator: t("operator"),
            producer: t("producer"),
            other_producer: t("other"),
            reader: t("reader"),
            reader_all: t("reader_all"),
            all: t("all"),
        }
    }

    fn variable(&self) -> String {
        let entry = |token: &str, principal: &str, roles: &[&str], producers: &[&str]| {
            json!({
                "token_sha256": hex::encode(Sha256::digest(token.as_bytes())),
                "principal": principal,
                "roles": roles,
                "producers": producers,
            })
        };
        json!([
            entry(&self.operator, "ops-team", &["operator"], &[]),
            entry(&self.producer, "ci-bot", &["producer"], &[PRODUCER]),
            entry(
                &self.other_producer,
                "other-bot",
                &["producer"],
                &[OTHER_PRODUCER]
            ),
            entry(&self.reader, "auditor", &["reader"], &[PRODUCER]),
            entry(&self.reader_all, "archivist", &["reader"], &["*"]),
            entry(
                &self.all,
                "fuzzer",
                &["producer", "reader", "operator"],
                &["*"]
            ),
        ])
        .to_string()
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The `harness` binary (`ARTIFACT_STORE_HARNESS` overrides); `cargo xtask test` builds it
/// before the tests run.
pub fn harness_bin() -> PathBuf {
    std::env::var_os("ARTIFACT_STORE_HARNESS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/harness"))
}

/// The `artifact-store` CLI binary (`ARTIFACT_STORE_CLI` overrides); `cargo xtask test`
/// builds it with the other tested crates before the tests run.
pub fn cli_bin() -> PathBuf {
    std::env::var_os("ARTIFACT_STORE_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/artifact-store"))
}

/// The real Spin CLI from `../shared/spin/` (installed on first use by its `install.sh`;
/// `SPIN_BIN` overrides), or `None` when this machine has no such folder.
pub fn spin_bin() -> Result<Option<PathBuf>> {
    if let Some(bin) = std::env::var_os("SPIN_BIN") {
        return Ok(Some(PathBuf::from(bin)));
    }
    static BIN: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    BIN.get_or_init(|| install_spin().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn install_spin() -> Result<Option<PathBuf>> {
    let script = repo_root().join("../shared/spin/install.sh");
    if !script.exists() {
        return Ok(None);
    }
    let text = services::run_shared_script(&script)?;
    let bin = text
        .lines()
        .find_map(|l| l.strip_prefix("SPIN_BIN="))
        .context("install.sh printed no SPIN_BIN")?;
    Ok(Some(PathBuf::from(bin)))
}

/// The runtime config every test app gets, for either host: Spin refuses to start an app
/// whose `blobs` key-value store is undefined, and so does the harness.
pub const RUNTIME_CONFIG: &str = "[key_value_store.blobs]\ntype = \"spin\"\npath = \"blobs.db\"\n";

/// A running app: a `harness up` or `spin up` child process serving `spin.toml`.
pub struct TestApp {
    pub config: Config,
    pub tokens: Tokens,
    pub base_url: String,
    pub state_dir: PathBuf,
    pub http: reqwest::Client,
    /// The PostgreSQL database of this app (metadata = postgres).
    pub pg_database: Option<String>,
    /// The S3 key prefix of this app (bytes = s3).
    pub s3_prefix: Option<String>,
    /// Whether dropping this app removes the prefix's objects (a sibling shares them).
    owns_s3_prefix: bool,
    child: Option<Child>,
    vars: Vec<(String, String)>,
}

impl TestApp {
    /// Starts an app, or `None` (with the reason printed) when its S3 server is not available
    /// and `ARTIFACT_STORE_NO_S3` says that is expected.
    pub async fn start(config: Config) -> Result<Option<TestApp>> {
        let tokens = Tokens::new();
        let state_dir = std::env::temp_dir().join(format!(
            "artifact-store-test-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&state_dir)?;
        if config.host == Host::Spin && spin_bin()?.is_none() {
            skip("no ../shared/spin/ on this machine, so no real Spin to run");
            return Ok(None);
        }
        std::fs::write(state_dir.join("runtime-config.toml"), RUNTIME_CONFIG)?;
        let mut vars = vec![("auth_tokens".to_string(), tokens.variable())];
        let mut pg_database = None;
        let mut s3_prefix = None;
        if config.metadata == Metadata::Postgres {
            let db = services::create_pg_database().await?;
            vars.push(("metadata_store".into(), "postgres".into()));
            vars.push(("postgres_url".into(), services::pg_url(&db)));
            vars.push(("postgres_host".into(), "postgres://127.0.0.1:5432".into()));
            pg_database = Some(db);
        }
        if config.bytes == Bytes::S3 {
            let Some(env) = s3_env()? else {
                return Ok(None);
            };
            let prefix = format!("t-{}/", uuid::Uuid::now_v7().simple());
            vars.extend(env.variables(&prefix));
            vars.push(("default_backend".into(), "s3".into()));
            s3_prefix = Some(prefix);
        }
        vars.extend(config.variables.iter().cloned());
        let mut app = TestApp {
            config,
            tokens,
            base_url: String::new(),
            state_dir,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            pg_database,
            s3_prefix,
            owns_s3_prefix: true,
            child: None,
            vars,
        };
        app.spawn().await?;
        Ok(Some(app))
    }

    /// Starts the host on a fresh port (first start, or after `kill`).
    pub async fn spawn(&mut self) -> Result<()> {
        let manifest = self.manifest()?;
        let port = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.join("host.log"))?;
        let mut cmd = match self.config.host {
            Host::Harness => {
                let bin = harness_bin();
                if !bin.exists() {
                    bail!(
                        "{} is missing: run the suite with `cargo xtask test` (it builds the harness and the components)",
                        bin.display()
                    );
                }
                let mut cmd = Command::new(bin);
                // One compile cache for every test app: components compile once per run.
                cmd.env("HARNESS_CACHE_DIR", target_dir().join("harness-cache"));
                cmd.envs(self.config.harness_env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Host::Spin => Command::new(spin_bin()?.context("no Spin CLI")?),
        };
        // Its own process group, so `kill` also ends the trigger processes Spin starts.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.current_dir(repo_root())
            .args(["up", "--from"])
            .arg(&manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--runtime-config-file")
            .arg(self.state_dir.join("runtime-config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in &self.vars {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        self.child = Some(cmd.spawn().context("starting the host")?);
        self.base_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                bail!("host exited ({status}):\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("host not healthy after 180 s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A second instance of the same deployment (same variables, tokens, database and
    /// bucket prefix) in its own process and state dir: a shared deployment.
    pub async fn sibling(&self) -> Result<TestApp> {
        let state_dir = std::env::temp_dir().join(format!(
            "artifact-store-test-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&state_dir)?;
        std::fs::write(state_dir.join("runtime-config.toml"), RUNTIME_CONFIG)?;
        let mut app = TestApp {
            config: self.config.clone(),
            tokens: self.tokens.clone(),
            base_url: String::new(),
            state_dir,
            http: self.http.clone(),
            // The first instance owns (and drops) the database.
            pg_database: None,
            s3_prefix: self.s3_prefix.clone(),
            owns_s3_prefix: false,
            child: None,
            vars: self.vars.clone(),
        };
        app.spawn().await?;
        Ok(app)
    }

    /// `spin.toml`, or a copy of it beside it in `target/` with the test's cron schedule.
    fn manifest(&self) -> Result<PathBuf> {
        let root = repo_root();
        let Some(expr) = &self.config.cron_expression else {
            return Ok(root.join("spin.toml"));
        };
        let text = std::fs::read_to_string(root.join("spin.toml"))?;
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("cron_expression") {
                out.push_str(&format!("cron_expression = \"{expr}\"\n"));
            } else if let Some(rest) = line.strip_prefix("source = \"") {
                out.push_str(&format!("source = \"{}/{rest}\n", root.display()));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        let path = self.state_dir.join("spin.toml");
        std::fs::write(&path, out)?;
        Ok(path)
    }

    /// Kills the host's process group at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The harness process's current resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmRSS:")
    }

    /// Resets the harness process's peak RSS (VmHWM) to its current RSS, so a later
    /// `peak_rss_kib` measures only what came after (Linux `clear_refs`, value 5).
    pub fn reset_peak_rss(&self) -> Result<()> {
        let pid = self.pid().context("harness not running")?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .context("resetting the peak RSS (needs Linux clear_refs)")
    }

    /// The harness process's peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmHWM:")
    }

    pub fn log_tail(&self) -> String {
        let mut text = std::fs::read_to_string(self.state_dir.join("host.log")).unwrap_or_default();
        // Spin writes component output under <state dir>/logs/.
        if let Ok(dir) = std::fs::read_dir(self.state_dir.join("logs")) {
            for entry in dir.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The app's SQLite metadata database (metadata = sqlite).
    pub fn sqlite_path(&self) -> PathBuf {
        self.state_dir.join("sqlite_db.db")
    }

    /// The `blobs` key-value store's file (`RUNTIME_CONFIG`), in Spin's format: table
    /// `spin_key_value (store, key, value)`.
    pub fn blobs_path(&self) -> PathBuf {
        self.state_dir.join("blobs.db")
    }

    /// Bytes held in kv chunk entries (`<key>/c/<n>`), read from the store's file.
    pub fn kv_chunk_bytes(&self) -> Result<u64> {
        let conn = rusqlite::Connection::open(self.blobs_path())?;
        let n: i64 = conn.query_row(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM spin_key_value \
             WHERE store = 'blobs' AND key LIKE '%/c/%'",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    // --- requests ---------------------------------------------------------------------

    pub fn req(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut b = self.http.request(method, self.url(path));
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        b
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Result<(u16, Value)> {
        let r = self
            .req(reqwest::Method::GET, Some(token), path)
            .send()
            .await?;
        read_json(r).await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .req(reqwest::Method::POST, Some(token), path)
            .json(body)
            .send()
            .await?;
        read_json(r).await
    }

    /// Creates a `guide-board` package as the producer and returns its JSON.
    pub async fn create_package(&self, name: &str, class: &str) -> Result<Value> {
        self.create_package_as(&self.tokens.producer, PRODUCER, name, class, json!({}))
            .await
    }

    pub async fn create_package_as(
        &self,
        token: &str,
        producer: &str,
        name: &str,
        class: &str,
        metadata: Value,
    ) -> Result<Value> {
        let (status, body) = self
            .post_json(
                token,
                "/packages",
                &json!({"name": name, "producer": producer, "subject": "run 42",
                        "retention_class": class, "metadata": metadata}),
            )
            .await?;
        if status != 201 {
            bail!("create package: {status} {body}\n{}", self.log_tail());
        }
        Ok(body)
    }

    /// Raw PUT upload of `bytes` to `path` in package `id`.
    pub async fn put_file(
        &self,
        token: &str,
        id: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let r = self
            .req(
                reqwest::Method::PUT,
                Some(token),
                &format!("/packages/{id}/files/{path}"),
            )
            .header("content-type", media_type_for(path))
            .header("x-artifact-sha256", sha256_hex(&bytes))
            .body(bytes)
            .send()
            .await?;
        read_json(r).await
    }

    /// Multipart upload (the contract's POST form) of `bytes` to `path` in package `id`.
    pub async fn post_file(
        &self,
        token: &str,
        id: &str,
        path: &str,
        bytes: Vec<u8>,
        sha256: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut fields = vec![
            ("relative_path", path.to_string()),
            ("media_type", media_type_for(path).to_string()),
        ];
        if let Some(d) = sha256 {
            fields.push(("sha256", d.to_string()));
        }
        self.post_form(token, id, &fields, &bytes).await
    }

    /// `POST /packages/{id}/files` with the text parts `fields`, in order, then the `file`
    /// part holding `bytes`.
    pub async fn post_form(
        &self,
        token: &str,
        id: &str,
        fields: &[(&str, String)],
        bytes: &[u8],
    ) -> Result<(u16, Value)> {
        let boundary = format!("b{}", uuid::Uuid::now_v7().simple());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = self
            .req(
                reqwest::Method::POST,
                Some(token),
                &format!("/packages/{id}/files"),
            )
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await?;
        read_json(r).await
    }

    /// Sends one request over a plain TCP connection, exactly as written (no client-side
    /// URL normalization), and returns the status and JSON body.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(u16, Value)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base_url.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(body).await?;
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).await?;
        let text = String::from_utf8_lossy(&reply);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let json = text
            .find("\r\n\r\n")
            .map(|i| &text[i + 4..])
            .and_then(|b| b.find('{').map(|j| &b[j..]))
            .and_then(|b| {
                serde_json::Deserializer::from_str(b)
                    .into_iter::<Value>()
                    .next()
            })
            .and_then(|r| r.ok())
            .unwrap_or(Value::Null);
        Ok((status, json))
    }

    pub async fn finalize(&self, token: &str, id: &str) -> Result<(u16, Value)> {
        self.post_json(token, &format!("/packages/{id}/finalize"), &json!({}))
            .await
    }

    /// Downloads a file and returns (status, body bytes).
    /// Replaces the stored bytes of `original` with `stored`, without the self.
    pub fn tamper_stored(&self, original: &[u8], stored: &[u8]) -> Result<()> {
        let digest = sha256_hex(original);
        match self.config.bytes {
            Bytes::S3 => {
                let env = s3_env()?.context("s3")?;
                let key = content_key(self.s3_prefix.as_ref().unwrap(), &digest);
                s3::put_object(&env, &key, stored)
            }
            Bytes::Kv => {
                // The object's 1 MiB chunks, in order, wherever its meta says they are.
                let conn = rusqlite::Connection::open(self.blobs_path())?;
                let meta: Vec<u8> = conn.query_row(
                    "SELECT value FROM spin_key_value WHERE store = 'blobs' AND key = ?1",
                    [content_key("", &digest)],
                    |r| r.get(0),
                )?;
                let meta: serde_json::Value = serde_json::from_slice(&meta)?;
                let base = meta["chunks_at"].as_str().context("a promoted object")?;
                let chunk = meta["chunk_size"].as_u64().context("chunk_size")? as usize;
                for (n, piece) in stored.chunks(chunk).enumerate() {
                    let changed = conn.execute(
                        "UPDATE spin_key_value SET value = ?1 WHERE store = 'blobs' AND key = ?2",
                        rusqlite::params![piece, format!("{base}/c/{n}")],
                    )?;
                    anyhow::ensure!(changed == 1, "chunk {n} of {base}");
                }
                Ok(())
            }
        }
    }

    pub async fn download(&self, token: &str, file_id: &str) -> Result<(u16, Vec<u8>)> {
        let r = self
            .req(
                reqwest::Method::GET,
                Some(token),
                &format!("/files/{file_id}/download"),
            )
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await?.to_vec()))
    }

    /// Runs a sweep now through the admin endpoint.
    pub async fn sweep(&self) -> Result<Value> {
        let (status, body) = self
            .post_json(&self.tokens.operator, "/admin/sweeps", &json!({}))
            .await?;
        if status != 200 {
            bail!("sweep: {status} {body}\n{}", self.log_tail());
        }
        Ok(body)
    }

    /// Audit events of a package, oldest first.
    pub async fn audit_types(&self, package_id: &str) -> Result<Vec<String>> {
        let mut types = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/audit?package_id={package_id}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get_json(&self.tokens.operator, &path).await?;
            if status != 200 {
                bail!("audit list: {status} {body}");
            }
            for e in body["items"].as_array().context("items")? {
                types.push(e["event_type"].as_str().unwrap_or_default().to_string());
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        // The list is newest first; the chain reads oldest first.
        types.reverse();
        Ok(types)
    }

    /// A download with a `Range` header: status, `Content-Range` (when sent) and body.
    pub async fn download_range(
        &self,
        token: &str,
        file_id: &str,
        range: &str,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        let r = self
            .req(
                reqwest::Method::GET,
                Some(token),
                &format!("/files/{file_id}/download"),
            )
            .header("range", range)
            .send()
            .await?;
        let status = r.status().as_u16();
        let content_range = r
            .headers()
            .get("content-range")
            .map(|v| v.to_str().map(str::to_string))
            .transpose()?;
        Ok((status, content_range, r.bytes().await?.to_vec()))
    }

    /// The package's audit events of one type, oldest first (one page: tests make few).
    pub async fn audit_events(&self, package_id: &str, event_type: &str) -> Result<Vec<Value>> {
        let path = format!("/audit?package_id={package_id}&event_type={event_type}&limit=1000");
        let (status, body) = self.get_json(&self.tokens.operator, &path).await?;
        if status != 200 {
            bail!("audit list: {status} {body}");
        }
        let mut events = body["items"].as_array().context("items")?.clone();
        events.reverse();
        Ok(events)
    }

    pub async fn verify_audit(&self) -> Result<Value> {
        let (status, body) = self
            .get_json(&self.tokens.operator, "/audit/verify")
            .await?;
        if status != 200 {
            bail!("audit verify: {status} {body}");
        }
        Ok(body)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if let Some(db) = &self.pg_database {
            services::drop_pg_database(db);
        }
        if std::env::var_os("ARTIFACT_STORE_KEEP_STATE").is_none() {
            let _ = std::fs::remove_dir_all(&self.state_dir);
            // Run after run, leftovers would fill the test server's disk (a full Ceph OSD
            // blocks every write: a rehearsal hung on it).
            if self.owns_s3_prefix
                && let Some(prefix) = &self.s3_prefix
                && let Ok(Some(env)) = s3_env()
            {
                s3::remove_prefix(&env, prefix);
            }
        }
    }
}

/// Status and JSON body (`Value::Null` when the body is not JSON).
pub async fn read_json(r: reqwest::Response) -> Result<(u16, Value)> {
    let status = r.status().as_u16();
    let bytes = r.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The contract's content address of `digest` under `prefix`:
/// `<prefix>sha256/<aa>/<bb>/<digest>`, written here once, independently of the code.
pub fn content_key(prefix: &str, digest: &str) -> String {
    format!("{prefix}sha256/{}/{}/{digest}", &digest[..2], &digest[2..4])
}

/// Canonical JSON as the contract defines it for digests (object keys sorted by their bytes,
/// no whitespace, strings escaped as JSON does), written here independently of
/// `artifact_store_core::canonical`, so a digest the app claims is checked, not recomputed
/// by the same code. Keys are sorted here, not left to serde_json's map order.
pub fn canonical_json(value: &Value) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                // `String`'s order is its UTF-8 bytes' order.
                let sorted: std::collections::BTreeMap<&String, &Value> = map.iter().collect();
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(k, out);
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn media_type_for(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("md") => "text/markdown",
        Some("log") | Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Deterministic pseudo-random bytes (xorshift), so big test files need no storage.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let f = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
}

/// The `id` field of a JSON answer.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// Starts a `TestApp` in a scenario, or ends the scenario with `Ok(())` when its S3 server
/// is switched off (`ARTIFACT_STORE_NO_S3`).
#[macro_export]
macro_rules! start {
    ($cfg:expr) => {
        match $crate::TestApp::start($cfg).await? {
            Some(app) => app,
            None => return Ok(()),
        }
    };
}

/// Records that the running test skips its body, and why. libtest counts such a test as
/// passed, so the skip is also appended to the file `ARTIFACT_STORE_SKIP_LOG` names (set
/// by `cargo xtask test`, which counts skips in its summary and fails on any under CI).
/// The test's name is its thread's: libtest names each test's thread, and a tokio test's
/// body runs on it.
pub fn skip(reason: &str) {
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

/// Runs a scenario on one deployment shape; a failure panics with the whole error chain.
pub async fn run_scenario<F, Fut>(scenario: F, metadata: Metadata, bytes: Bytes, host: Host)
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if let Err(e) = scenario(Config::new(metadata, bytes).on(host)).await {
        panic!("{e:#}");
    }
}

/// One test module per deployment shape, one test per scenario of module `$scenarios`:
/// `suite!(scenarios; sqlite_kv => (Sqlite, Kv, Harness), ...; [pilot_flow, ...]);`
#[macro_export]
macro_rules! suite {
    ($scenarios:ident; $($shape:ident => ($meta:ident, $bytes:ident, $host:ident)),* ; $names:tt) => {
        $( $crate::suite!(@shape $scenarios, $shape, $meta, $bytes, $host, $names); )*
    };
    (@shape $scenarios:ident, $shape:ident, $meta:ident, $bytes:ident, $host:ident, [$($name:ident),* $(,)?]) => {
        mod $shape {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::run_scenario(
                        super::$scenarios::$name,
                        $crate::Metadata::$meta,
                        $crate::Bytes::$bytes,
                        $crate::Host::$host,
                    )
                    .await
                }
            )*
        }
    };
}

/// Asserts a problem+json answer: its status and stable `code`.
#[track_caller]
pub fn assert_problem(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "status, body: {}", got.1);
    assert_eq!(got.1["code"], code, "code, body: {}", got.1);
    assert_eq!(got.1["status"], status, "problem status field: {}", got.1);
}
