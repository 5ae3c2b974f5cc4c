//! Shared by the harness's integration tests: the guest fixtures (a separate cargo
//! workspace built once per test binary with `cargo build --release --target
//! wasm32-wasip2` into `<repo>/target/fixtures`), scratch directories and the test manifest.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct Fixtures {
    pub http: PathBuf,
    pub cron: PathBuf,
    pub redis: PathBuf,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let target = repo_root().join("target/fixtures");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("running cargo for fixtures");
        assert!(status.success(), "building test fixtures failed");
        let out = target.join("wasm32-wasip2/release");
        Fixtures {
            http: out.join("http_guest.wasm"),
            cron: out.join("cron_guest.wasm"),
            redis: out.join("redis_guest.wasm"),
        }
    })
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target/harness-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The routes of the harness tests' app: a catch-all, an exact route, a parameter and
/// two wildcards.
pub const ROUTES: &str = r#"
[[trigger.http]]
route = "/..."
component = "main"

[[trigger.http]]
route = "/exact"
component = "exact"

[[trigger.http]]
route = "/items/:id"
component = "main"

[[trigger.http]]
route = "/api/..."
component = "main"

[[trigger.http]]
route = "/restricted/..."
component = "restricted"
"#;

pub fn manifest(dir: &Path, cron_expr: &str) -> PathBuf {
    write_manifest(dir, ROUTES, cron_expr, "")
}

/// The fixture app in `dir`: the `main`, `exact` and `restricted` HTTP components (one
/// guest) on `routes` (`[[trigger.http]]` tables), the `cron` component on `cron_expr`,
/// and `extra` manifest text appended.
pub fn write_manifest(dir: &Path, routes: &str, cron_expr: &str, extra: &str) -> PathBuf {
    let f = fixtures();
    // Sources are relative to the manifest directory, as in Spin.
    std::fs::copy(&f.http, dir.join("http_guest.wasm")).unwrap();
    std::fs::copy(&f.cron, dir.join("cron_guest.wasm")).unwrap();
    let text = format!(
        r#"spin_manifest_version = 2

[application]
name = "harness-test"

[variables]
greeting = {{ default = "hi" }}
token = {{ required = true, secret = true }}
host_pattern = {{ default = "http://127.0.0.1:*" }}
{routes}
[[trigger.cron]]
component = "cron"
cron_expression = "{cron_expr}"

[component.main]
source = "http_guest.wasm"
allowed_outbound_hosts = ["{{{{ host_pattern }}}}", "postgres://127.0.0.1:5432"]
sqlite_databases = ["default"]
key_value_stores = ["default"]
environment = {{ FOO = "bar" }}

[component.main.variables]
greeting = "{{{{ greeting }}}} there"
token = "{{{{ token }}}}"

[component.exact]
source = "http_guest.wasm"

[component.restricted]
source = "http_guest.wasm"

[component.cron]
source = "cron_guest.wasm"
sqlite_databases = ["default"]
{extra}"#
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}
