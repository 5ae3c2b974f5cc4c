//! Schema migrations, as sqlx keeps them: numbered `NNNN_name.sql` files applied in order,
//! recorded in a ledger table `schema_migrations(version, name, checksum, applied_at)`.
//!
//! Decisions:
//! - The sets are embedded at build time (`build.rs`), which refuses gaps and duplicates.
//! - `run` holds the adapter's lock for the whole run, so concurrent instances apply each
//!   migration once (Postgres: a session advisory lock; SQLite: `BEGIN IMMEDIATE` inside
//!   `apply`, with the ledger re-checked in that transaction, which makes a racing second
//!   runner a no-op).
//! - A migration whose file changed after it was applied (checksum differs) is an error, not
//!   a re-run; so is a ledger row this build does not know (the database is newer than the
//!   code). Re-running is idempotent.
//! - Each migration and its ledger row commit in one transaction.

#![allow(async_fn_in_trait)] // single-threaded guests: no `Send` bounds wanted

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// One numbered migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: Cow<'static, str>,
    pub sql: Cow<'static, str>,
    /// Lower-case hex sha256 of `sql`.
    pub checksum: Cow<'static, str>,
}

impl Migration {
    /// A migration built at run time (tests, tools); the checksum is computed.
    pub fn new(
        version: u32,
        name: impl Into<Cow<'static, str>>,
        sql: impl Into<Cow<'static, str>>,
    ) -> Self {
        let sql = sql.into();
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        Migration {
            version,
            name: name.into(),
            sql,
            checksum: checksum.into(),
        }
    }

    /// The SQL split into single statements, for drivers that execute one at a time.
    pub fn statements(&self) -> Vec<String> {
        split_statements(&self.sql)
    }
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The ledger table (SQLite).
pub const SQLITE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)";
/// The ledger table (PostgreSQL).
pub const POSTGRES_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)";
/// Both dialects: the applied versions and checksums.
pub const SELECT_APPLIED: &str = "SELECT version, checksum FROM schema_migrations ORDER BY version";
pub const SQLITE_INSERT_APPLIED: &str =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)";
pub const POSTGRES_INSERT_APPLIED: &str =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)";
/// Whether one version is already recorded (for the re-check inside SQLite's transaction).
pub const SQLITE_IS_APPLIED: &str = "SELECT 1 FROM schema_migrations WHERE version = ?1";
/// The advisory lock key: `"ArtStore"` as a big-endian i64.
pub const POSTGRES_LOCK_KEY: i64 = 0x4172_7453_746f_7265;
pub const POSTGRES_LOCK: &str = "SELECT pg_advisory_lock(4715959661594899045)";
pub const POSTGRES_UNLOCK: &str = "SELECT pg_advisory_unlock(4715959661594899045)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    #[error("migrate: the migration set is invalid: {0}")]
    InvalidSet(String),
    #[error(
        "migrate: migration {version:04}_{name} was edited after it was applied \
         (checksum {applied} in the ledger, {current} now); add a new migration instead"
    )]
    Edited {
        version: u32,
        name: String,
        applied: String,
        current: String,
    },
    #[error("migrate: the database has migration {version:04}, which this build does not know")]
    UnknownApplied { version: u32 },
    #[error("migrate::{stage} failed: {detail}")]
    Conn { stage: &'static str, detail: String },
}

/// What a database adapter provides to the runner. All calls run on one connection.
pub trait MigrationConn {
    type Error: std::fmt::Display;
    /// Excludes other runners until `unlock` (may be a no-op if `apply` re-checks).
    async fn lock(&self) -> Result<(), Self::Error>;
    async fn unlock(&self) -> Result<(), Self::Error>;
    /// Creates the ledger table if missing (`SQLITE_LEDGER` / `POSTGRES_LEDGER`).
    async fn ensure_ledger(&self) -> Result<(), Self::Error>;
    /// `(version, checksum)` of every ledger row.
    async fn applied(&self) -> Result<Vec<(u32, String)>, Self::Error>;
    /// Runs `m.sql` and inserts its ledger row in one transaction. Returns `false` when the
    /// version turned out to be applied already (another runner won a race).
    async fn apply(&self, m: &Migration, applied_at: &str) -> Result<bool, Self::Error>;
}

/// Checks that versions run 1, 2, 3... and that checksums match the SQL.
pub fn check_set(set: &[Migration]) -> Result<(), MigrateError> {
    for (i, m) in set.iter().enumerate() {
        if m.version != i as u32 + 1 {
            return Err(MigrateError::InvalidSet(format!(
                "expected version {}, found {} ({})",
                i + 1,
                m.version,
                m.name
            )));
        }
        if m.checksum != hex::encode(Sha256::digest(m.sql.as_bytes())) {
            return Err(MigrateError::InvalidSet(format!(
                "checksum of {} is stale",
                m.name
            )));
        }
    }
    Ok(())
}

fn conn_err<E: std::fmt::Display>(stage: &'static str) -> impl Fn(E) -> MigrateError {
    move |e| MigrateError::Conn {
        stage,
        detail: e.to_string(),
    }
}

