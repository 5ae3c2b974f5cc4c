-- The scrubber re-reads stored objects and checks them against their content address,
-- oldest check first, a time-budgeted slice at a time. Per blob: when it last hashed whole
-- to its address (`last_verified_at`, with an epoch twin that orders never-verified blobs,
-- 0, first), the digest of a check in progress (its first `scrub_offset` bytes, a
-- serialized sha256 state in hex), and, once the bytes were found changed or missing,
-- `corrupt_at` with what was found: such a blob's files are no longer served.
ALTER TABLE blobs ADD COLUMN last_verified_at TEXT;
ALTER TABLE blobs ADD COLUMN verified_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN scrub_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE blobs ADD COLUMN scrub_state TEXT NOT NULL DEFAULT '';
ALTER TABLE blobs ADD COLUMN corrupt_at TEXT;
ALTER TABLE blobs ADD COLUMN corrupt_found TEXT;
ALTER TABLE blobs ADD COLUMN corrupt_detail TEXT;

CREATE INDEX blobs_scrub_order ON blobs (verified_epoch, backend_id, object_key);
