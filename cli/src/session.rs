//! Big files through an upload session: `POST /packages/{id}/uploads` plans the parts,
//! each part is one `PUT`, `POST /uploads/{id}/complete` commits the file.
//!
//! Decision: a file's parts go in order, one at a time, each read from disk twice (hashed
//! for its `x-artifact-sha256`, then streamed as the body; the second read comes from the
//! page cache in practice), so the registry extends the file's running sha256 as parts
//! arrive and `complete` reads nothing back, and no more than 256 KiB of a part is in
//! memory. The session id is kept in the state dir until the file is committed, so a
//! rerun after a crash asks `GET /uploads/{id}` what is `missing` and sends only that; a
//! session the registry no longer has (404, or 410 once expired) is started again. Cost:
//! one file's parts never travel in parallel (`--jobs` spreads files, not parts).
//!
//! With `push --direct` a session may be `direct`: one part whose URL is presigned to the
//! registry's S3 storage, sent there without the bearer token and with the headers it was
//! signed with (the file's sha256 among them, which storage checks).

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

use crate::client::{Client, api_error, check, encode_path, retry_after};
use crate::local::{self, LocalFile};
use crate::progress::Progress;
use crate::remote;

/// What sessions did in one push, for its summary.
#[derive(Default)]
pub struct Stats {
    /// Files sent through a session.
    pub files: AtomicU64,
    pub parts_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Parts a resumed session already held.
    pub parts_already_received: AtomicU64,
}

/// A session as the registry planned it.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    state: String,
    parts: Vec<Part>,
    missing: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Part {
    number: u32,
    size: u64,
    offset: u64,
    url: String,
    method: reqwest::Method,
    headers: Vec<(String, String)>,
}

