//! The metadata scenarios on a real SQLite file (rusqlite), one database per test.

mod metadata_scenarios;

use metadata_scenarios::sqlite::{fresh, unmigrated};

metadata_scenarios!(fresh(), async { unmigrated() });

/// Runs `f` on a runtime of the calling thread (each OS thread of a test gets its own).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Two OS threads, each with its own connection, claim at the same time: SQLite's
/// `BEGIN IMMEDIATE` serializes the claims, so no package is handed out twice.
#[test]
fn threaded_claims_never_overlap() {
    use artifact_store_core::model::RetentionClass;
    use artifact_store_core::ports::MetadataStore;
    use metadata_scenarios::{Harness, new_package, t};

    let db = block_on(fresh());
    let mut expected = block_on(async {
        let s = db.connect().await;
        let mut ids = Vec::new();
        for _ in 0..40 {
            let p = s
                .create_package(new_package("alpha", RetentionClass::Transient, t(0)))
                .await
                .unwrap();
            ids.push(p.id);
        }
        ids
    });
    let now = t(0) + chrono::TimeDelta::days(8);
    let claimed: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|n| {
                let db = &db;
                scope.spawn(move || {
                    block_on(async {
                        let s = db.connect().await;
                        let mut got = Vec::new();
                        loop {
                            let who = format!("sweeper-{n}");
                            let batch = s
                                .claim_for_deletion(now, 86_400, 2, 600, &who)
                                .await
                                .unwrap();
                            if batch.is_empty() {
                                break got;
                            }
                            got.extend(batch.into_iter().map(|c| c.package.id));
                        }
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut claimed = claimed;
    claimed.sort();
    expected.sort();
    assert_eq!(claimed, expected);
}

/// First requests on a new database, truly at once: two OS threads, each with its own
/// connection, start migrating together (on one thread the shared scenario's futures never
/// yield, so they would run one after the other). Both succeed and each migration is
/// applied once: the production runner's `BEGIN IMMEDIATE` and re-check serialize them.
#[test]
fn threaded_first_migrations_apply_each_once() {
    // The window is small: 20 new databases, so a runner that lost its re-check fails.
    for _ in 0..20 {
        threaded_first_migrations_on_a_new_database();
    }
}

fn threaded_first_migrations_on_a_new_database() {
    use metadata_scenarios::Harness;
    use std::sync::Barrier;

    let db = unmigrated();
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (db, start) = (&db, &start);
                scope.spawn(move || {
                    block_on(async {
                        let s = db.connect().await;
                        start.wait();
                        s.ensure_migrated().await
                    })
                })
            })
            .collect();
        for w in workers {
            w.join()
                .unwrap()
                .expect("a concurrent first migration succeeds");
        }
    });
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let applied: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    let compiled = artifact_store_handlers::metadata::migration_set(
        artifact_store_handlers::metadata::Dialect::Sqlite,
    )
    .len();
    assert_eq!(applied as usize, compiled);
    let heads: i64 = conn
        .query_row("SELECT COUNT(*) FROM audit_chain_head", [], |r| r.get(0))
        .unwrap();
    assert_eq!(heads, 1);
}