/// Applies what is missing of `set`; returns the versions this call applied.
pub async fn run(conn: &impl MigrationConn, set: &[Migration]) -> Result<Vec<u32>, MigrateError> {
    check_set(set)?;
    conn.lock().await.map_err(conn_err("lock"))?;
    let result = run_locked(conn, set).await;
    let unlocked = conn.unlock().await.map_err(conn_err("unlock"));
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn run_locked(
    conn: &impl MigrationConn,
    set: &[Migration],
) -> Result<Vec<u32>, MigrateError> {
    conn.ensure_ledger()
        .await
        .map_err(conn_err("ensure_ledger"))?;
    let ledger = conn.applied().await.map_err(conn_err("applied"))?;
    for (version, checksum) in &ledger {
        let Some(m) = set.iter().find(|m| m.version == *version) else {
            return Err(MigrateError::UnknownApplied { version: *version });
        };
        if *checksum != m.checksum {
            return Err(MigrateError::Edited {
                version: m.version,
                name: m.name.to_string(),
                applied: checksum.clone(),
                current: m.checksum.to_string(),
            });
        }
    }
    let mut done = Vec::new();
    for m in set
        .iter()
        .filter(|m| !ledger.iter().any(|(v, _)| *v == m.version))
    {
        let now = crate::time::format(crate::time::now());
        if conn.apply(m, &now).await.map_err(conn_err("apply"))? {
            done.push(m.version);
        }
    }
    Ok(done)
}

/// Splits SQL into statements at top-level `;`, respecting quotes (`'`, `"`), comments
/// (`--`, `/* */`), Postgres dollar quotes (`$tag$...$tag$`) and SQLite trigger bodies
/// (`CREATE TRIGGER ... BEGIN ...; END;`). Comment-only pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let mut has_code = false;
    let mut begin_depth = 0usize; // open BEGIN blocks inside a CREATE TRIGGER
    let mut in_trigger = false;
    let mut word = String::new();
    let mut words: Vec<String> = Vec::new(); // the statement's first words
    let flush_word =
        |word: &mut String, words: &mut Vec<String>, in_trigger: &mut bool, depth: &mut usize| {
            if word.is_empty() {
                return;
            }
            let w = word.to_ascii_uppercase();
            if words.len() < 4 {
                words.push(w.clone());
                *in_trigger = words.first().is_some_and(|f| f == "CREATE")
                    && words.iter().any(|x| x == "TRIGGER");
            }
            if *in_trigger {
                if w == "BEGIN" || w == "CASE" {
                    *depth += 1;
                } else if w == "END" && *depth > 0 {
                    *depth -= 1;
                }
            }
            word.clear();
        };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            word.push(c as char);
            has_code = true;
            i += 1;
            continue;
        }
        flush_word(&mut word, &mut words, &mut in_trigger, &mut begin_depth);
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            b'\'' | b'"' => {
                has_code = true;
                let mut j = i + 1;
                while j < b.len() {
                    if b[j] == c {
                        if b.get(j + 1) == Some(&c) {
                            j += 2; // doubled quote
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
            }
            b'$' => {
                has_code = true;
                let tag_end =
                    sql[i + 1..].find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'));
                match tag_end.map(|n| i + 1 + n) {
                    Some(e) if b[e] == b'$' => {
                        let tag = &sql[i..=e];
                        i = sql[e + 1..]
                            .find(tag)
                            .map_or(b.len(), |n| e + 1 + n + tag.len());
                    }
                    _ => i += 1, // a positional parameter like $1
                }
            }
            b';' if begin_depth == 0 => {
                if has_code {
                    out.push(sql[start..=i].trim().to_string());
                }
                i += 1;
                start = i;
                has_code = false;
                in_trigger = false;
                words.clear();
            }
            c => {
                if !c.is_ascii_whitespace() {
                    has_code = true;
                }
                i += 1;
            }
        }
    }
    if has_code && !sql[start..].trim().is_empty() {
        out.push(sql[start..].trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sets_are_consistent() {
        check_set(SQLITE).unwrap();
        check_set(POSTGRES).unwrap();
        for m in SQLITE.iter().chain(POSTGRES) {
            assert!(!m.name.is_empty());
            assert!(!m.statements().is_empty(), "{} has statements", m.name);
        }
    }

    #[test]
    fn check_set_refuses_gaps_and_stale_checksums() {
        let a = Migration::new(1, "a", "SELECT 1;");
        let c = Migration::new(3, "c", "SELECT 3;");
        assert!(matches!(
            check_set(&[a.clone(), c]),
            Err(MigrateError::InvalidSet(_))
        ));
        let mut stale = a.clone();
        stale.sql = "SELECT 2;".into();
        assert!(matches!(
            check_set(&[stale]),
            Err(MigrateError::InvalidSet(_))
        ));
        check_set(&[a]).unwrap();
    }

    #[test]
    fn lock_key_matches_the_sql() {
        assert!(POSTGRES_LOCK.contains(&POSTGRES_LOCK_KEY.to_string()));
        assert!(POSTGRES_UNLOCK.contains(&POSTGRES_LOCK_KEY.to_string()));
    }

    #[test]
    fn splits_statements() {
        let sql = "-- header; with semicolon\nCREATE TABLE a (x TEXT DEFAULT 'a;b'); /* c; */\n\
                   INSERT INTO a VALUES ('it''s; fine');\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = CASE WHEN 1 THEN 'y' END; DELETE FROM a; END;\n\
                   SELECT $1; -- trailing comment";
        let s = split_statements(sql);
        assert_eq!(s.len(), 5, "{s:#?}");
        assert!(s[0].ends_with("DEFAULT 'a;b');"));
        assert!(s[1].starts_with("/* c; */") || s[1].starts_with("INSERT"));
        assert!(s[2].contains("$body$ SELECT 1; $body$"));
        assert!(s[3].starts_with("CREATE TRIGGER") && s[3].ends_with("END;"));
        assert_eq!(s[4], "SELECT $1;");
        assert!(split_statements("-- only a comment\n").is_empty());
    }
}
