//! `push DIR`: one package from a directory.
//!
//! Order of work, so nothing is uploaded before every problem is known: walk the directory
//! (symlinks, unreadable files and paths the server's rule refuses are all reported, and
//! the push stops), hash every file (streamed, `--jobs` at a time), create the package (or
//! take `--package`), learn what it already holds, then upload only what is missing,
//! `--jobs` files at a time, each as a raw `PUT` with `Content-Length` and
//! `x-artifact-sha256` (the form that takes the S3 fast path), streamed from disk.
//!
//! Resuming (`--package ID`): what the package holds comes from the registry when the
//! token may read it (the audit log's `file_uploaded` events, or the manifest of a
//! finalized package), and otherwise from this machine's journal of earlier pushes (one
//! line per file the registry acknowledged, under the state dir). A file the registry
//! holds with another sha256 stops the push before any upload. Whatever neither source
//! knows is uploaded; if the registry answers `duplicate_path`, the file is counted as
//! already there (its digest unverified, with a warning).

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

use crate::client::{Client, api_error, check, encode_path};
use crate::local::{self, LocalFile};
use crate::progress::Progress;
use crate::remote::{self, RemoteFile};
use crate::{Outcome, Usage};

pub struct PushArgs {
    pub dir: PathBuf,
    pub name: Option<String>,
    pub producer: Option<String>,
    pub subject: Option<String>,
    pub class: Option<String>,
    pub meta: Vec<(String, String)>,
    pub finalize: bool,
    pub package: Option<String>,
    pub jobs: usize,
    pub state_dir: Option<PathBuf>,
}

/// A local file with its digest.
#[derive(Debug, Clone)]
struct Hashed {
    file: LocalFile,
    sha256: String,
}

/// How one file got into the package.
enum Upload {
    Sent,
    /// `duplicate_path` on the first attempt: someone (an earlier run) already put it.
    FoundUnverified,
}

