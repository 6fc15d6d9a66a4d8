-- recserve store schema 3 (MySQL/MariaDB dialect). On SQLite this version makes the request
-- log's user index partial (WHERE user_hash IS NOT NULL) so user-less V2 records never touch it.
-- MySQL and MariaDB have no partial indexes (InnoDB stores NULL keys in secondary indexes too;
-- a generated column holding only non-NULL users would cost the same per insert), so there is
-- no equivalent schema change worth a table rebuild here: this migration only keeps the version
-- numbers of the two dialects in step. `DO 0` evaluates an expression and returns nothing.
DO 0;