impl Session {
    fn parse(v: &Value) -> Result<Session> {
        let id = v["id"].as_str().context("no session id")?.to_string();
        let mut parts = Vec::new();
        for p in v["parts"].as_array().context("no parts in the session")? {
            let number = p["number"].as_u64().context("a part without a number")?;
            parts.push(Part {
                number: u32::try_from(number)?,
                size: p["size_bytes"].as_u64().context("a part without a size")?,
                offset: 0,
                url: match p["url"].as_str() {
                    Some(u) => u.to_string(),
                    None => format!("/uploads/{}/parts/{number}", encode_path(&id)),
                },
                method: p["method"]
                    .as_str()
                    .unwrap_or("PUT")
                    .parse()
                    .context("a part's method")?,
                headers: p["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect(),
            });
        }
        parts.sort_by_key(|p| p.number);
        let mut offset = 0;
        for p in &mut parts {
            p.offset = offset;
            offset += p.size;
        }
        let missing = match v["missing"].as_array() {
            Some(m) => m
                .iter()
                .filter_map(|n| u32::try_from(n.as_u64()?).ok())
                .collect(),
            None => parts.iter().map(|p| p.number).collect(),
        };
        Ok(Session {
            id,
            state: v["state"].as_str().unwrap_or("open").to_string(),
            parts,
            missing,
        })
    }

    fn total(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// Sends `file` through a session (resumed when `sessions` remembers one for it) and
/// returns the registry's file; `None` when the registry takes no sessions (the caller
/// sends one `PUT` instead).
pub async fn upload(
    client: &Client,
    package_id: &str,
    file: &LocalFile,
    sha256: &str,
    sessions: &Sessions,
    progress: &Progress,
    stats: &Stats,
) -> Result<Option<Value>> {
    let rel = &file.relative_path;
    let mut session = match resume(client, sessions, file, sha256).await? {
        Some(s) => {
            let held = s.parts.len() - s.missing.len();
            progress.note(format!(
                "resuming upload session {} for {rel}: {held} of {} parts already received",
                s.id,
                s.parts.len()
            ));
            stats
                .parts_already_received
                .fetch_add(held as u64, Ordering::Relaxed);
            s
        }
        None => match begin(client, package_id, file, sha256, sessions, progress).await? {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    stats.files.fetch_add(1, Ordering::Relaxed);
    // Bytes of this file on the bar, taken off again if the session must start over.
    let on_bar = AtomicU64::new(0);
    let mut restarted = false;
    loop {
        match drive(
            client, package_id, &session, file, sha256, progress, stats, &on_bar,
        )
        .await
        {
            Ok(committed) => {
                sessions.forget(rel);
                return Ok(Some(committed));
            }
            Err(Failure::Gone(e)) if !restarted => {
                progress.note(format!(
                    "upload session {} for {rel} is gone ({e:#}); starting a new one",
                    session.id
                ));
                sessions.forget(rel);
                progress.bytes.dec(on_bar.swap(0, Ordering::Relaxed));
                restarted = true;
                session = begin(client, package_id, file, sha256, sessions, progress)
                    .await?
                    .context("the registry stopped taking upload sessions")?;
            }
            Err(Failure::Gone(e) | Failure::Other(e)) => {
                progress.bytes.dec(on_bar.swap(0, Ordering::Relaxed));
                // A session the registry ended (a digest mismatch, the path taken) is of
                // no use to a rerun.
                if api_error(&e).is_some_and(|a| matches!(a.status, 404 | 409 | 410 | 422)) {
                    sessions.forget(rel);
                }
                return Err(e);
            }
        }
    }
}

enum Failure {
    /// The session is not there (404) or expired (410): a new one may do.
    Gone(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

fn gone_or_other(e: anyhow::Error) -> Failure {
    if api_error(&e).is_some_and(|a| a.status == 404 || a.status == 410) {
        Failure::Gone(e)
    } else {
        Failure::Other(e)
    }
}

/// The remembered session for `file`, if the registry still has it for the same bytes.
async fn resume(
    client: &Client,
    sessions: &Sessions,
    file: &LocalFile,
    sha256: &str,
) -> Result<Option<Session>> {
    let Some(r) = sessions.get(&file.relative_path) else {
        return Ok(None);
    };
    if r.sha256 != sha256 || r.size_bytes != file.size {
        // The local file changed since: that session's parts are of other bytes.
        sessions.forget(&file.relative_path);
        return Ok(None);
    }
    let path = format!("/uploads/{}", encode_path(&r.upload_id));
    let v = match client.get_json(&path).await {
        Ok(v) => v,
        Err(e) if api_error(&e).is_some_and(|a| matches!(a.status, 403 | 404 | 410)) => {
            sessions.forget(&file.relative_path);
            return Ok(None);
        }
        Err(e) => return Err(e).context("reading the upload session"),
    };
    let s = Session::parse(&v)?;
    if v["relative_path"].as_str() != Some(file.relative_path.as_str())
        || v["sha256"].as_str() != Some(sha256)
        || v["size_bytes"].as_u64() != Some(file.size)
        || s.total() != file.size
    {
        sessions.forget(&file.relative_path);
        return Ok(None);
    }
    Ok(Some(s))
}

/// A new session for `file`, remembered at once; `None` when the registry has no
/// sessions (404 or 405 on the route).
async fn begin(
    client: &Client,
    package_id: &str,
    file: &LocalFile,
    sha256: &str,
    sessions: &Sessions,
    progress: &Progress,
) -> Result<Option<Session>> {
    let body = json!({
        "relative_path": file.relative_path,
        "size_bytes": file.size,
        "sha256": sha256,
        "media_type": local::media_type(&file.relative_path),
        "direct": sessions.direct,
    });
    let path = format!("/packages/{}/uploads", encode_path(package_id));
    let v = match client.post_json(&path, &body).await {
        Ok(v) => v,
        Err(e) if api_error(&e).is_some_and(|a| a.status == 404 || a.status == 405) => {
            progress.note(format!(
                "note: this registry takes no upload sessions ({e:#}); sending {} in one request",
                file.relative_path
            ));
            return Ok(None);
        }
        Err(e) => return Err(e).context("starting an upload session"),
    };
    let s = Session::parse(&v)?;
    anyhow::ensure!(
        s.total() == file.size,
        "the registry planned {} bytes of parts for a file of {}",
        s.total(),
        file.size
    );
    sessions.remember(
        &file.relative_path,
        Remembered {
            upload_id: s.id.clone(),
            sha256: sha256.to_string(),
            size_bytes: file.size,
        },
    );
    progress.note(format!(
        "upload session {} for {}: {} parts",
        s.id,
        file.relative_path,
        s.parts.len()
    ));
    Ok(Some(s))
}

/// Sends what the session lacks, in order, and completes it.
#[allow(clippy::too_many_arguments)]
async fn drive(
    client: &Client,
    package_id: &str,
    session: &Session,
    file: &LocalFile,
    sha256: &str,
    progress: &Progress,
    stats: &Stats,
    on_bar: &AtomicU64,
) -> Result<Value, Failure> {
    let mut session = session.clone();
    let held: u64 = session
        .parts
        .iter()
        .filter(|p| !session.missing.contains(&p.number))
        .map(|p| p.size)
        .sum();
    progress.bytes.inc(held);
    on_bar.fetch_add(held, Ordering::Relaxed);
    // A second round only when `complete` says parts are missing after all.
    for round in 0..2 {
        if session.state == "open" {
            for part in session
                .parts
                .iter()
                .filter(|p| session.missing.contains(&p.number))
            {
                send_part(client, file, part, progress)
                    .await
                    .with_context(|| format!("part {} of {}", part.number, session.parts.len()))
                    .map_err(gone_or_other)?;
                stats.parts_sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes_sent.fetch_add(part.size, Ordering::Relaxed);
                on_bar.fetch_add(part.size, Ordering::Relaxed);
            }
        }
        match complete(client, package_id, &session.id, file, sha256).await {
            Ok(committed) => return Ok(committed),
            Err(e)
                if round == 0
                    && api_error(&e)
                        .is_some_and(|a| a.status == 409 && a.code == "invalid_state") =>
            {
                let v = client
                    .get_json(&format!("/uploads/{}", encode_path(&session.id)))
                    .await
                    .map_err(gone_or_other)?;
                let now = Session::parse(&v)?;
                if now.missing.is_empty() {
                    return Err(Failure::Other(e));
                }
                let resend: u64 = now
                    .parts
                    .iter()
                    .filter(|p| now.missing.contains(&p.number))
                    .map(|p| p.size)
                    .sum();
                progress.bytes.dec(resend);
                on_bar.fetch_sub(
                    resend.min(on_bar.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                session = now;
            }
            Err(e) => return Err(Failure::Other(e)),
        }
    }
    unreachable!("the second round returns")
}

/// sha256 (hex) of `len` bytes of `path` from `offset`, read in 1 MiB blocks.
fn hash_range(path: &Path, offset: u64, len: u64) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut f = f.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        seen += n as u64;
    }
    anyhow::ensure!(
        seen == len,
        "{} changed since it was hashed",
        path.display()
    );
    Ok(hex::encode(h.finalize()))
}

/// One part: hashed from disk, then streamed from disk (reopened for each attempt).
async fn send_part(
    client: &Client,
    file: &LocalFile,
    part: &Part,
    progress: &Progress,
) -> Result<()> {
    let (path, offset, len) = (file.path.clone(), part.offset, part.size);
    // A part for the registry carries its digest, checked there. A part straight to
    // storage (an absolute, presigned URL) carries the headers it was signed with, the
    // file's digest among them, which storage checks: hashing it again here buys nothing.
    let to_storage = part.url.starts_with("http://") || part.url.starts_with("https://");
    let digest = if to_storage {
        None
    } else {
        Some(tokio::task::spawn_blocking(move || hash_range(&path, offset, len)).await??)
    };
    let counted = Arc::new(AtomicU64::new(0));
    let resp = client
        .send(|| {
            // Bytes of a failed attempt leave the bar again.
            progress.bytes.dec(counted.swap(0, Ordering::Relaxed));
            let mut f = std::fs::File::open(&file.path)
                .with_context(|| format!("opening {}", file.path.display()))?;
            anyhow::ensure!(
                f.metadata()?.len() == file.size,
                "{} changed since it was hashed",
                file.relative_path
            );
            f.seek(SeekFrom::Start(offset))?;
            let body = crate::push::file_body(
                tokio::fs::File::from_std(f).take(len),
                progress.bytes.clone(),
                counted.clone(),
            );
            let mut req = client
                .request_to(part.method.clone(), &part.url)
                .header("content-length", len);
            if let Some(digest) = &digest {
                req = req.header("x-artifact-sha256", digest);
            }
            for (k, v) in &part.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            Ok(req.body(body))
        })
        .await?;
    check(resp).await?;
    Ok(())
}

/// `POST /uploads/{id}/complete` until the registry commits the file (201): a 202 means it
/// is still hashing what it had to read back, so it is asked again after `Retry-After`.
async fn complete(
    client: &Client,
    package_id: &str,
    upload_id: &str,
    file: &LocalFile,
    sha256: &str,
) -> Result<Value> {
    let path = format!("/uploads/{}/complete", encode_path(upload_id));
    let mut last: Option<u64> = None;
    let mut stalled = 0;
    loop {
        let mut attempts = 0u32;
        let resp = client
            .send(|| {
                attempts += 1;
                Ok(client
                    .request(reqwest::Method::POST, &path)
                    .header("content-length", 0)
                    .body(Vec::<u8>::new()))
            })
            .await?;
        if resp.status().as_u16() == 202 {
            let wait = retry_after(&resp)
                .unwrap_or(Duration::from_secs(1))
                .min(client.retry.max_wait);
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            let verified = v["verified_bytes"].as_u64();
            if verified.is_some() && verified == last {
                stalled += 1;
                anyhow::ensure!(
                    stalled <= client.retry.retries.max(3),
                    "the registry's verification of {} stopped at {verified:?} bytes",
                    file.relative_path
                );
            } else {
                stalled = 0;
                last = verified;
            }
            tokio::time::sleep(wait).await;
            continue;
        }
        return match check(resp).await {
            Ok(r) => Ok(r.json().await?),
            // An earlier attempt of ours committed before its answer was lost: the
            // session is gone (404) or the path is taken (409), by our file.
            Err(e)
                if attempts > 1
                    && api_error(&e)
                        .is_some_and(|a| a.status == 404 || a.code == "duplicate_path") =>
            {
                let listed = remote::files(client, package_id).await?;
                match listed.get(&file.relative_path) {
                    Some(f) if f.sha256 == sha256 => Ok(json!({
                        "id": f.id,
                        "relative_path": file.relative_path,
                        "size_bytes": f.size,
                        "sha256": f.sha256,
                    })),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        };
    }
}

/// A session this machine started and has not seen committed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remembered {
    upload_id: String,
    sha256: String,
    size_bytes: u64,
}

/// The unfinished upload sessions of one package's pushes, in
/// `<state dir>/sessions-<package id>.json` (relative path -> session), so a rerun after
/// a crash resumes them instead of sending every part again. The file is removed once
/// every session in it is committed. Best effort: without a state dir, or when it cannot
/// be written, a rerun starts its sessions over.
pub struct Sessions {
    path: Option<PathBuf>,
    map: Mutex<BTreeMap<String, Remembered>>,
    /// New sessions ask for `direct` (`push --direct`).
    direct: bool,
}

impl Sessions {
    pub fn open(state_dir: Option<&Path>, package_id: &str) -> Sessions {
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
        let path = dir.map(|d| d.join(format!("sessions-{safe}.json")));
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|v| parse_state(&v))
            .unwrap_or_default();
        Sessions {
            path,
            map: Mutex::new(map),
            direct: false,
        }
    }

    /// New sessions ask to send their file straight to storage.
    pub fn direct(self, direct: bool) -> Sessions {
        Sessions { direct, ..self }
    }

    fn get(&self, relative_path: &str) -> Option<Remembered> {
        self.map.lock().ok()?.get(relative_path).cloned()
    }

    fn remember(&self, relative_path: &str, r: Remembered) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(relative_path.to_string(), r);
            self.save(&map);
        }
    }

    pub fn forget(&self, relative_path: &str) {
        if let Ok(mut map) = self.map.lock()
            && map.remove(relative_path).is_some()
        {
            self.save(&map);
        }
    }

    /// Writes the whole map (a temporary file renamed over the old one), or removes the
    /// file when nothing is left.
    fn save(&self, map: &BTreeMap<String, Remembered>) {
        let Some(path) = &self.path else { return };
        if map.is_empty() {
            let _ = std::fs::remove_file(path);
            return;
        }
        let doc: serde_json::Map<String, Value> = map
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"upload_id": r.upload_id, "sha256": r.sha256, "size_bytes": r.size_bytes}),
                )
            })
            .collect();
        let tmp = path.with_extension("json.tmp");
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&tmp, Value::Object(doc).to_string()))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!(
                "warning: cannot record the upload session in {} ({e}): a rerun will start it over",
                path.display()
            );
        }
    }
}

