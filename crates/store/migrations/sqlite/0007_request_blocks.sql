-- recserve store schema 7 (SQLite dialect): the request log moves into compressed blocks, one row
-- per block of up to 1024 records (src/blocks.rs has the format and the reasons; BENCHMARKS.md
-- the measurements). `key_hashes` holds the sorted 32-bit hashes of the block's request ids,
-- users, models, versions, pipelines and statuses, so queries skip blocks without decompressing
-- them; it comes before `payload` so reading it never reads the payload's overflow pages.
-- Rows of the old `request_log` table are moved into blocks by the store when it opens
-- (Store::convert_request_rows), in transactions, so nothing is lost if that is interrupted; the
-- table stays (empty) and its indexes go, so nothing keeps maintaining them.
CREATE TABLE request_blocks (
    id           INTEGER PRIMARY KEY,
    min_time_ms  INTEGER NOT NULL,
    max_time_ms  INTEGER NOT NULL,
    records      INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    key_hashes   BLOB    NOT NULL,
    payload      BLOB    NOT NULL
);
CREATE INDEX request_blocks_max_time ON request_blocks (max_time_ms, id);
CREATE INDEX request_blocks_min_time ON request_blocks (min_time_ms, id);
DROP INDEX IF EXISTS request_log_time;
DROP INDEX IF EXISTS request_log_request_id;
DROP INDEX IF EXISTS request_log_user_time;
DROP INDEX IF EXISTS request_log_model_time;
