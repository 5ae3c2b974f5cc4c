-- How an upload session's bytes travel: `gateway` (parts through the registry) or
-- `direct` (one presigned PUT straight to the S3 staging key, signed with the declared
-- sha256, so the storage server checks every byte).
ALTER TABLE upload_sessions ADD COLUMN transfer TEXT NOT NULL DEFAULT 'gateway'
    CHECK (transfer IN ('gateway', 'direct'));
