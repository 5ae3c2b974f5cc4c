//! `pull PKG DIR` and `verify PKG DIR`: a finalized package's files against a local
//! directory, both checked against the manifest.
//!
//! Pull writes each file to `.<name>.as-partial` beside its destination, hashes it as it
//! arrives, and renames it into place only when size and sha256 match the manifest, so a
//! destination path never holds a half or wrong file. A partial file left by an
//! interrupted pull is continued with `Range` (its bytes hashed first); a file already in
//! place with the manifest's digest is skipped. File ids come from the package's file
//! listing, so a reader's token is enough.

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::Outcome;
use crate::client::{Client, check, encode_path};
use crate::local;
use crate::progress::Progress;
use crate::remote::{self, RemoteFile};

pub async fn pull(
    client: &Client,
    package_id: &str,
    dir: &Path,
    glob: Option<&str>,
    jobs: usize,
    json_out: bool,
) -> Result<Outcome> {
    let manifest = remote::manifest(client, package_id).await?;
    let mut files = remote::manifest_files(&manifest);
    if let Some(g) = glob {
        files.retain(|path, _| local::glob_match(g, path));
    }
    // The manifest names no file ids (downloads need them): the file listing does.
    let ids = remote::files(client, package_id).await?;
    let mut work = Vec::new();
    for (path, f) in &files {
        let listed = ids
            .get(path)
            .with_context(|| format!("the registry lists no file {path}, its manifest does"))?;
        anyhow::ensure!(
            listed.sha256 == f.sha256 && listed.size == f.size,
            "the registry lists {path} with sha256 {} ({} bytes), its manifest says {} ({} bytes)",
            listed.sha256,
            listed.size,
            f.sha256,
            f.size
        );
        let id = listed
            .id
            .clone()
            .with_context(|| format!("no file id for {path}"))?;
        work.push((path.clone(), f.clone(), id));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let total: u64 = files.values().map(|f| f.size).sum();
    let progress = Progress::new(
        crate::progress::wanted(json_out),
        "download",
        total,
        work.len() as u64,
    );
    let skipped = AtomicUsize::new(0);
    let fetched = AtomicU64::new(0);
    futures::stream::iter(work.iter().map(Ok))
        .try_for_each_concurrent(jobs.max(1), |(path, f, id)| {
            let (progress, skipped, fetched) = (&progress, &skipped, &fetched);
            async move {
                let dest = local::local_path(dir, path);
                let n = fetch(client, id, f, &dest, progress)
                    .await
                    .with_context(|| format!("pulling {path}"))?;
                match n {
                    None => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        progress.bytes.inc(f.size);
                    }
                    Some(n) => {
                        fetched.fetch_add(n, Ordering::Relaxed);
                    }
                }
                progress.files.inc(1);
                anyhow::Ok(())
            }
        })
        .await?;
    progress.finish();
    let skipped = skipped.into_inner();
    let summary = json!({
        "package_id": package_id,
        "manifest_sha256": manifest["manifest_sha256"],
        "files": work.len(),
        "downloaded": work.len() - skipped,
        "skipped": skipped,
        "bytes_downloaded": fetched.into_inner(),
    });
    if json_out {
        println!("{summary}");
    } else {
        println!(
            "{} files in {} ({} downloaded, {skipped} already present and verified)",
            work.len(),
            dir.display(),
            work.len() - skipped
        );
        println!(
            "manifest_sha256 {}",
            manifest["manifest_sha256"].as_str().unwrap_or("-")
        );
    }
    Ok(Outcome::Ok)
}

fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.as-partial"))
}

/// sha256 and length of what `path` holds (`None` when it does not exist).
fn digest_of(path: &Path) -> Result<Option<(Sha256, u64)>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(Some((h, len)));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

/// Brings `dest` to the manifest's bytes: `None` when it already held them, else the bytes
/// downloaded.
async fn fetch(
    client: &Client,
    file_id: &str,
    want: &RemoteFile,
    dest: &Path,
    progress: &Progress,
) -> Result<Option<u64>> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let d = dest.to_path_buf();
    let present = tokio::task::spawn_blocking(move || digest_of(&d)).await??;
    if let Some((h, len)) = present
        && len == want.size
        && hex::encode(h.finalize()) == want.sha256
    {
        return Ok(None);
    }
    let partial = partial_path(dest);
    let mut downloaded = 0u64;
    // A corrupt partial file costs one more whole download, then the pull fails.
    for round in 0..2 {
        let p = partial.clone();
        let (hasher, have) = match tokio::task::spawn_blocking(move || digest_of(&p)).await?? {
            Some((h, len)) if len <= want.size && round == 0 => (h, len),
            _ => {
                let _ = std::fs::remove_file(&partial);
                (Sha256::new(), 0)
            }
        };
        progress.bytes.inc(have);
        let (hasher, len, n) =
            download_into(client, file_id, want, &partial, hasher, have, progress).await?;
        downloaded += n;
        let digest = hex::encode(hasher.finalize());
        if len == want.size && digest == want.sha256 {
            let f = std::fs::OpenOptions::new().write(true).open(&partial)?;
            f.sync_all()?;
            std::fs::rename(&partial, dest)
                .with_context(|| format!("moving the download to {}", dest.display()))?;
            return Ok(Some(downloaded));
        }
        progress.bytes.dec(len);
        progress.bytes.println(format!(
            "warning: {} arrived with sha256 {digest} ({len} bytes), the manifest says {} ({} bytes); downloading again",
            dest.display(),
            want.sha256,
            want.size
        ));
        let _ = std::fs::remove_file(&partial);
    }
    bail!("the downloaded bytes do not match the manifest's sha256")
}

