//! Host bindings generated from `harness/wit` (the Spin interfaces spin-sdk 5.2 imports).
//!
//! Decision: the WIT is vendored in `harness/wit` with package, version and type names identical
//! to spin-sdk's, so guests link by name; imports are async so host calls (SQLite on blocking
//! threads, Postgres, HTTP) never block the tokio workers.

wasmtime::component::bindgen!({
    path: "wit",
    world: "harness:host/spin-imports",
    imports: { default: async },
    with: {
        "spin:sqlite/sqlite.connection": crate::sqlite::SqliteConnection,
        "fermyon:spin/key-value.store": crate::key_value::KvStore,
        "spin:postgres/postgres.connection": crate::postgres::PgConnection,
    },
});

/// The `fermyon:spin-cron@2.0.0` guest export.
pub mod cron {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}
