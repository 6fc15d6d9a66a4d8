-- recserve store schema 6 (MySQL/MariaDB dialect). On SQLite this version makes the request
-- log's user index key on an 8-character prefix of the pseudonym (SQLite has no prefix indexes,
-- so it indexes the expression and queries match it). MariaDB was not limited by this index
-- (40k records/s sustained against a 20k/s target, BENCHMARKS.md), and rebuilding it on a big
-- table is a long ALTER, so the MySQL schema stays as it is: this migration only keeps the
-- version numbers of the two dialects in step. `DO 0` evaluates an expression, returns nothing.
DO 0;
