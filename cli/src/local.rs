//! The local side: walking a directory into relative paths the server accepts, hashing
//! files as streams, guessing media types, and matching `--path` globs.

use anyhow::{Context, Result};
use artifact_store_core::validate;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A regular file under the walked directory.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// `/`-separated, relative to the walked directory.
    pub relative_path: String,
    pub path: PathBuf,
    pub size: u64,
}

/// What a walk found that cannot be uploaded as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub why: String,
}

/// Files sorted by relative path, and every problem found (symlinks, unreadable files and
/// directories, special files, names that are not UTF-8 or that the server's path rule
/// refuses). Nothing is skipped silently: a caller refuses to go on while problems remain.
pub fn walk(root: &Path) -> Result<(Vec<LocalFile>, Vec<Problem>)> {
    let meta = std::fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", root.display());
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem {
                    path: display_rel(&prefix),
                    why: format!("unreadable directory: {e}"),
                });
                continue;
            }
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                problems.push(Problem {
                    path: format!("{prefix}{}", name.to_string_lossy()),
                    why: "the name is not valid UTF-8".into(),
                });
                continue;
            };
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            let kind = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(Problem {
                        path: rel,
                        why: format!("cannot read its metadata: {e}"),
                    });
                    continue;
                }
            };
            let ft = kind.file_type();
            if ft.is_symlink() {
                problems.push(Problem {
                    path: rel,
                    why: "a symbolic link (not followed: upload its target instead)".into(),
                });
            } else if ft.is_dir() {
                stack.push((path, format!("{rel}/")));
            } else if !ft.is_file() {
                problems.push(Problem {
                    path: rel,
                    why: "not a regular file (a device, socket or pipe)".into(),
                });
            } else if let Err(e) = validate::relative_path(&rel) {
                problems.push(Problem {
                    path: rel,
                    why: format!("the registry refuses this path: {}", e.detail),
                });
            } else if let Err(e) = std::fs::File::open(&path) {
                problems.push(Problem {
                    path: rel,
                    why: format!("unreadable: {e}"),
                });
            } else {
                files.push(LocalFile {
                    relative_path: rel,
                    path,
                    size: kind.len(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, problems))
}

fn display_rel(prefix: &str) -> String {
    if prefix.is_empty() {
        ".".into()
    } else {
        prefix.trim_end_matches('/').to_string()
    }
}

/// The file's sha256 (hex) and length, read in 1 MiB blocks (never whole); `tick` hears
/// each block's length.
pub fn hash_file(path: &Path, tick: &dyn Fn(u64)) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
        tick(n as u64);
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// `relative_path` under `root`, with the platform's separators.
pub fn local_path(root: &Path, relative_path: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for seg in relative_path.split('/') {
        p.push(seg);
    }
    p
}

/// A media type from the file's extension (lower-cased); `application/octet-stream`
/// when unknown.
pub fn media_type(relative_path: &str) -> &'static str {
    let name = relative_path.rsplit('/').next().unwrap_or(relative_path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "json" => "application/json",
        "sarif" => "application/sarif+json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "md" | "markdown" => "text/markdown",
        "txt" | "log" | "out" => "text/plain",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "zst" => "application/zstd",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Whether `path` matches `glob`: `*` and `?` within one `/`-separated segment, `**` across
/// any number of segments (`reports/**` matches everything under `reports/`).
pub fn glob_match(glob: &str, path: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let p: Vec<char> = path.chars().collect();
    matches_at(&g, &p)
}

fn matches_at(g: &[char], p: &[char]) -> bool {
    match g.first() {
        None => p.is_empty(),
        Some('*') if g.get(1) == Some(&'*') => {
            // `**/` also matches no directory at all.
            let rest = &g[2..];
            if let Some(after) = rest.strip_prefix(&['/'])
                && matches_at(after, p)
            {
                return true;
            }
            (0..=p.len()).any(|i| matches_at(rest, &p[i..]))
        }
        Some('*') => {
            let rest = &g[1..];
            for i in 0..=p.len() {
                if matches_at(rest, &p[i..]) {
                    return true;
                }
                if i < p.len() && p[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => !p.is_empty() && p[0] != '/' && matches_at(&g[1..], &p[1..]),
        Some(c) => p.first() == Some(c) && matches_at(&g[1..], &p[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.json", "run.json"));
        assert!(!glob_match("*.json", "reports/run.json"));
        assert!(glob_match("reports/**", "reports/a/b.md"));
        assert!(glob_match("**/*.md", "report.md"));
        assert!(glob_match("**/*.md", "a/b/report.md"));
        assert!(glob_match("a/?.txt", "a/b.txt"));
        assert!(!glob_match("a/?.txt", "a/bc.txt"));
        assert!(glob_match("logs/*/x", "logs/ü/x"));
        assert!(!glob_match("logs/*", "logs/a/b"));
        assert!(glob_match("exact", "exact"));
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type("a/run.JSON"), "application/json");
        assert_eq!(media_type("report.md"), "text/markdown");
        assert_eq!(media_type(".hidden"), "application/octet-stream");
        assert_eq!(media_type("blob"), "application/octet-stream");
        assert_eq!(media_type("x.tar.gz"), "application/gzip");
        for name in [
            "a.json", "a.sarif", "a.md", "a.yaml", "a.svg", "a.zst", "a.bin",
        ] {
            validate::media_type(Some(media_type(name))).unwrap();
        }
    }

    #[test]
    fn walk_reports_what_cannot_be_uploaded() {
        let root = std::env::temp_dir().join(format!("as-cli-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/ü.txt"), b"x").unwrap();
        std::fs::write(root.join("top.json"), b"{}").unwrap();
        std::fs::write(root.join("bad\u{202e}name"), b"x").unwrap();
        std::os::unix::fs::symlink("top.json", root.join("link")).unwrap();
        let (files, problems) = walk(&root).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.relative_path.as_str()).collect();
        assert_eq!(names, ["a/b/ü.txt", "top.json"]);
        let bad: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(bad, ["bad\u{202e}name", "link"]);
        let (digest, len) = hash_file(&root.join("top.json"), &|_| {}).unwrap();
        assert_eq!(len, 2);
        assert_eq!(
            digest,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