/// Appends the file's bytes from offset `have` to `partial` (a `Range` request when
/// `have > 0`), retrying a broken transfer from where it stopped. Returns the hasher over
/// the whole file, its length and the bytes downloaded now.
async fn download_into(
    client: &Client,
    file_id: &str,
    want: &RemoteFile,
    partial: &Path,
    mut hasher: Sha256,
    mut have: u64,
    progress: &Progress,
) -> Result<(Sha256, u64, u64)> {
    let path = format!("/files/{}/download", encode_path(file_id));
    // The partial file exists even for an empty file (it is renamed into place).
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .with_context(|| format!("writing {}", partial.display()))?;
    let mut fetched = 0u64;
    let mut breaks = 0;
    loop {
        if have >= want.size {
            return Ok((hasher, have, fetched));
        }
        let from = have;
        let resp = client
            .send(|| {
                let r = client.request(reqwest::Method::GET, &path);
                Ok(if from > 0 {
                    r.header("range", format!("bytes={from}-"))
                } else {
                    r
                })
            })
            .await?;
        let resp = check(resp).await?;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .with_context(|| format!("writing {}", partial.display()))?;
        if from > 0 && resp.status().as_u16() != 206 {
            // The server sent the whole file: start over.
            progress.bytes.dec(have);
            out.set_len(0)?;
            hasher = Sha256::new();
            have = 0;
        }
        let mut stream = resp.bytes_stream();
        let broke = loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    out.write_all(&chunk)?;
                    hasher.update(&chunk);
                    have += chunk.len() as u64;
                    fetched += chunk.len() as u64;
                    progress.bytes.inc(chunk.len() as u64);
                    if have > want.size {
                        return Ok((hasher, have, fetched));
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        out.flush()?;
        match broke {
            None => return Ok((hasher, have, fetched)),
            Some(e) if breaks < client.retry.retries => {
                breaks += 1;
                let wait = client.retry.wait(breaks - 1, None);
                eprintln!(
                    "transfer broke after {have} bytes ({e}); resuming in {:.1} s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Some(e) => return Err(e.into()),
        }
    }
}

/// How a local directory differs from a manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub changed: Vec<String>,
}

impl Diff {
    pub fn identical(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

pub async fn verify(
    client: &Client,
    package_id: &str,
    dir: &Path,
    json_out: bool,
) -> Result<Outcome> {
    let manifest = remote::manifest(client, package_id).await?;
    let want = remote::manifest_files(&manifest);
    let (files, problems) = local::walk(dir)?;
    let mut diff = Diff::default();
    // What cannot be read locally counts as extra: it is there and is not the package's.
    diff.extra.extend(problems.into_iter().map(|p| p.path));
    let total: u64 = files.iter().map(|f| f.size).sum();
    let progress = Progress::new(
        crate::progress::wanted(json_out),
        "verify",
        total,
        files.len() as u64,
    );
    let mut local_digests = BTreeMap::new();
    for f in files {
        let path = f.path.clone();
        let bar = progress.bytes.clone();
        let (digest, len) =
            tokio::task::spawn_blocking(move || local::hash_file(&path, &|n| bar.inc(n))).await??;
        progress.files.inc(1);
        local_digests.insert(f.relative_path, (digest, len));
    }
    progress.finish();
    for (path, w) in &want {
        match local_digests.get(path) {
            None => diff.missing.push(path.clone()),
            Some((d, len)) if *d != w.sha256 || *len != w.size => diff.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    diff.extra.extend(
        local_digests
            .keys()
            .filter(|p| !want.contains_key(*p))
            .cloned(),
    );
    diff.extra.sort();
    if json_out {
        println!(
            "{}",
            json!({
                "package_id": package_id,
                "manifest_sha256": manifest["manifest_sha256"],
                "identical": diff.identical(),
                "missing": diff.missing,
                "extra": diff.extra,
                "changed": diff.changed,
            })
        );
    } else {
        for p in &diff.missing {
            println!("missing {p}");
        }
        for p in &diff.extra {
            println!("extra   {p}");
        }
        for p in &diff.changed {
            println!("changed {p}");
        }
        if diff.identical() {
            println!(
                "identical: {} files match manifest {}",
                want.len(),
                manifest["manifest_sha256"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(if diff.identical() {
        Outcome::Ok
    } else {
        Outcome::Mismatch
    })
}