fn parse_state(v: &Value) -> BTreeMap<String, Remembered> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, r)| {
            Some((
                k.clone(),
                Remembered {
                    upload_id: r["upload_id"].as_str()?.to_string(),
                    sha256: r["sha256"].as_str()?.to_string(),
                    size_bytes: r["size_bytes"].as_u64()?,
                },
            ))
        })
        .collect()
}

/// `$XDG_STATE_HOME/artifact-store`, else `~/.local/state/artifact-store`.
fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("artifact-store"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/artifact-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_plan_is_read_with_offsets() {
        let v = json!({
            "id": "u1",
            "state": "open",
            "parts": [
                {"number": 2, "size_bytes": 3, "url": "/uploads/u1/parts/2", "method": "PUT", "headers": {}},
                {"number": 1, "size_bytes": 8, "url": "/uploads/u1/parts/1", "method": "PUT", "headers": {"x-a": "b"}},
            ],
            "missing": [2],
        });
        let s = Session::parse(&v).unwrap();
        assert_eq!(s.total(), 11);
        assert_eq!(s.parts[0].number, 1);
        assert_eq!(s.parts[1].offset, 8);
        assert_eq!(s.parts[0].headers, [("x-a".to_string(), "b".to_string())]);
        assert_eq!(s.missing, [2]);
    }

    #[test]
    fn sessions_are_remembered_until_forgotten() {
        let dir = std::env::temp_dir().join(format!("as-cli-sessions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = Remembered {
            upload_id: "u1".into(),
            sha256: "ab".into(),
            size_bytes: 9,
        };
        let s = Sessions::open(Some(&dir), "p/1");
        s.remember("big/a.bin", r.clone());
        let file = dir.join("sessions-p_1.json");
        assert!(file.exists());
        let again = Sessions::open(Some(&dir), "p/1");
        assert_eq!(again.get("big/a.bin"), Some(r));
        again.forget("big/a.bin");
        assert!(!file.exists(), "an empty state file is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_range_is_hashed() {
        let dir = std::env::temp_dir().join(format!("as-cli-range-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"xxabcyy").unwrap();
        assert_eq!(
            hash_range(&p, 2, 3).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hash_range(&p, 5, 3).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
