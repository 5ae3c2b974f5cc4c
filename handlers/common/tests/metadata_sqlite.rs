//! The metadata scenarios on a real SQLite file (rusqlite), one database per test.

mod metadata_scenarios;

use metadata_scenarios::sqlite::{fresh, unmigrated};

metadata_scenarios!(fresh(), async { unmigrated() });

/// Two OS threads, each with its own connection, claim at the same time: SQLite's
/// `BEGIN IMMEDIATE` serializes the claims, so no package is handed out twice.
#[test]
fn threaded_claims_never_overlap() {
    use artifact_store_core::model::RetentionClass;
    use artifact_store_core::ports::MetadataStore;
    use metadata_scenarios::{Harness, new_package, t};

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let db = rt.block_on(fresh());
    let mut expected = rt.block_on(async {
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
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(async {
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
