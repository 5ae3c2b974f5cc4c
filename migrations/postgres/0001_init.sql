-- artifact-store schema v1 (Postgres). Kept statement-for-statement equivalent to
-- migrations/sqlite/0001_init.sql. Timestamps are TEXT `2026-11-28T12:00:00Z` (string
-- order = time order) with BIGINT epoch twins where range comparisons are needed.
-- One statement per `;`-terminated line group: runners split on `;` at end of line.

CREATE TABLE artifact_packages (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    producer TEXT NOT NULL,
    subject TEXT NOT NULL,
    retention_class TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'finalized', 'deleting', 'deleted')),
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_epoch BIGINT NOT NULL,
    finalized_at TEXT,
    expires_at TEXT,
    expires_epoch BIGINT,
    file_count BIGINT NOT NULL DEFAULT 0,
    total_bytes BIGINT NOT NULL DEFAULT 0,
    deleting_at TEXT,
    bytes_deletion_started BIGINT NOT NULL DEFAULT 0,
    deleted_at TEXT,
    lease_until BIGINT,
    claimed_by TEXT
);

CREATE INDEX artifact_packages_list ON artifact_packages (created_at DESC, id DESC);
CREATE INDEX artifact_packages_producer ON artifact_packages (producer, created_at DESC, id DESC);
CREATE INDEX artifact_packages_subject ON artifact_packages (subject, created_at DESC, id DESC);
CREATE INDEX artifact_packages_status ON artifact_packages (status, created_at DESC, id DESC);
CREATE INDEX artifact_packages_class ON artifact_packages (retention_class, created_at DESC, id DESC);
CREATE INDEX artifact_packages_name ON artifact_packages (name, created_at DESC, id DESC);
CREATE INDEX artifact_packages_sweep_expiry ON artifact_packages (status, expires_epoch);
CREATE INDEX artifact_packages_sweep_open ON artifact_packages (status, created_epoch);
CREATE INDEX artifact_packages_sweep_lease ON artifact_packages (status, lease_until);

-- One row per metadata key: equality filters `metadata.<key>=<value>` use the index on
-- (key, value) in both dialects (no JSON functions needed). `value` is the JSON string's
-- content, or the compact JSON text of a non-string value.
CREATE TABLE package_metadata (
    package_id TEXT NOT NULL REFERENCES artifact_packages (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (package_id, key)
);

CREATE INDEX package_metadata_lookup ON package_metadata (key, value, package_id);

CREATE TABLE artifact_files (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES artifact_packages (id),
    relative_path TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT,
    UNIQUE (package_id, relative_path)
);

CREATE TABLE storage_locations (
    file_id TEXT NOT NULL REFERENCES artifact_files (id),
    backend_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    PRIMARY KEY (file_id, backend_id)
);

CREATE INDEX storage_locations_object ON storage_locations (backend_id, object_key);

-- Content-addressed objects the store knows of. `deleting` while a sweep removes the bytes:
-- uploads must not reference such a blob.
CREATE TABLE blobs (
    backend_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('present', 'deleting')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (backend_id, object_key)
);

CREATE TABLE pending_uploads (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL,
    backend_id TEXT NOT NULL,
    staging_key TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_epoch BIGINT NOT NULL
);

CREATE INDEX pending_uploads_started ON pending_uploads (started_epoch);

-- The rules in force, informational: the authoritative rule is the one recorded on each
-- package (expires_at) and its default_rule_applied retention event.
CREATE TABLE retention_rules (
    class TEXT PRIMARY KEY,
    seconds BIGINT,
    updated_at TEXT NOT NULL
);

INSERT INTO retention_rules (class, seconds, updated_at) VALUES
    ('transient', 604800, '2026-11-28T00:00:00Z'),
    ('raw-evidence', 7776000, '2026-11-28T00:00:00Z'),
    ('summary-evidence', 31536000, '2026-11-28T00:00:00Z'),
    ('release-evidence', 220924800, '2026-11-28T00:00:00Z'),
    ('permanent-record', NULL, '2026-11-28T00:00:00Z');

CREATE TABLE retention_events (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES artifact_packages (id),
    event_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    previous_expires_at TEXT,
    new_expires_at TEXT
);

CREATE INDEX retention_events_package ON retention_events (package_id, created_at, id);

CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES artifact_packages (id),
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    released_at TEXT,
    released_by TEXT,
    release_reason TEXT
);

CREATE INDEX holds_package ON holds (package_id, released_at);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    package_id TEXT,
    file_id TEXT,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_events_package ON audit_events (package_id, seq);
CREATE INDEX audit_events_type ON audit_events (event_type, seq);

-- The chain's head in one row: appenders lock it (Postgres FOR UPDATE; SQLite BEGIN
-- IMMEDIATE), read the last seq and hash, and move it forward in the same transaction.
CREATE TABLE audit_chain_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);

INSERT INTO audit_chain_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