pub async fn run(client: &Client, args: PushArgs, json_out: bool) -> Result<Outcome> {
    let new_package = match &args.package {
        Some(_) => None,
        None => Some(new_package_body(&args)?),
    };
    let (files, problems) = local::walk(&args.dir)?;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("cannot push {}: {}", p.path, p.why);
        }
        bail!(
            "{} file(s) in {} cannot be pushed; nothing was uploaded",
            problems.len(),
            args.dir.display()
        );
    }
    let draw = crate::progress::wanted(json_out);
    let total: u64 = files.iter().map(|f| f.size).sum();
    let hashed = hash_all(files, args.jobs, draw, total).await?;

    let (package_id, status) = match (&args.package, new_package) {
        (Some(id), _) => {
            let p = client
                .get_json(&format!("/packages/{}", encode_path(id)))
                .await
                .with_context(|| format!("reading package {id}"))?;
            (id.clone(), p["status"].as_str().unwrap_or("").to_string())
        }
        (None, Some(body)) => {
            let p = client
                .post_json("/packages", &body)
                .await
                .context("creating the package")?;
            let id = p["id"].as_str().context("no id in the answer")?.to_string();
            eprintln!("created package {id} (resume with --package {id})");
            (id, "open".to_string())
        }
        (None, None) => unreachable!("a new package's body is built when --package is absent"),
    };

    let journal = Journal::open(args.state_dir.as_deref(), &package_id);
    let known = match status.as_str() {
        _ if args.package.is_none() => Some(BTreeMap::new()),
        "open" => remote::uploaded_files(client, &package_id).await?,
        _ => Some(remote::manifest_files(
            &remote::manifest(client, &package_id).await?,
        )),
    };
    let listed = known.is_some();
    let journaled = journal.entries();
    let mut held = journaled.clone();
    held.extend(known.unwrap_or_default());
    // What the registry confirmed goes into the journal too, so a later run with a token
    // that cannot list the package still knows it.
    for h in &hashed {
        let path = &h.file.relative_path;
        if !journaled.contains_key(path) && held.get(path).is_some_and(|r| r.sha256 == h.sha256) {
            journal.record(path, &h.sha256, h.file.size);
        }
    }

    let mut conflicts = Vec::new();
    let mut missing = Vec::new();
    for h in hashed.iter() {
        match held.get(&h.file.relative_path) {
            Some(r) if r.sha256 == h.sha256 => {}
            Some(r) => conflicts.push(format!(
                "{}: the package holds sha256 {}, the local file is {}",
                h.file.relative_path, r.sha256, h.sha256
            )),
            None => missing.push(h.clone()),
        }
    }
    if !conflicts.is_empty() {
        for c in &conflicts {
            eprintln!("conflict: {c}");
        }
        bail!(
            "{} file(s) differ from what package {package_id} already holds; nothing was uploaded",
            conflicts.len()
        );
    }
    if !missing.is_empty() && status != "open" {
        bail!(
            "package {package_id} is {status} and lacks {} of the local files (first: {})",
            missing.len(),
            missing[0].file.relative_path
        );
    }
    if !listed && args.package.is_some() && !json_out {
        eprintln!(
            "note: this token may not list the package's files; using this machine's journal ({} known)",
            journal.len()
        );
    }

    let present = hashed.len() - missing.len();
    let missing_bytes: u64 = missing.iter().map(|h| h.file.size).sum();
    let progress = Progress::new(draw, "upload", missing_bytes, missing.len() as u64);
    let unverified = AtomicUsize::new(0);
    let bytes_sent = AtomicU64::new(0);
    futures::stream::iter(missing.iter().map(Ok))
        .try_for_each_concurrent(args.jobs.max(1), |h| {
            let (progress, journal, unverified, bytes_sent) =
                (&progress, &journal, &unverified, &bytes_sent);
            let package_id = &package_id;
            async move {
                let how = upload(client, package_id, h, progress)
                    .await
                    .with_context(|| format!("uploading {}", h.file.relative_path))?;
                match how {
                    Upload::Sent => {
                        bytes_sent.fetch_add(h.file.size, Ordering::Relaxed);
                        journal.record(&h.file.relative_path, &h.sha256, h.file.size);
                    }
                    Upload::FoundUnverified => {
                        unverified.fetch_add(1, Ordering::Relaxed);
                        progress.bytes.inc(h.file.size);
                        progress.bytes.println(format!(
                            "warning: {} was already in the package (digest not verifiable with this token)",
                            h.file.relative_path
                        ));
                    }
                }
                progress.files.inc(1);
                anyhow::Ok(())
            }
        })
        .await?;
    progress.finish();
    let unverified = unverified.into_inner();
    let uploaded = missing.len() - unverified;

    let mut status = status;
    let mut manifest_sha256 = Value::Null;
    if args.finalize {
        let p = client
            .post_json(
                &format!("/packages/{}/finalize", encode_path(&package_id)),
                &json!({}),
            )
            .await
            .context("finalizing the package")?;
        status = p["status"].as_str().unwrap_or("finalized").to_string();
        let m = remote::manifest(client, &package_id).await?;
        let from_manifest = remote::manifest_files(&m);
        let absent: Vec<_> = hashed
            .iter()
            .filter(|h| {
                from_manifest
                    .get(&h.file.relative_path)
                    .is_none_or(|r| r.sha256 != h.sha256)
            })
            .map(|h| h.file.relative_path.clone())
            .collect();
        if !absent.is_empty() {
            bail!("the manifest of {package_id} does not match the local files: {absent:?}");
        }
        manifest_sha256 = m["manifest_sha256"].clone();
    } else if status != "open" {
        manifest_sha256 = remote::manifest(client, &package_id).await?["manifest_sha256"].clone();
    }

    let summary = json!({
        "package_id": package_id,
        "status": status,
        "files": hashed.len(),
        "uploaded": uploaded,
        "already_present": present + unverified,
        "unverified": unverified,
        "bytes_uploaded": bytes_sent.into_inner(),
        "manifest_sha256": manifest_sha256,
    });
    if json_out {
        println!("{summary}");
    } else {
        println!("package {package_id}");
        println!("status {status}");
        println!(
            "files {} ({uploaded} uploaded, {} already present)",
            hashed.len(),
            present + unverified
        );
        match manifest_sha256.as_str() {
            Some(d) => println!("manifest_sha256 {d}"),
            None => println!("manifest_sha256 - (open: finalize with --finalize)"),
        }
    }
    Ok(Outcome::Ok)
}

/// The `POST /packages` body, checked by the server's own rules first (a bad value is a
/// usage error, found before any file is read).
fn new_package_body(args: &PushArgs) -> Result<Value> {
    use artifact_store_core::validate;
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| Usage(format!("{flag} is required without --package")))
    };
    let name = need(&args.name, "--name")?;
    let producer = need(&args.producer, "--producer")?;
    let subject = need(&args.subject, "--subject")?;
    let class = need(&args.class, "--class")?;
    let usage = |e: artifact_store_core::error::DomainError| Usage(e.detail);
    validate::package_name(&name).map_err(usage)?;
    validate::producer(&producer).map_err(usage)?;
    validate::subject(&subject).map_err(usage)?;
    validate::retention_class(&class).map_err(usage)?;
    let metadata: serde_json::Map<String, Value> = args
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let metadata = Value::Object(metadata);
    validate::metadata(Some(&metadata)).map_err(usage)?;
    Ok(json!({
        "name": name,
        "producer": producer,
        "subject": subject,
        "retention_class": class,
        "metadata": metadata,
    }))
}

