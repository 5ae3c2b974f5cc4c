//! The registry API, black box: one suite of scenarios run on every deployment shape
//! (SQLite or PostgreSQL metadata, kv or S3 bytes). Each scenario starts its own app.

mod scenarios;

artifact_store_tests::suite!(
    scenarios;
    sqlite_kv => (Sqlite, Kv),
    sqlite_s3 => (Sqlite, S3),
    postgres_kv => (Postgres, Kv),
    postgres_s3 => (Postgres, S3); [
    pilot_flow,
    bad_inputs_store_nothing,
    oversize_upload,
    authz_matrix,
    range_requests,
    dedupe_same_bytes,
    audit_chain_detects_tampering,
    dropped_upload_commits_nothing,
    search_and_pagination,
    retention_extensions_and_holds,
]);
