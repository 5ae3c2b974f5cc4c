//! The registry API, black box: one suite of scenarios run on every deployment shape
//! (SQLite or PostgreSQL metadata, kv or S3 bytes). Each scenario starts its own app.
//!
//! The `spin_*` shapes are the parity suite: the same scenarios with the same wasm under the
//! real Spin CLI (`../shared/spin/`), so a difference between the two hosts fails the build.

mod scenarios;

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv, Harness),
    sqlite_s3 => (Sqlite, S3, Harness),
    postgres_kv => (Postgres, Kv, Harness),
    postgres_s3 => (Postgres, S3, Harness),
    spin_sqlite_kv => (Sqlite, Kv, Spin),
    spin_postgres_s3 => (Postgres, S3, Spin); [
    pilot_flow,
    bad_inputs_store_nothing,
    nul_bytes_are_bad_input_on_every_store,
    oversize_upload,
    authz_matrix,
    range_requests,
    redirect_follows_the_backend,
    backends_and_health_when_all_is_up,
    dedupe_same_bytes,
    audit_chain_detects_tampering,
    audit_write_failure_serves_and_commits_nothing,
    signed_checkpoint_catches_a_rewritten_log,
    no_checkpoint_without_a_signing_key,
    dropped_upload_commits_nothing,
    search_and_pagination,
    pagination_is_stable_across_equal_and_older_timestamps,
    retention_extensions_and_holds,
    extensions_are_audited_and_in_the_manifest,
]);
