-- recserve store schema 7 (MySQL/MariaDB dialect): the request log moves into compressed blocks,
-- one row per block of up to 1024 records (see migrations/sqlite/0007 and src/blocks.rs). The
-- store moves rows of the old `request_log` table into blocks when it opens; the table stays,
-- empty. Its secondary indexes stay too (dropping them would rebuild a possibly big table here;
-- an empty table's indexes cost nothing).
CREATE TABLE request_blocks (
    id           BIGINT     NOT NULL AUTO_INCREMENT PRIMARY KEY,
    min_time_ms  BIGINT     NOT NULL,
    max_time_ms  BIGINT     NOT NULL,
    records      BIGINT     NOT NULL,
    errors       BIGINT     NOT NULL,
    key_hashes   MEDIUMBLOB NOT NULL,
    payload      LONGBLOB   NOT NULL,
    INDEX request_blocks_max_time (max_time_ms, id),
    INDEX request_blocks_min_time (min_time_ms, id)
) ENGINE = InnoDB;
