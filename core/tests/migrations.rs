//! The migration runner against real databases: a SQLite file (rusqlite) and PostgreSQL at
//! 127.0.0.1:5432 (`user=postgres dbname=test`), each test in a fresh schema.
//!
//! The `MigrationConn` implementations here are model adapters written for these tests
//! (SQLite re-checks the ledger inside `BEGIN IMMEDIATE`; Postgres takes a session advisory
//! lock), not the production ones in `handlers`: these tests cover `core::migrate::run`
//! itself. The production adapters are tested in `handlers/common/tests`
//! (`metadata_sqlite.rs` `threaded_first_migrations_apply_each_once` and the
//! `concurrent_first_migrations` scenario on SQLite and PostgreSQL).

use std::path::PathBuf;

use artifact_store_core::migrate::{self, MigrateError, Migration, MigrationConn};
use rusqlite::{Connection, OptionalExtension};
use tokio_postgres::{Client, NoTls};

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

struct Sqlite(Connection);

impl Sqlite {
    fn open(path: &PathBuf) -> Sqlite {
        let c = Connection::open(path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        Sqlite(c)
    }

    fn apply_in_tx(&self, m: &Migration, applied_at: &str) -> rusqlite::Result<bool> {
        let c = &self.0;
        if c.query_row(migrate::SQLITE_IS_APPLIED, [m.version], |_| Ok(()))
            .optional()?
            .is_some()
        {
            return Ok(false);
        }
        // One statement at a time, as Spin's SQLite interface executes them.
        for s in m.statements() {
            c.execute_batch(&s)?;
        }
        c.execute(
            migrate::SQLITE_INSERT_APPLIED,
            rusqlite::params![m.version, m.name.as_ref(), m.checksum.as_ref(), applied_at],
        )?;
        Ok(true)
    }
}

impl MigrationConn for Sqlite {
    type Error = rusqlite::Error;
    async fn lock(&self) -> Result<(), Self::Error> {
        Ok(()) // `apply` serializes through BEGIN IMMEDIATE instead
    }
    async fn unlock(&self) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn ensure_ledger(&self) -> Result<(), Self::Error> {
        self.0.execute_batch(migrate::SQLITE_LEDGER)
    }
    async fn applied(&self) -> Result<Vec<(u32, String)>, Self::Error> {
        let mut st = self.0.prepare(migrate::SELECT_APPLIED)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    }
    async fn apply(&self, m: &Migration, applied_at: &str) -> Result<bool, Self::Error> {
        self.0.execute_batch("BEGIN IMMEDIATE")?;
        match self.apply_in_tx(m, applied_at) {
            Ok(applied) => {
                self.0
                    .execute_batch(if applied { "COMMIT" } else { "ROLLBACK" })?;
                Ok(applied)
            }
            Err(e) => {
                let _ = self.0.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn temp_db() -> PathBuf {
    std::env::temp_dir().join(format!(
        "artifact-store-core-{}.sqlite",
        uuid::Uuid::now_v7()
    ))
}

fn set(sqls: &[&'static str]) -> Vec<Migration> {
    sqls.iter()
        .enumerate()
        .map(|(i, sql)| Migration::new(i as u32 + 1, format!("m{}", i + 1), *sql))
        .collect()
}

fn sqlite_tables(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

const A: &str = "CREATE TABLE a (x TEXT);";
const B: &str = "CREATE TABLE b (y TEXT); INSERT INTO b VALUES ('semi;colon');";
const C: &str = "CREATE TABLE c (z TEXT);";

#[test]
fn sqlite_applies_in_order_then_is_idempotent() {
    let path = temp_db();
    let db = Sqlite::open(&path);
    assert_eq!(
        block_on(migrate::run(&db, &set(&[A, B]))).unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        block_on(migrate::run(&db, &set(&[A, B]))).unwrap(),
        Vec::<u32>::new()
    );
    // A new migration is applied on its own.
    assert_eq!(
        block_on(migrate::run(&db, &set(&[A, B, C]))).unwrap(),
        vec![3]
    );
    assert_eq!(sqlite_tables(&db.0), ["a", "b", "c", "schema_migrations"]);
    let rows: Vec<(u32, String)> = block_on(db.applied()).unwrap();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rows[1].1, set(&[A, B])[1].checksum);
    let b: String = db.0.query_row("SELECT y FROM b", [], |r| r.get(0)).unwrap();
    assert_eq!(b, "semi;colon");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn sqlite_refuses_an_edited_migration() {
    let path = temp_db();
    let db = Sqlite::open(&path);
    block_on(migrate::run(&db, &set(&[A, B]))).unwrap();
    let edited = set(&[A, "CREATE TABLE b (y TEXT, extra TEXT);"]);
    match block_on(migrate::run(&db, &edited)) {
        Err(MigrateError::Edited { version: 2, .. }) => {}
        other => panic!("expected Edited, got {other:?}"),
    }
    // Nothing was re-run.
    let cols: i64 =
        db.0.query_row("SELECT count(*) FROM pragma_table_info('b')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(cols, 1);
    // A database newer than the build is refused too.
    assert_eq!(
        block_on(migrate::run(&db, &set(&[A]))),
        Err(MigrateError::UnknownApplied { version: 2 })
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn sqlite_failed_migration_leaves_nothing() {
    let path = temp_db();
    let db = Sqlite::open(&path);
    let broken = set(&[A, "CREATE TABLE b (y TEXT); THIS IS NOT SQL;"]);
    let err = block_on(migrate::run(&db, &broken)).unwrap_err();
    assert!(
        matches!(err, MigrateError::Conn { stage: "apply", .. }),
        "{err}"
    );
    assert_eq!(sqlite_tables(&db.0), ["a", "schema_migrations"]);
    assert_eq!(block_on(db.applied()).unwrap().len(), 1);
    std::fs::remove_file(path).unwrap();
}

/// `migrate::run` on four threads, with the model SQLite adapter: each run reports only the
/// versions it applied (a lost race is `apply` returning `false`), so together they report
/// each version once. The production adapter's race: `threaded_first_migrations_apply_each_once`
/// in `handlers/common/tests/metadata_sqlite.rs`.
#[test]
fn run_with_model_sqlite_adapter_reports_each_version_once_across_threads() {
    let path = temp_db();
    Sqlite::open(&path); // create the file
    let slow = set(&[A, B, C]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (path, slow) = (path.clone(), slow.clone());
            std::thread::spawn(move || block_on(migrate::run(&Sqlite::open(&path), &slow)).unwrap())
        })
        .collect();
    let mut all: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, [1, 2, 3]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn sqlite_real_set_applies_and_reruns_cleanly() {
    let path = temp_db();
    let db = Sqlite::open(&path);
    let expected: Vec<u32> = migrate::SQLITE.iter().map(|m| m.version).collect();
    assert_eq!(
        block_on(migrate::run(&db, migrate::SQLITE)).unwrap(),
        expected
    );
    assert_eq!(
        block_on(migrate::run(&db, migrate::SQLITE)).unwrap(),
        Vec::<u32>::new()
    );
    std::fs::remove_file(path).unwrap();
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

struct Pg(Client);

impl Pg {
    async fn apply_in_tx(
        &self,
        m: &Migration,
        applied_at: &str,
    ) -> Result<(), tokio_postgres::Error> {
        self.0.batch_execute(&m.sql).await?;
        self.0
            .execute(
                migrate::POSTGRES_INSERT_APPLIED,
                &[
                    &(m.version as i32),
                    &m.name.as_ref(),
                    &m.checksum.as_ref(),
                    &applied_at,
                ],
            )
            .await?;
        Ok(())
    }
}

impl MigrationConn for Pg {
    type Error = tokio_postgres::Error;
    async fn lock(&self) -> Result<(), Self::Error> {
        self.0.batch_execute(migrate::POSTGRES_LOCK).await
    }
    async fn unlock(&self) -> Result<(), Self::Error> {
        self.0.batch_execute(migrate::POSTGRES_UNLOCK).await
    }
    async fn ensure_ledger(&self) -> Result<(), Self::Error> {
        self.0.batch_execute(migrate::POSTGRES_LEDGER).await
    }
    async fn applied(&self) -> Result<Vec<(u32, String)>, Self::Error> {
        let rows = self.0.query(migrate::SELECT_APPLIED, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get(1)))
            .collect())
    }
    async fn apply(&self, m: &Migration, applied_at: &str) -> Result<bool, Self::Error> {
        self.0.batch_execute("BEGIN").await?;
        match self.apply_in_tx(m, applied_at).await {
            Ok(()) => {
                self.0.batch_execute("COMMIT").await?;
                Ok(true)
            }
            Err(e) => {
                let _ = self.0.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

const PG_URL: &str = "host=127.0.0.1 user=postgres dbname=test";

/// A connection whose `search_path` is `schema` only.
async fn pg_in(schema: &str) -> Pg {
    let (client, conn) = tokio_postgres::connect(PG_URL, NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, db test)");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .unwrap();
    Pg(client)
}

/// A fresh schema `t_<random>`.
async fn fresh_schema() -> String {
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin = pg_in("public").await;
    admin
        .0
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    schema
}

async fn drop_schema(schema: &str) {
    let admin = pg_in("public").await;
    admin
        .0
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

async fn pg_tables(pg: &Pg, schema: &str) -> Vec<String> {
    pg.0.query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        &[&schema],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn pg_applies_in_order_then_is_idempotent() {
    let schema = fresh_schema().await;
    let pg = pg_in(&schema).await;
    assert_eq!(migrate::run(&pg, &set(&[A, B])).await.unwrap(), vec![1, 2]);
    assert_eq!(
        migrate::run(&pg, &set(&[A, B])).await.unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(migrate::run(&pg, &set(&[A, B, C])).await.unwrap(), vec![3]);
    assert_eq!(
        pg_tables(&pg, &schema).await,
        ["a", "b", "c", "schema_migrations"]
    );
    drop_schema(&schema).await;
}

#[tokio::test]
async fn pg_refuses_an_edited_migration_and_rolls_back_failures() {
    let schema = fresh_schema().await;
    let pg = pg_in(&schema).await;
    migrate::run(&pg, &set(&[A, B])).await.unwrap();
    let edited = set(&[A, "CREATE TABLE b2 (y TEXT);"]);
    match migrate::run(&pg, &edited).await {
        Err(MigrateError::Edited {
            version: 2, name, ..
        }) => assert_eq!(name, "m2"),
        other => panic!("expected Edited, got {other:?}"),
    }
    let broken = set(&[A, B, "CREATE TABLE c (z TEXT); NOT SQL;"]);
    assert!(matches!(
        migrate::run(&pg, &broken).await,
        Err(MigrateError::Conn { stage: "apply", .. })
    ));
    assert_eq!(
        pg_tables(&pg, &schema).await,
        ["a", "b", "schema_migrations"]
    );
    // The lock was released despite the error: another session can migrate.
    let other = pg_in(&schema).await;
    assert_eq!(
        migrate::run(&other, &set(&[A, B, C])).await.unwrap(),
        vec![3]
    );
    drop_schema(&schema).await;
}

/// `migrate::run` three times at once, with the model PostgreSQL adapter: `run` holds
/// `lock` for the whole run, so each version is applied (and reported) once. The production
/// adapter's race: the `concurrent_first_migrations` scenario in
/// `handlers/common/tests/metadata_postgres.rs`.
#[tokio::test]
async fn run_with_model_pg_adapter_applies_each_version_once_concurrently() {
    let schema = fresh_schema().await;
    // Each migration fails if run twice (no IF NOT EXISTS) and is slow enough to overlap.
    let slow = set(&[
        "CREATE TABLE a (x TEXT); SELECT pg_sleep(0.2);",
        "CREATE TABLE b (y TEXT); SELECT pg_sleep(0.2);",
        "CREATE TABLE c (z TEXT);",
    ]);
    let (p1, p2, p3) = (
        pg_in(&schema).await,
        pg_in(&schema).await,
        pg_in(&schema).await,
    );
    let (r1, r2, r3) = tokio::join!(
        migrate::run(&p1, &slow),
        migrate::run(&p2, &slow),
        migrate::run(&p3, &slow)
    );
    let mut all: Vec<u32> = [r1.unwrap(), r2.unwrap(), r3.unwrap()].concat();
    all.sort();
    assert_eq!(all, [1, 2, 3]);
    assert_eq!(p1.applied().await.unwrap().len(), 3);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn pg_real_set_applies_and_reruns_cleanly() {
    let schema = fresh_schema().await;
    let pg = pg_in(&schema).await;
    let expected: Vec<u32> = migrate::POSTGRES.iter().map(|m| m.version).collect();
    assert_eq!(
        migrate::run(&pg, migrate::POSTGRES).await.unwrap(),
        expected
    );
    assert_eq!(
        migrate::run(&pg, migrate::POSTGRES).await.unwrap(),
        Vec::<u32>::new()
    );
    if !migrate::POSTGRES.is_empty() {
        assert!(pg_tables(&pg, &schema).await.len() > 1);
    }
    drop_schema(&schema).await;
}