async fn hash_all(
    files: Vec<LocalFile>,
    jobs: usize,
    draw: bool,
    total: u64,
) -> Result<Vec<Hashed>> {
    let progress = Progress::new(draw, "hash", total, files.len() as u64);
    let mut hashed: Vec<Hashed> = futures::stream::iter(files.into_iter().map(|file| {
        let progress = progress.clone();
        async move {
            let path = file.path.clone();
            let bytes = progress.bytes.clone();
            let (sha256, len) =
                tokio::task::spawn_blocking(move || local::hash_file(&path, &|n| bytes.inc(n)))
                    .await??;
            progress.files.inc(1);
            anyhow::ensure!(
                len == file.size,
                "{} changed while it was read",
                file.relative_path
            );
            anyhow::Ok(Hashed { file, sha256 })
        }
    }))
    .buffer_unordered(jobs.max(1))
    .try_collect()
    .await?;
    progress.bytes.finish_and_clear();
    progress.files.finish_and_clear();
    hashed.sort_by(|a, b| a.file.relative_path.cmp(&b.file.relative_path));
    Ok(hashed)
}

/// One raw `PUT`, the body streamed from disk (reopened for every attempt).
async fn upload(
    client: &Client,
    package_id: &str,
    h: &Hashed,
    progress: &Progress,
) -> Result<Upload> {
    let path = format!(
        "/packages/{}/files/{}",
        encode_path(package_id),
        encode_path(&h.file.relative_path)
    );
    let counted = Arc::new(AtomicU64::new(0));
    let mut attempts = 0u32;
    let resp = client
        .send(|| {
            attempts += 1;
            // Bytes of a failed attempt leave the bar again.
            progress.bytes.dec(counted.swap(0, Ordering::Relaxed));
            let file = std::fs::File::open(&h.file.path)
                .with_context(|| format!("opening {}", h.file.path.display()))?;
            let len = file.metadata()?.len();
            anyhow::ensure!(
                len == h.file.size,
                "{} changed since it was hashed",
                h.file.relative_path
            );
            let body = file_body(
                tokio::fs::File::from_std(file),
                progress.bytes.clone(),
                counted.clone(),
            );
            Ok(client
                .request(reqwest::Method::PUT, &path)
                .header("content-type", local::media_type(&h.file.relative_path))
                .header("content-length", h.file.size)
                .header("x-artifact-sha256", &h.sha256)
                .body(body))
        })
        .await?;
    match check(resp).await {
        Ok(resp) => {
            let file: Value = resp.json().await?;
            anyhow::ensure!(
                file["sha256"].as_str() == Some(h.sha256.as_str()),
                "the registry recorded sha256 {} for {}",
                file["sha256"],
                h.file.relative_path
            );
            Ok(Upload::Sent)
        }
        Err(e) if api_error(&e).is_some_and(|a| a.code == "duplicate_path") => {
            if attempts > 1 {
                // An earlier attempt of ours committed before its answer was lost.
                Ok(Upload::Sent)
            } else {
                Ok(Upload::FoundUnverified)
            }
        }
        Err(e) => Err(e),
    }
}

/// The file as a request body in 256 KiB chunks, each counted on the bar as it is read.
fn file_body(
    file: tokio::fs::File,
    bar: indicatif::ProgressBar,
    counted: Arc<AtomicU64>,
) -> reqwest::Body {
    let stream = futures::stream::try_unfold(file, move |mut file| {
        let (bar, counted) = (bar.clone(), counted.clone());
        async move {
            let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
            let n = file.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            bar.inc(n as u64);
            counted.fetch_add(n as u64, Ordering::Relaxed);
            Ok(Some((buf.freeze(), file)))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Files the registry acknowledged to pushes from this machine, one JSON line each, in
/// `<state dir>/push-<package id>.jsonl`. Best effort: without a state dir, or when the
/// file cannot be written, pushes just have no journal.
struct Journal {
    path: Option<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
}

impl Journal {
    fn open(state_dir: Option<&Path>, package_id: &str) -> Journal {
        let dir = state_dir.map(Path::to_path_buf).or_else(default_state_dir);
        let safe: String = package_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.map(|d| d.join(format!("push-{safe}.jsonl")));
        let file = path.as_ref().and_then(|p| {
            std::fs::create_dir_all(p.parent()?).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Journal {
            path,
            file: Mutex::new(file),
        }
    }

    fn entries(&self) -> BTreeMap<String, RemoteFile> {
        let Some(text) = self
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return BTreeMap::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                Some((
                    v["relative_path"].as_str()?.to_string(),
                    RemoteFile {
                        sha256: v["sha256"].as_str()?.to_string(),
                        size: v["size_bytes"].as_u64()?,
                        id: None,
                    },
                ))
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.entries().len()
    }

    fn record(&self, relative_path: &str, sha256: &str, size: u64) {
        let line = json!({"relative_path": relative_path, "sha256": sha256, "size_bytes": size});
        if let Ok(mut guard) = self.file.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// `$XDG_STATE_HOME/artifact-store`, else `~/.local/state/artifact-store`.
fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("artifact-store"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/artifact-store"))
}
