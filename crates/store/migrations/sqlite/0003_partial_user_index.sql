-- recserve store schema 3 (SQLite dialect): the request log's user index only holds rows that
-- have a user. V2 inference records carry no user (user_hash NULL); with the full index every
-- one of them was still inserted into (user_hash, time_ms), and recommendation records land at
-- random places in it (one key range per user), which made it the writer's costliest index.
-- A partial index leaves user-less rows out entirely. Queries by user (`user_hash = ?`) still
-- use it: SQLite matches a comparison on user_hash against the index's `IS NOT NULL` condition
-- (tests/query.rs checks the plan). Rebuilding it reads the table once at migration time.
DROP INDEX IF EXISTS request_log_user_time;
CREATE INDEX request_log_user_time ON request_log (user_hash, time_ms) WHERE user_hash IS NOT NULL;
