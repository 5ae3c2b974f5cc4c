-- An upload pins the content-addressed object it is about to reference (dedupe) or write
-- (copy) before it relies on it: a sweep's reference check counts these pins, so it never
-- deletes an object a committing upload depends on. The pin goes with the pending row,
-- which the upload's commit deletes in the same transaction that inserts the file.
ALTER TABLE pending_uploads ADD COLUMN object_key TEXT;

CREATE INDEX pending_uploads_pins ON pending_uploads (backend_id, object_key);
