//! The `artifact-store` CLI, black box: the real binary (`cli_bin`) against the real app
//! under the harness, on SQLite + kv and PostgreSQL + S3.
//!
//! - a run directory of 50 files (nested directories, unicode names, one large file) is
//!   pushed (the large file as an upload session: its part `PUT`s counted on the wire),
//!   pulled into an empty directory and verified, both with a reader's token; a changed, a
//!   missing and an extra file make `verify` exit 3; a partial download is resumed with
//!   `Range`;
//! - a push killed (`SIGKILL`) mid-way and run again with `--package` and a producer's
//!   token completes from the package's file listing alone (no local state), and no file
//!   is sent twice (the `PUT`s of the rerun are counted on the wire, the `file_uploaded`
//!   audit events afterwards);
//! - a push killed in the middle of a large file's upload session resumes that session:
//!   the rerun sends exactly the parts the registry lacks; a session the registry no
//!   longer has is started again;
//! - a registry answering 503 for a while: the push retries and succeeds;
//! - progress bars are drawn under a pseudo-terminal (`script`), and not when piped;
//! - a symlink or a path the registry refuses stops a push before anything is created, and
//!   a resumed push whose local file changed stops before anything is uploaded;
//! - `ls`, `show`, `manifest`, `hold`, `release`, `extend`, `sweep` and `audit verify`.

mod scenarios {
    use anyhow::{Context, Result, bail, ensure};
    use artifact_store_tests::proxy::Proxy;
    use artifact_store_tests::{Config, TestApp, cli_bin, pseudo_random, sha256_hex, start};
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MIB: usize = 1024 * 1024;
    /// The large file of the round trip.
    const LARGE: usize = 300 * MIB;

    /// A fresh directory under the app's state dir (removed with it).
    fn scratch(app: &TestApp, name: &str) -> PathBuf {
        let dir = app.state_dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// A run directory: `count` files, nested and with unicode names; with `large`, one
    /// more file of that size (written in 8 MiB blocks). Returns relative path -> sha256.
    fn run_dir(
        root: &Path,
        count: usize,
        small: usize,
        large: usize,
    ) -> Result<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        let dirs = [
            "",
            "reports/",
            "logs/nightly/",
            "ünïcødé/報告/",
            "deep/a/b/c/d/",
        ];
        let n = if large > 0 { count - 1 } else { count };
        for i in 0..n {
            let name = match i % 4 {
                0 => format!("file-{i}.json"),
                1 => format!("résumé {i}.md"),
                2 => format!("日志-{i}.log"),
                _ => format!("emoji-🚀-{i}.bin"),
            };
            let rel = format!("{}{name}", dirs[i % dirs.len()]);
            // One empty file: logs often are.
            let len = if i == 7 { 0 } else { small + i * 1013 };
            let bytes = pseudo_random(i as u64 + 1, len);
            write(root, &rel, &bytes)?;
            files.insert(rel, sha256_hex(&bytes));
        }
        if large > 0 {
            use sha2::Digest;
            use std::io::Write;
            let rel = "big/evidence.bin".to_string();
            std::fs::create_dir_all(root.join("big"))?;
            let mut f = std::fs::File::create(root.join(&rel))?;
            let mut h = sha2::Sha256::new();
            let mut left = large;
            let mut seed = 10_000;
            while left > 0 {
                let block = pseudo_random(seed, left.min(8 * MIB));
                f.write_all(&block)?;
                h.update(&block);
                left -= block.len();
                seed += 1;
            }
            files.insert(rel, hex::encode(h.finalize()));
        }
        Ok(files)
    }

