-- recserve store schema 6 (SQLite dialect): the request log's user index keys on the first 8
-- characters of the pseudonym instead of all 64. Records of many users land at random places in
-- this index (one key range per user), so every batch of the log writer rewrites index pages all
-- over it; with 64-character keys an entry took ~85 bytes and a 4 KiB page held ~45 of them.
-- With 8 characters (32 bits of the HMAC, plenty to tell users apart) an entry takes ~25 bytes:
-- the index is about a third of the size and a batch dirties that many fewer pages (measured
-- with benches/writer.rs, see BENCHMARKS.md). Queries by user match the prefix through the
-- index and then the whole `user_hash` on the row (query.rs: `substr(user_hash, 1, 8) = ? AND
-- user_hash = ?`), so a shared prefix costs a row read, never a wrong answer. Still partial:
-- user-less rows stay out. Same name, so plans keep naming request_log_user_time.
DROP INDEX IF EXISTS request_log_user_time;
CREATE INDEX request_log_user_time ON request_log (substr(user_hash, 1, 8), time_ms) WHERE user_hash IS NOT NULL;
