//! `artifact-store`: the registry's client for producers, readers and operators.
//!
//! Design decision: the CLI is a thin, streaming client of the public HTTP API and nothing
//! else; it shares only core's validation rules with the server (so a path the server
//! would refuse is refused here, before any upload). Every file is read from disk in
//! blocks, hashed before it is sent (the digest is declared, so the server, or S3 itself,
//! checks it) and written through a temporary file on the way back. Cost: a push reads
//! each file twice (once to hash, once to send), a file sent through an upload session
//! three times (each part is hashed again for its own digest).

mod client;
mod local;
mod ops;
mod progress;
mod pull;
mod push;
mod remote;
mod session;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (the registry refused, a transfer failed, a file cannot be pushed)
  2  usage (bad flags or values, no registry URL)
  3  verification mismatch (`verify`: the directory differs from the manifest;
     `audit verify`: the chain is invalid)

Environment:
  ARTIFACT_STORE_URL    the registry, e.g. https://artifacts.example.com
  ARTIFACT_STORE_TOKEN  the bearer token (keep it in the environment, not on the command line)";

#[derive(Parser)]
#[command(
    name = "artifact-store",
    version,
    about = "Push run directories to an artifact-store registry, pull and verify packages, manage retention.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The registry's base URL.
    #[arg(long, env = "ARTIFACT_STORE_URL", global = true)]
    url: Option<String>,
    /// The bearer token (prefer the environment variable).
    #[arg(
        long,
        env = "ARTIFACT_STORE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Print one JSON document on stdout (no progress bars).
    #[arg(long, global = true)]
    json: bool,
    /// Retries of a request after 503/502/504/429 or a connection error.
    #[arg(long, default_value_t = 8, global = true)]
    retries: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Upload every file under DIR into a package (new, or --package to resume).
    Push {
        dir: PathBuf,
        #[arg(long, required_unless_present = "package")]
        name: Option<String>,
        #[arg(long, required_unless_present = "package")]
        producer: Option<String>,
        #[arg(long, required_unless_present = "package")]
        subject: Option<String>,
        /// Retention class: transient, raw-evidence, summary-evidence, release-evidence,
        /// permanent-record.
        #[arg(long, required_unless_present = "package")]
        class: Option<String>,
        /// Package metadata, repeatable.
        #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = key_value)]
        meta: Vec<(String, String)>,
        /// Finalize the package after the last upload.
        #[arg(long)]
        finalize: bool,
        /// Push into this existing package, uploading only what its file listing lacks
        /// (an upload session a crashed push left unfinished is resumed).
        #[arg(long, value_name = "ID")]
        package: Option<String>,
        /// Files uploaded at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Files larger than this go as an upload session: parts (the registry's size,
        /// 8 MiB by default), one request each, resumable after a crash (bytes, or with K,
        /// M, G, KiB, MiB, GiB; 0: never).
        #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = byte_size)]
        session_threshold: u64,
        /// Send session files straight to the registry's S3 storage with the presigned URL
        /// the registry gives (signed with the file's sha256, so storage checks every
        /// byte); the storage endpoint must be reachable from here. Registries without S3
        /// answer with ordinary parts.
        #[arg(long)]
        direct: bool,
        /// Where unfinished upload sessions are remembered for a rerun (default:
        /// $XDG_STATE_HOME/artifact-store).
        #[arg(long, env = "ARTIFACT_STORE_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Download a finalized package's files into DIR, each checked against the manifest.
    Pull {
        package: String,
        dir: PathBuf,
        /// Only the files matching this glob (`*`, `?`, `**`).
        #[arg(long = "path", value_name = "GLOB")]
        path: Option<String>,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Compare DIR with a package's manifest: missing, extra and changed files (exit 3).
    Verify { package: String, dir: PathBuf },
    /// Print a finalized package's manifest (canonical JSON).
    Manifest { package: String },
    /// List packages, newest first.
    Ls(ops::LsArgs),
    /// Show one package.
    Show { package: String },
    /// Apply a hold (operator): the package is never deleted while held.
    Hold {
        package: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a hold (operator).
    Release {
        package: String,
        hold_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Move a package's expiry later (operator).
    Extend {
        package: String,
        /// The new expiry, RFC 3339 (2028-01-31T00:00:00Z); only later than the current one.
        #[arg(long, value_name = "TIMESTAMP")]
        until: String,
        #[arg(long)]
        reason: String,
    },
    /// Run a sweep now (operator), or show what one would do.
    Sweep {
        #[arg(long)]
        dry_run: bool,
        /// Packages listed at most (dry run).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The audit log (operator).
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain (exit 3 when invalid), optionally against a checkpoint.
    Verify {
        #[arg(long, requires = "checkpoint_hash")]
        checkpoint_seq: Option<u64>,
        #[arg(long, requires = "checkpoint_seq")]
        checkpoint_hash: Option<String>,
    },
}

/// A size in bytes: a number, optionally with K, M, G (powers of 1000) or KiB, MiB, GiB
/// (powers of 1024).
fn byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a size like 64MiB, got {s:?}"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000 * 1000,
        "g" | "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// What a command ended with, beyond success or failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Exit 3.
    Mismatch,
}

/// A usage error found after parsing (a value the registry would refuse): exit 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap exits 2 for usage errors and 0 for --help and --version.
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Mismatch) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.chain().any(|c| c.is::<Usage>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let g = cli.global;
    let url = g
        .url
        .ok_or_else(|| Usage("no registry URL: set ARTIFACT_STORE_URL or pass --url".into()))?;
    let retry = client::RetryPolicy {
        retries: g.retries,
        base: Duration::from_millis(500),
        max_wait: Duration::from_secs(30),
    };
    let token = g.token.filter(|t| !t.is_empty());
    let client = client::Client::new(&url, token, retry).map_err(|e| Usage(format!("{e:#}")))?;
    let json = g.json;
    match cli.command {
        Command::Push {
            dir,
            name,
            producer,
            subject,
            class,
            meta,
            finalize,
            package,
            jobs,
            session_threshold,
            direct,
            state_dir,
        } => {
            let args = push::PushArgs {
                dir,
                name,
                producer,
                subject,
                class,
                meta,
                finalize,
                package,
                jobs: usize::from(jobs),
                state_dir,
                session_threshold,
                direct,
            };
            push::run(&client, args, json).await
        }
        Command::Pull {
            package,
            dir,
            path,
            jobs,
        } => {
            pull::pull(
                &client,
                &package,
                &dir,
                path.as_deref(),
                usize::from(jobs),
                json,
            )
            .await
        }
        Command::Verify { package, dir } => pull::verify(&client, &package, &dir, json).await,
        Command::Manifest { package } => ops::manifest(&client, &package).await,
        Command::Ls(args) => ops::ls(&client, &args, json).await,
        Command::Show { package } => ops::show(&client, &package, json).await,
        Command::Hold { package, reason } => ops::hold(&client, &package, &reason, json).await,
        Command::Release {
            package,
            hold_id,
            reason,
        } => ops::release(&client, &package, &hold_id, &reason, json).await,
        Command::Extend {
            package,
            until,
            reason,
        } => ops::extend(&client, &package, &until, &reason, json).await,
        Command::Sweep { dry_run, limit } => ops::sweep(&client, dry_run, limit, json).await,
        Command::Audit(AuditCommand::Verify {
            checkpoint_seq,
            checkpoint_hash,
        }) => ops::audit_verify(&client, checkpoint_seq, checkpoint_hash.as_deref(), json).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn push_needs_package_fields_or_an_id() {
        assert!(Cli::try_parse_from(["artifact-store", "push", "d"]).is_err());
        assert!(Cli::try_parse_from(["artifact-store", "push", "d", "--package", "p"]).is_ok());
        assert!(
            Cli::try_parse_from([
                "artifact-store",
                "push",
                "d",
                "--name",
                "n",
                "--producer",
                "p",
                "--subject",
                "s",
                "--class",
                "transient",
                "--meta",
                "a=b=c",
            ])
            .is_ok()
        );
        assert!(key_value("=x").is_err());
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("5 M"), Ok(5_000_000));
        assert_eq!(byte_size("1gib"), Ok(1 << 30));
        assert!(byte_size("MiB").is_err() && byte_size("3 parsecs").is_err());
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }
}
