-- Upload sessions: a file sent as numbered parts (each request under a serverless host's
-- body cap), assembled and verified at `complete`. A session's id is the id of its pending
-- upload, which carries its staging key, its pin and its orphan handling; the session row
-- adds the plan and the running digest. Both go together (`abort_upload`).
CREATE TABLE upload_sessions (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL,
    relative_path TEXT NOT NULL,
    media_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    part_size BIGINT NOT NULL,
    part_count BIGINT NOT NULL,
    backend_id TEXT NOT NULL,
    staging_key TEXT NOT NULL,
    backend_upload_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    expires_epoch BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'assembled')),
    -- Parts 1..hashed_parts are in hash_state (a serialized sha256 state, hex).
    hashed_parts BIGINT NOT NULL,
    hash_state TEXT NOT NULL
);

CREATE TABLE upload_session_parts (
    session_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    -- Empty when the part was not hashed on its own (no digest declared for it).
    sha256 TEXT NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (session_id, number)
);
