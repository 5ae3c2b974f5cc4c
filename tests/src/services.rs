//! The real services behind a test app: a PostgreSQL database per app and the S3 server
//! `cargo xtask test` started (its `S3_*` variables), or one started here when the suite is
//! run by hand.

use anyhow::{Context, Result, bail};
use std::process::Command;
use std::sync::OnceLock;

pub fn pg_admin_url() -> String {
    std::env::var("ARTIFACT_STORE_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// The URL the app receives in its `postgres_url` variable. `sslmode=disable`: the local
/// server's certificate is a self-signed one Spin's client refuses to verify (Spin then
/// fails every connection), and the harness speaks no TLS at all.
pub fn pg_url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable")
}

pub async fn create_pg_database() -> Result<String> {
    let db = format!("as_test_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL on 127.0.0.1:5432 (is it running?)")?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    Ok(db)
}

pub fn drop_pg_database(db: &str) {
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
        ])
        .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .output();
}

/// The S3 server's coordinates, as printed by `../shared/s3/start-*.sh`.
#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
}

impl S3Env {
    /// The app variables that point the s3 backend at this server under `prefix`.
    pub fn variables(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("s3_endpoint".into(), self.endpoint.clone()),
            ("s3_bucket".into(), self.bucket.clone()),
            ("s3_region".into(), self.region.clone()),
            ("s3_access_key_id".into(), self.access_key.clone()),
            ("s3_secret_access_key".into(), self.secret_key.clone()),
            ("s3_key_prefix".into(), prefix.to_string()),
        ]
    }
}

/// `None` when `ARTIFACT_STORE_NO_S3` is set; otherwise the server from the environment,
/// or Ceph RGW started through `../shared/s3/start-ceph.sh`.
/// The S3 server's settings, or `None` (the calling test is recorded as skipped) when
/// `ARTIFACT_STORE_NO_S3` says there is none.
pub fn s3_env() -> Result<Option<S3Env>> {
    if std::env::var_os("ARTIFACT_STORE_NO_S3").is_some() {
        crate::skip("no S3 server (ARTIFACT_STORE_NO_S3 is set)");
        return Ok(None);
    }
    static ENV: OnceLock<Result<S3Env, String>> = OnceLock::new();
    ENV.get_or_init(|| load_s3_env().map_err(|e| format!("{e:#}")))
        .clone()
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

fn load_s3_env() -> Result<S3Env> {
    let from_env = |k: &str| std::env::var(k).ok();
    if let (Some(endpoint), Some(access_key), Some(secret_key), Some(bucket)) = (
        from_env("S3_ENDPOINT"),
        from_env("S3_ACCESS_KEY"),
        from_env("S3_SECRET_KEY"),
        from_env("S3_BUCKET"),
    ) {
        let region = from_env("S3_REGION").unwrap_or_else(|| "us-east-1".into());
        return Ok(S3Env {
            endpoint,
            access_key,
            secret_key,
            bucket,
            region,
        });
    }
    let text = run_shared_script(&crate::repo_root().join("../shared/s3/start-ceph.sh"))?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
            .with_context(|| format!("{k} missing from start-ceph.sh output"))
    };
    Ok(S3Env {
        endpoint: get("S3_ENDPOINT")?,
        access_key: get("S3_ACCESS_KEY")?,
        secret_key: get("S3_SECRET_KEY")?,
        bucket: get("S3_BUCKET")?,
        region: get("S3_REGION")?,
    })
}

/// Runs one of `../shared`'s set-up scripts (they print `NAME=value` lines on stdout).
pub fn run_shared_script(script: &std::path::Path) -> Result<String> {
    let out = Command::new("bash")
        .arg(script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