    /// sha256 of a file, read in blocks.
    fn hash_path(path: &Path) -> Result<String> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
        Ok(hex::encode(h.finalize()))
    }

    /// Relative path -> sha256 of every file under `root`.
    fn digests(root: &Path) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let path = e?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                    out.insert(rel, hash_path(&path)?);
                }
            }
        }
        Ok(out)
    }

    /// The CLI against `url` with `token` from the environment, as a CI job runs it.
    fn cli(app: &TestApp, url: &str, token: &str, args: &[&str]) -> Command {
        let bin = cli_bin();
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .env("ARTIFACT_STORE_URL", url)
            .env("ARTIFACT_STORE_TOKEN", token)
            .env("ARTIFACT_STORE_STATE_DIR", app.state_dir.join("cli-state"))
            .stdin(Stdio::null());
        cmd
    }

    fn run(mut cmd: Command) -> Result<Output> {
        let bin = cli_bin();
        ensure!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p artifact-store-cli` (`cargo xtask test` does)",
            bin.display()
        );
        Ok(cmd.output()?)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// Exit code and the JSON document on stdout of a `--json` run.
    fn json_run(cmd: Command) -> Result<(i32, Value, String)> {
        let out = run(cmd)?;
        let code = out.status.code().unwrap_or(-1);
        let stderr = text(&out.stderr);
        let json = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "stdout is not JSON (exit {code}): {}\n{stderr}",
                text(&out.stdout)
            )
        })?;
        Ok((code, json, stderr))
    }

    fn push_args<'a>(dir: &'a str, name: &'a str) -> Vec<&'a str> {
        vec![
            "--json",
            "push",
            dir,
            "--name",
            name,
            "--producer",
            artifact_store_tests::PRODUCER,
            "--subject",
            "nightly run 42",
            "--class",
            "raw-evidence",
            "--meta",
            "run_id=42",
        ]
    }

    /// Every `file_uploaded` event of the package: relative path -> how many.
    async fn uploads(app: &TestApp, package_id: &str) -> Result<BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for e in app.audit_events(package_id, "file_uploaded").await? {
            let path = e["details"]["relative_path"].as_str().context("path")?;
            *out.entry(path.to_string()).or_insert(0) += 1;
        }
        Ok(out)
    }

    pub async fn push_pull_and_verify_a_run_directory(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        let expected = run_dir(&src, 50, 3000, LARGE)?;
        ensure!(expected.len() == 50);
        let url = app.base_url.clone();
        // The push goes through a proxy that counts the session's part `PUT`s on the wire.
        let parts = Proxy::start(url.trim_start_matches("http://"), "PUT /uploads/").await?;
        let started = Instant::now();
        let mut args = push_args(src.to_str().unwrap(), "nightly");
        args.push("--finalize");
        let (code, pushed, stderr) = json_run(cli(
            &app,
            &format!("http://{}", parts.addr),
            &app.tokens.producer,
            &args,
        ))?;
        let push_time = started.elapsed();
        ensure!(code == 0, "push exited {code}: {pushed}\n{stderr}");
        ensure!(
            pushed["uploaded"] == 50 && pushed["files"] == 50,
            "{pushed}"
        );
        // The large file (over the 64 MiB default threshold) went as 8 MiB parts, the
        // others as single `PUT`s.
        let part_count = LARGE.div_ceil(8 * MIB);
        ensure!(
            pushed["sessions"] == 1 && pushed["parts_uploaded"] == part_count,
            "{pushed}"
        );
        ensure!(
            parts.hits() == part_count,
            "{} part PUTs on the wire, {part_count} parts",
            parts.hits()
        );
        ensure!(
            stderr.contains("upload session ") && stderr.contains("big/evidence.bin"),
            "{stderr}"
        );
        ensure!(pushed["status"] == "finalized", "{pushed}");
        let pkg = pushed["package_id"]
            .as_str()
            .context("package_id")?
            .to_string();

        // The manifest the registry serves says exactly what the directory holds.
        let (status, manifest) = app
            .get_json(&app.tokens.reader, &format!("/packages/{pkg}/manifest"))
            .await?;
        ensure!(status == 200, "{manifest}");
        ensure!(pushed["manifest_sha256"] == manifest["manifest_sha256"]);
        ensure!(
            manifest["package"]["metadata"]["run_id"] == "42",
            "{manifest}"
        );
        let listed: BTreeMap<String, String> = manifest["files"]
            .as_array()
            .context("files")?
            .iter()
            .map(|f| {
                (
                    f["relative_path"].as_str().unwrap().to_string(),
                    f["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        ensure!(
            listed == expected,
            "manifest files differ from the directory"
        );
        let media: BTreeMap<&str, &str> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["relative_path"].as_str().unwrap(),
                    f["media_type"].as_str().unwrap(),
                )
            })
            .collect();
        ensure!(
            media["reports/file-16.json"] == "application/json",
            "{media:?}"
        );
        ensure!(
            media["ünïcødé/報告/résumé 13.md"] == "text/markdown",
            "{media:?}"
        );
        ensure!(uploads(&app, &pkg).await?.values().all(|n| *n == 1));

        // Pull into an empty directory with a reader's token (the file listing names the
        // ids): the same bytes, and `verify` agrees.
        let dst = scratch(&app, "pulled");
        let started = Instant::now();
        let (code, pulled, stderr) = json_run(cli(
            &app,
            &url,
            &app.tokens.reader,
            &["--json", "pull", &pkg, dst.to_str().unwrap()],
        ))?;
        let pull_time = started.elapsed();
        ensure!(code == 0, "pull exited {code}: {pulled}\n{stderr}");
        ensure!(
            pulled["downloaded"] == 50 && pulled["skipped"] == 0,
            "{pulled}"
        );
        ensure!(digests(&dst)? == expected, "pulled files differ");
        eprintln!("push {push_time:?}, pull {pull_time:?} (50 files, {LARGE} byte large file)");
        let verify = |dir: &Path| {
            json_run(cli(
                &app,
                &url,
                &app.tokens.reader,
                &["--json", "verify", &pkg, dir.to_str().unwrap()],
            ))
        };
        let (code, report, _) = verify(&dst)?;
        ensure!(
            code == 0 && report["identical"] == true,
            "verify: {code} {report}"
        );

        // A second pull finds everything in place and downloads nothing.
        let (code, again, _) = json_run(cli(
            &app,
            &url,
            &app.tokens.reader,
            &["--json", "pull", &pkg, dst.to_str().unwrap()],
        ))?;
        ensure!(
            code == 0 && again["skipped"] == 50 && again["bytes_downloaded"] == 0,
            "{again}"
        );

        // A partial download left behind is continued from where it stopped.
        let big = dst.join("big/evidence.bin");
        let partial = dst.join("big/.evidence.bin.as-partial");
        std::io::copy(
            &mut std::io::Read::take(std::fs::File::open(&big)?, (LARGE / 3) as u64),
            &mut std::fs::File::create(&partial)?,
        )?;
        std::fs::remove_file(&big)?;
        let (code, resumed, stderr) = json_run(cli(
            &app,
            &url,
            &app.tokens.reader,
            &[
                "--json",
                "pull",
                &pkg,
                dst.to_str().unwrap(),
                "--path",
                "big/**",
            ],
        ))?;
        ensure!(code == 0, "resumed pull: {resumed}\n{stderr}");
        ensure!(
            resumed["files"] == 1 && resumed["bytes_downloaded"] == (LARGE - LARGE / 3) as u64,
            "the partial file was not continued with Range: {resumed}"
        );
        ensure!(hash_path(&big)? == expected["big/evidence.bin"]);
        ensure!(!partial.exists());

        // Changed, missing and extra files: exit 3, each named.
        std::fs::write(dst.join("reports/file-16.json"), b"{\"tampered\":true}")?;
        let (code, report, _) = verify(&dst)?;
        ensure!(
            code == 3,
            "verify of a changed file exited {code}: {report}"
        );
        ensure!(
            report["changed"] == serde_json::json!(["reports/file-16.json"]),
            "{report}"
        );
        std::fs::remove_file(dst.join("logs/nightly/日志-2.log"))?;
        std::fs::write(dst.join("stray.txt"), b"x")?;
        let (code, report, _) = verify(&dst)?;
        ensure!(code == 3, "{report}");
        ensure!(
            report["missing"] == serde_json::json!(["logs/nightly/日志-2.log"]),
            "{report}"
        );
        ensure!(
            report["extra"] == serde_json::json!(["stray.txt"]),
            "{report}"
        );
        // The source directory is still identical (human output this time).
        let out = run(cli(
            &app,
            &url,
            &app.tokens.reader,
            &["verify", &pkg, src.to_str().unwrap()],
        ))?;
        ensure!(out.status.code() == Some(0), "{}", text(&out.stdout));
        ensure!(
            text(&out.stdout).contains("identical: 50 files"),
            "{}",
            text(&out.stdout)
        );
        Ok(())
    }

    pub async fn killed_push_resumes_without_uploading_twice(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        // 50 files of about 2 MiB, two at a time: long enough to be killed mid-way.
        let expected = run_dir(&src, 50, 2 * MIB, 0)?;
        let url = app.base_url.clone();
        let mut args = push_args(src.to_str().unwrap(), "killed");
        args.extend(["--jobs", "2"]);
        let mut cmd = cli(&app, &url, &app.tokens.producer, &args);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        // The package id comes first on stderr.
        let stderr = child.stderr.take().context("stderr")?;
        let first = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(stderr)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await??;
        let pkg = first
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("no package id in {first:?}"))?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = uploads(&app, &pkg).await?.len();
            if n >= 5 {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the push ended ({status}) before it could be killed");
            }
            ensure!(Instant::now() < deadline, "only {n} files after 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        // Uploads whose bodies were complete may still commit: let them settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = uploads(&app, &pkg).await?;
        let committed = before.len();
        ensure!(
            committed < 50,
            "the kill came too late: all 50 files were in"
        );
        eprintln!("killed with {committed} files committed");

        // The rerun, through a proxy that counts the PUTs on the wire, with the producer's
        // token and a state dir of its own (empty): the package's file listing alone says
        // what it holds.
        let addr = url.trim_start_matches("http://");
        let proxy = Proxy::start(addr, "PUT /packages/").await?;
        let mut args = push_args(src.to_str().unwrap(), "killed");
        args.extend(["--package", &pkg, "--finalize"]);
        let proxied = format!("http://{}", proxy.addr);
        let mut rerun = cli(&app, &proxied, &app.tokens.producer, &args);
        rerun.env("ARTIFACT_STORE_STATE_DIR", scratch(&app, "fresh-state"));
        let (code, resumed, stderr) = json_run(rerun)?;
        ensure!(code == 0, "rerun exited {code}: {resumed}\n{stderr}");
        ensure!(
            resumed["uploaded"] == (50 - committed) as u64
                && resumed["already_present"] == committed as u64,
            "rerun: {resumed} (with {committed} committed before)"
        );
        ensure!(
            proxy.hits() == 50 - committed,
            "{} PUTs on the rerun, {} files were missing",
            proxy.hits(),
            50 - committed
        );
        let after = uploads(&app, &pkg).await?;
        ensure!(after.len() == 50, "{} files uploaded", after.len());
        ensure!(
            after.values().all(|n| *n == 1),
            "a file was uploaded twice: {after:?}"
        );
        ensure!(
            after.keys().cloned().collect::<BTreeSet<_>>() == expected.keys().cloned().collect()
        );
        let out = run(cli(
            &app,
            &url,
            &app.tokens.reader,
            &["verify", &pkg, src.to_str().unwrap()],
        ))?;
        ensure!(
            out.status.code() == Some(0),
            "verify: {}",
            text(&out.stdout)
        );

        // Once more: the listing says everything is there, so nothing is sent.
        let proxy = Proxy::start(addr, "PUT /packages/").await?;
        let mut args = push_args(src.to_str().unwrap(), "killed");
        args.extend(["--package", &pkg]);
        let proxied = format!("http://{}", proxy.addr);
        let (code, again, stderr) = json_run(cli(&app, &proxied, &app.tokens.producer, &args))?;
        ensure!(code == 0, "{again}\n{stderr}");
        ensure!(
            again["uploaded"] == 0 && again["already_present"] == 50,
            "{again}"
        );
        ensure!(
            proxy.hits() == 0,
            "{} PUTs for a complete package",
            proxy.hits()
        );
        Ok(())
    }

    /// The large file of the session tests: 20 parts of 8 MiB.
    const SESSION_FILE: usize = 160 * MIB;

    /// Starts `args` (a push that creates a package holding one file over the session
    /// threshold) and kills it (`SIGKILL`) once the registry holds at least three parts
    /// of its upload session. Returns the package id, the session id and the parts the
    /// session holds after the kill has settled (received, missing).
    async fn push_killed_mid_session(
        app: &TestApp,
        args: &[&str],
    ) -> Result<(String, String, usize, usize)> {
        let mut cmd = cli(app, &app.base_url, &app.tokens.producer, args);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        // stderr is read to its end on a thread (a closed pipe would end the push early);
        // its lines come here.
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut pkg = None;
        let mut session = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while session.is_none() {
            let line = tokio::time::timeout_at(deadline.into(), rx.recv())
                .await
                .context("no upload session within 120 s")?
                .context("the push ended before it started an upload session")?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["created", "package", id, ..] => pkg = Some(id.to_string()),
                ["upload", "session", id, ..] => session = Some(id.to_string()),
                _ => {}
            }
        }
        let pkg = pkg.context("no package id on stderr")?;
        let session = session.unwrap();
        let received = |v: &Value| v["received"].as_array().map_or(0, Vec::len);
        loop {
            let (status, v) = app
                .get_json(&app.tokens.producer, &format!("/uploads/{session}"))
                .await?;
            ensure!(status == 200, "{status} {v}");
            if received(&v) >= 3 {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the push ended ({status}) before it could be killed");
            }
            ensure!(
                Instant::now() < deadline,
                "{} parts after 120 s",
                received(&v)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        // A part whose body was complete may still be recorded: let it settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (status, v) = app
            .get_json(&app.tokens.producer, &format!("/uploads/{session}"))
            .await?;
        ensure!(status == 200, "{status} {v}");
        let missing = v["missing"].as_array().context("missing")?.len();
        ensure!(
            missing > 0,
            "the kill came too late: every part was in ({v})"
        );
        Ok((pkg, session, received(&v), missing))
    }

    pub async fn killed_session_resumes_from_the_missing_parts(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        let expected = run_dir(&src, 3, 1000, SESSION_FILE)?;
        let part_count = SESSION_FILE.div_ceil(8 * MIB);
        let addr = app.base_url.trim_start_matches("http://").to_string();
        let args = push_args(src.to_str().unwrap(), "session");
        let (pkg, session, received, missing) = push_killed_mid_session(&app, &args).await?;
        ensure!(received + missing == part_count, "{received} + {missing}");
        eprintln!("killed with {received} of {part_count} parts received");

        // The rerun resumes the session: exactly the missing parts go on the wire.
        let proxy = Proxy::start(&addr, "PUT /uploads/").await?;
        let mut rerun = push_args(src.to_str().unwrap(), "session");
        rerun.extend(["--package", &pkg, "--finalize"]);
        let proxied = format!("http://{}", proxy.addr);
        let (code, resumed, stderr) = json_run(cli(&app, &proxied, &app.tokens.producer, &rerun))?;
        ensure!(code == 0, "rerun exited {code}: {resumed}\n{stderr}");
        ensure!(
            stderr.contains(&format!("resuming upload session {session}")),
            "{stderr}"
        );
        ensure!(
            proxy.hits() == missing,
            "{} part PUTs on the rerun, {missing} parts were missing",
            proxy.hits()
        );
        ensure!(
            resumed["parts_already_received"] == received && resumed["parts_uploaded"] == missing,
            "{resumed}"
        );
        ensure!(resumed["status"] == "finalized", "{resumed}");
        let (status, _) = app
            .get_json(&app.tokens.producer, &format!("/uploads/{session}"))
            .await?;
        ensure!(
            status == 404,
            "the completed session is still there ({status})"
        );
        let (_, manifest) = app
            .get_json(&app.tokens.reader, &format!("/packages/{pkg}/manifest"))
            .await?;
        let listed: BTreeMap<String, String> = manifest["files"]
            .as_array()
            .context("files")?
            .iter()
            .map(|f| {
                (
                    f["relative_path"].as_str().unwrap_or("").to_string(),
                    f["sha256"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        ensure!(
            listed == expected,
            "manifest files differ from the directory"
        );
        ensure!(uploads(&app, &pkg).await?.values().all(|n| *n == 1));
        // The state file of that package is gone with its last session.
        ensure!(
            !app.state_dir
                .join("cli-state")
                .join(format!("sessions-{pkg}.json"))
                .exists(),
            "the session state outlived the push"
        );

        // A session the registry no longer has (aborted here) is started over: every part
        // is sent again, into a new session, and the push completes.
        let args = push_args(src.to_str().unwrap(), "session-aborted");
        let (pkg, session, _, _) = push_killed_mid_session(&app, &args).await?;
        let aborted = app
            .req(
                reqwest::Method::DELETE,
                Some(&app.tokens.producer),
                &format!("/uploads/{session}"),
            )
            .send()
            .await?;
        ensure!(aborted.status().as_u16() == 204, "{}", aborted.status());
        let proxy = Proxy::start(&addr, "PUT /uploads/").await?;
        let mut rerun = push_args(src.to_str().unwrap(), "session-aborted");
        rerun.extend(["--package", &pkg, "--finalize"]);
        let proxied = format!("http://{}", proxy.addr);
        let (code, again, stderr) = json_run(cli(&app, &proxied, &app.tokens.producer, &rerun))?;
        ensure!(code == 0, "rerun exited {code}: {again}\n{stderr}");
        ensure!(
            proxy.hits() == part_count && again["parts_already_received"] == 0,
            "{} part PUTs into a new session: {again}",
            proxy.hits()
        );
        ensure!(!stderr.contains("resuming upload session"), "{stderr}");
        let out = run(cli(
            &app,
            &app.base_url,
            &app.tokens.reader,
            &["verify", &pkg, src.to_str().unwrap()],
        ))?;
        ensure!(
            out.status.code() == Some(0),
            "verify: {}",
            text(&out.stdout)
        );
        Ok(())
    }

    /// `push --direct`: on S3 a big file goes straight to storage with the session's
    /// presigned URL (no part through the registry) and is committed; on kv the registry
    /// answers with ordinary parts and the same push sends them.
    pub async fn push_direct_sends_big_files_straight_to_storage(cfg: Config) -> Result<()> {
        let s3 = cfg.bytes == artifact_store_tests::Bytes::S3;
        let app = start!(cfg);
        let src = scratch(&app, "direct");
        write(&src, "big/bundle.bin", &pseudo_random(31, 20 * MIB + 7))?;
        write(&src, "small.txt", b"small")?;
        let url = app.base_url.clone();
        let parts = Proxy::start(url.trim_start_matches("http://"), "PUT /uploads/").await?;
        let mut args = push_args(src.to_str().unwrap(), "direct");
        args.extend(["--finalize", "--direct", "--session-threshold", "8MiB"]);
        let (code, pushed, stderr) = json_run(cli(
            &app,
            &format!("http://{}", parts.addr),
            &app.tokens.producer,
            &args,
        ))?;
        ensure!(code == 0, "push exited {code}: {pushed}\n{stderr}");
        ensure!(pushed["sessions"] == 1 && pushed["files"] == 2, "{pushed}");
        let through_registry = if s3 { 0 } else { 3 };
        ensure!(
            parts.hits() == through_registry,
            "{} part PUTs through the registry, expected {through_registry}",
            parts.hits()
        );
        let pkg = pushed["package_id"].as_str().context("package_id")?;
        let out = run(cli(
            &app,
            &app.base_url,
            &app.tokens.reader,
            &["verify", pkg, src.to_str().unwrap()],
        ))?;
        ensure!(
            out.status.code() == Some(0),
            "verify: {}",
            text(&out.stdout)
        );
        Ok(())
    }

    /// A registry in front of the app that answers 503 (with `Retry-After: 1`) to its first
    /// `failures` requests, one per connection, and forwards everything after.
    struct Flaky {
        addr: String,
        served_503: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Flaky {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn flaky(upstream: &str, failures: usize) -> Result<Flaky> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    tokio::spawn(async move {
                        let _ = answer_503(&mut client).await;
                    });
                } else {
                    count.fetch_sub(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
        });
        Ok(Flaky {
            addr,
            served_503: served,
            task,
        })
    }

    /// Reads one request (head and `Content-Length` body) and answers 503, closing.
    async fn answer_503(sock: &mut tokio::net::TcpStream) -> Result<()> {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            let n = sock.read(&mut chunk).await?;
            ensure!(n > 0, "closed before a request");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut have = buf.len() - head_end;
        while have < length {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            have += n;
        }
        let body = r#"{"type":"https://artifact-store.dev/problems/backend_unavailable","title":"Service Unavailable","status":503,"detail":"test: try later","code":"backend_unavailable"}"#;
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(reply.as_bytes()).await?;
        sock.shutdown().await?;
        Ok(())
    }

    pub async fn push_retries_through_503s(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        let expected = run_dir(&src, 6, 100 * 1024, 0)?;
        let flaky = flaky(app.base_url.trim_start_matches("http://"), 5).await?;
        let url = format!("http://{}", flaky.addr);
        let mut args = push_args(src.to_str().unwrap(), "flaky");
        args.push("--finalize");
        let started = Instant::now();
        let (code, pushed, stderr) = json_run(cli(&app, &url, &app.tokens.producer, &args))?;
        ensure!(code == 0, "push exited {code}: {pushed}\n{stderr}");
        ensure!(
            flaky.served_503.load(Ordering::SeqCst) == 5,
            "the proxy never answered 503"
        );
        ensure!(
            stderr.matches("retrying").count() >= 5,
            "retries not reported:\n{stderr}"
        );
        // Five `Retry-After: 1` were honoured.
        ensure!(
            started.elapsed() >= Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let pkg = pushed["package_id"].as_str().context("package_id")?;
        let (status, manifest) = app
            .get_json(&app.tokens.reader, &format!("/packages/{pkg}/manifest"))
            .await?;
        ensure!(
            status == 200 && manifest["files"].as_array().map(Vec::len) == Some(expected.len())
        );

        // With no retries left the same registry is a failure, exit 1.
        let flaky = flaky_again(&app, 3).await?;
        let url = format!("http://{}", flaky.addr);
        let out = run(cli(
            &app,
            &url,
            &app.tokens.producer,
            &["--retries", "1", "show", pkg],
        ))?;
        ensure!(out.status.code() == Some(1), "{}", text(&out.stderr));
        ensure!(
            text(&out.stderr).contains("backend_unavailable"),
            "{}",
            text(&out.stderr)
        );
        Ok(())
    }

    async fn flaky_again(app: &TestApp, failures: usize) -> Result<Flaky> {
        flaky(app.base_url.trim_start_matches("http://"), failures).await
    }

    /// Single quotes for `sh -c`.
    fn sh_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', r"'\''"))
    }

    pub async fn progress_bars_on_a_terminal_only(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        if Command::new("script").arg("--version").output().is_err() {
            bail!("`script` (util-linux) is needed to run the CLI under a pseudo-terminal");
        }
        let src = scratch(&app, "run");
        run_dir(&src, 8, MIB, 0)?;
        let url = app.base_url.clone();
        // Under a pseudo-terminal: stderr is a terminal, so bars are drawn.
        let args: Vec<String> = push_args(src.to_str().unwrap(), "tty")
            .into_iter()
            .skip(1) // no --json: output for a person
            .map(sh_quote)
            .collect();
        let line = format!(
            "{} {}",
            sh_quote(cli_bin().to_str().unwrap()),
            args.join(" ")
        );
        let mut script = Command::new("script");
        script
            .args(["-qfec", &line, "/dev/null"])
            .env("ARTIFACT_STORE_URL", &url)
            .env("ARTIFACT_STORE_TOKEN", &app.tokens.producer)
            .env("ARTIFACT_STORE_STATE_DIR", app.state_dir.join("cli-state"))
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        let out = run(script)?;
        let tty = text(&out.stdout);
        ensure!(out.status.code() == Some(0), "under script: {tty}");
        for mark in ["upload", "ETA", "/s", "8/8 files", "[="] {
            ensure!(
                tty.contains(mark),
                "no {mark:?} in the terminal output:\n{tty}"
            );
        }
        ensure!(tty.contains("package "), "{tty}");

        // Piped: the same push draws nothing on stderr.
        let args: Vec<&str> = push_args(src.to_str().unwrap(), "piped")
            .into_iter()
            .skip(1)
            .collect();
        let out = run(cli(&app, &url, &app.tokens.producer, &args))?;
        ensure!(out.status.code() == Some(0), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        for mark in ["ETA", "/s", "[=", "\r", "\x1b["] {
            ensure!(
                !stderr.contains(mark),
                "{mark:?} drawn while piped:\n{stderr}"
            );
        }
        ensure!(
            text(&out.stdout).contains("files 8 (8 uploaded"),
            "{}",
            text(&out.stdout)
        );
        Ok(())
    }

    pub async fn refused_files_stop_the_push_before_any_upload(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        run_dir(&src, 5, 1000, 0)?;
        let url = app.base_url.clone();
        let t = &app.tokens;
        // A symlink and a name with a bidi override (the registry refuses it): both named,
        // exit 1, and no package was even created.
        std::os::unix::fs::symlink("reports", src.join("link-to-reports"))?;
        std::fs::write(src.join("invoice\u{202e}fdp.exe"), b"x")?;
        let out = run(cli(
            &app,
            &url,
            &t.producer,
            &push_args(src.to_str().unwrap(), "refused")[1..],
        ))?;
        let stderr = text(&out.stderr);
        ensure!(out.status.code() == Some(1), "{stderr}");
        ensure!(
            stderr.contains("link-to-reports") && stderr.contains("symbolic link"),
            "{stderr}"
        );
        ensure!(stderr.contains("bidirectional"), "{stderr}");
        ensure!(stderr.contains("nothing was uploaded"), "{stderr}");
        let (_, listed) = app.get_json(&t.reader, "/packages?name=refused").await?;
        ensure!(
            listed["items"].as_array().is_some_and(Vec::is_empty),
            "{listed}"
        );
        std::fs::remove_file(src.join("link-to-reports"))?;
        std::fs::remove_file(src.join("invoice\u{202e}fdp.exe"))?;

        // Resuming with a file changed since: a conflict, found before any upload.
        let (code, pushed, stderr) = json_run(cli(
            &app,
            &url,
            &t.all,
            &push_args(src.to_str().unwrap(), "changed"),
        ))?;
        ensure!(code == 0, "{pushed}\n{stderr}");
        let pkg = pushed["package_id"].as_str().context("id")?.to_string();
        std::fs::write(src.join("file-0.json"), b"{\"changed\":true}")?;
        std::fs::write(src.join("new.txt"), b"new")?;
        let mut args = push_args(src.to_str().unwrap(), "changed");
        args.extend(["--package", &pkg]);
        let out = run(cli(&app, &url, &t.all, &args[1..]))?;
        let stderr = text(&out.stderr);
        ensure!(out.status.code() == Some(1), "{stderr}");
        ensure!(stderr.contains("conflict: file-0.json"), "{stderr}");
        ensure!(
            uploads(&app, &pkg).await?.len() == 5,
            "a file was uploaded after all"
        );
        Ok(())
    }

    pub async fn read_and_operator_commands(cfg: Config) -> Result<()> {
        let app = start!(cfg);
        let src = scratch(&app, "run");
        run_dir(&src, 3, 1000, 0)?;
        let url = app.base_url.clone();
        let t = &app.tokens;
        let mut args = push_args(src.to_str().unwrap(), "ops");
        args.extend(["--meta", "run_id=7", "--finalize"]);
        let (code, pushed, stderr) = json_run(cli(&app, &url, &t.producer, &args))?;
        ensure!(code == 0, "{pushed}\n{stderr}");
        let pkg = pushed["package_id"].as_str().context("id")?.to_string();
        let ok = |token: &str, args: &[&str]| -> Result<Value> {
            let (code, v, stderr) = json_run(cli(&app, &url, token, args))?;
            ensure!(code == 0, "{args:?} exited {code}: {v}\n{stderr}");
            Ok(v)
        };

        let listed = ok(
            &t.reader,
            &[
                "--json",
                "ls",
                "--producer",
                "guide-board",
                "--meta",
                "run_id=7",
            ],
        )?;
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        ensure!(ids == [pkg.as_str()], "{listed}");
        let none = ok(
            &t.reader,
            &[
                "--json",
                "ls",
                "--meta",
                "run_id=8",
                "--status",
                "finalized",
            ],
        )?;
        ensure!(
            none["items"].as_array().is_some_and(Vec::is_empty),
            "{none}"
        );
        let shown = ok(&t.reader, &["--json", "show", &pkg])?;
        ensure!(
            shown["status"] == "finalized" && shown["file_count"] == 3,
            "{shown}"
        );

        // `manifest` prints the registry's bytes unchanged.
        let out = run(cli(&app, &url, &t.reader, &["manifest", &pkg]))?;
        let served = app
            .req(
                reqwest::Method::GET,
                Some(&t.reader),
                &format!("/packages/{pkg}/manifest"),
            )
            .send()
            .await?
            .text()
            .await?;
        ensure!(text(&out.stdout).trim_end() == served, "manifest differs");

        let hold = ok(
            &t.operator,
            &["--json", "hold", &pkg, "--reason", "legal review"],
        )?;
        let hold_id = hold["id"].as_str().context("hold id")?;
        let shown = ok(&t.reader, &["--json", "show", &pkg])?;
        ensure!(shown["holds"][0]["id"] == hold_id, "{shown}");
        let released = ok(
            &t.operator,
            &["--json", "release", &pkg, hold_id, "--reason", "cleared"],
        )?;
        ensure!(released["released_at"].is_string(), "{released}");
        let extended = ok(
            &t.operator,
            &[
                "--json",
                "extend",
                &pkg,
                "--until",
                "2099-01-01T00:00:00Z",
                "--reason",
                "audit",
            ],
        )?;
        ensure!(
            extended["new_expires_at"] == "2099-01-01T00:00:00Z",
            "{extended}"
        );
        let plan = ok(
            &t.operator,
            &["--json", "sweep", "--dry-run", "--limit", "10"],
        )?;
        ensure!(
            plan["would_delete"].is_array() && plan["kept"].is_array(),
            "{plan}"
        );
        let swept = ok(&t.operator, &["--json", "sweep"])?;
        ensure!(
            swept["examined"].is_u64() && swept["deleted"] == 0,
            "{swept}"
        );
        let audit = ok(&t.operator, &["--json", "audit", "verify"])?;
        ensure!(audit["valid"] == true, "{audit}");
        let out = run(cli(&app, &url, &t.operator, &["audit", "verify"]))?;
        ensure!(out.status.code() == Some(0) && text(&out.stdout).starts_with("valid:"));

        // A producer is no operator: the registry's 403 is a failure, exit 1.
        let out = run(cli(
            &app,
            &url,
            &t.producer,
            &["hold", &pkg, "--reason", "x"],
        ))?;
        ensure!(out.status.code() == Some(1), "{}", text(&out.stderr));
        ensure!(
            text(&out.stderr).contains("403 forbidden"),
            "{}",
            text(&out.stderr)
        );
        Ok(())
    }
}

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness); [
    push_pull_and_verify_a_run_directory,
    killed_push_resumes_without_uploading_twice,
    killed_session_resumes_from_the_missing_parts,
    push_retries_through_503s,
    progress_bars_on_a_terminal_only,
    refused_files_stop_the_push_before_any_upload,
    read_and_operator_commands,
    push_direct_sends_big_files_straight_to_storage,
]);
