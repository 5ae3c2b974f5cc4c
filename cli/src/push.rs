//! `push DIR`: one package from a directory.
//!
//! Order of work, so nothing is uploaded before every problem is known: walk the directory
//! (symlinks, unreadable files and paths the server's rule refuses are all reported, and
//! the push stops), hash every file (streamed, `--jobs` at a time), create the package (or
//! take `--package`), learn what it already holds, then upload only what is missing,
//! `--jobs` files at a time, each as a raw `PUT` with `Content-Length` and
//! `x-artifact-sha256` (the form that takes the S3 fast path), streamed from disk.
//!
//! Files larger than `--session-threshold` go through an upload session instead
//! (`session`): numbered parts, one request each, resumable.
//!
//! Resuming (`--package ID`): what the package holds comes from the registry
//! (`GET /packages/{id}/files`, which any token that may push may read). A file it holds
//! with another sha256 stops the push before any upload; only what it lacks is uploaded.
//! An upload session left unfinished by a crash is resumed from the parts the registry
//! received (its id is kept in the state dir). If the registry answers `duplicate_path`
//! (another push got there first), the listing says whether it holds the same bytes.

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client::{Client, api_error, check, encode_path};
use crate::local::{self, LocalFile};
use crate::progress::Progress;
use crate::remote;
use crate::session::{self, Sessions};
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
    /// Files larger than this go through an upload session; 0: never.
    pub session_threshold: u64,
    /// Ask for direct sessions (one presigned PUT straight to S3).
    pub direct: bool,
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
    /// `duplicate_path` on the first attempt, and the registry holds the same bytes:
    /// another push put it there meanwhile.
    AlreadyThere,
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

    let held = match &args.package {
        Some(_) => remote::files(client, &package_id)
            .await
            .with_context(|| format!("listing the files of package {package_id}"))?,
        None => Default::default(),
    };
    let sessions = Sessions::open(args.state_dir.as_deref(), &package_id).direct(args.direct);
    let mut conflicts = Vec::new();
    let mut missing = Vec::new();
    for h in hashed.iter() {
        match held.get(&h.file.relative_path) {
            // Committed by a run that died before it could forget its session.
            Some(r) if r.sha256 == h.sha256 => sessions.forget(&h.file.relative_path),
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

    let present = hashed.len() - missing.len();
    let missing_bytes: u64 = missing.iter().map(|h| h.file.size).sum();
    let progress = Progress::new(draw, "upload", missing_bytes, missing.len() as u64);
    let session_stats = session::Stats::default();
    let found = AtomicUsize::new(0);
    let bytes_sent = AtomicU64::new(0);
    let threshold = args.session_threshold;
    futures::stream::iter(missing.iter().map(Ok))
        .try_for_each_concurrent(args.jobs.max(1), |h| {
            let (progress, found, bytes_sent) = (&progress, &found, &bytes_sent);
            let (sessions, session_stats) = (&sessions, &session_stats);
            let package_id = &package_id;
            async move {
                let by_session = threshold > 0 && h.file.size > threshold;
                let sent = if by_session {
                    session::upload(
                        client,
                        package_id,
                        &h.file,
                        &h.sha256,
                        sessions,
                        progress,
                        session_stats,
                    )
                    .await
                } else {
                    Ok(None)
                };
                // Bytes a session sent are counted part by part (a resumed one sends less).
                let whole = !matches!(sent, Ok(Some(_)));
                let how = match sent {
                    Ok(Some(file)) => recorded(&file, h).map(|_| Upload::Sent),
                    Ok(None) => upload(client, package_id, h, progress).await,
                    Err(e) => Err(e),
                };
                let how = match how {
                    Err(e) if api_error(&e).is_some_and(|a| a.code == "duplicate_path") => {
                        already_there(client, package_id, h)
                            .await
                            .map_err(|e2| e2.context(e))
                    }
                    other => other,
                }
                .with_context(|| format!("uploading {}", h.file.relative_path))?;
                match how {
                    Upload::Sent if whole => {
                        bytes_sent.fetch_add(h.file.size, Ordering::Relaxed);
                    }
                    Upload::Sent => {}
                    Upload::AlreadyThere => {
                        found.fetch_add(1, Ordering::Relaxed);
                        progress.bytes.inc(h.file.size);
                        progress.note(format!(
                            "{} was already in the package (another push put the same bytes there)",
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
    let found = found.into_inner();
    let uploaded = missing.len() - found;

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
        "already_present": present + found,
        "bytes_uploaded": bytes_sent.into_inner() + session_stats.bytes_sent.into_inner(),
        "sessions": session_stats.files.into_inner(),
        "parts_uploaded": session_stats.parts_sent.into_inner(),
        "parts_already_received": session_stats.parts_already_received.into_inner(),
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
            present + found
        );
        if summary["sessions"] != 0 {
            println!(
                "sessions {} ({} parts uploaded, {} already received)",
                summary["sessions"], summary["parts_uploaded"], summary["parts_already_received"]
            );
        }
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
            recorded(&file, h)?;
            Ok(Upload::Sent)
        }
        // An earlier attempt of ours committed before its answer was lost.
        Err(e) if attempts > 1 && api_error(&e).is_some_and(|a| a.code == "duplicate_path") => {
            Ok(Upload::Sent)
        }
        Err(e) => Err(e),
    }
}

/// Checks the registry recorded the digest declared for `h`.
fn recorded(file: &Value, h: &Hashed) -> Result<()> {
    anyhow::ensure!(
        file["sha256"].as_str() == Some(h.sha256.as_str()),
        "the registry recorded sha256 {} for {}",
        file["sha256"],
        h.file.relative_path
    );
    Ok(())
}

/// After `duplicate_path`: the path is taken; by the same bytes is fine, by others a
/// conflict.
async fn already_there(client: &Client, package_id: &str, h: &Hashed) -> Result<Upload> {
    let listed = remote::files(client, package_id).await?;
    match listed.get(&h.file.relative_path) {
        Some(r) if r.sha256 == h.sha256 => Ok(Upload::AlreadyThere),
        Some(r) => bail!(
            "the package already holds {} with sha256 {}, the local file is {}",
            h.file.relative_path,
            r.sha256,
            h.sha256
        ),
        None => bail!("the registry refused the path as taken, yet does not list it"),
    }
}

/// A file (or a part of one) as a request body in 256 KiB chunks, each counted on the bar
/// as it is read.
pub fn file_body<R: AsyncRead + Unpin + Send + 'static>(
    file: R,
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
