-- recserve store schema 5 (MySQL/MariaDB dialect; migrations/sqlite holds the same table and
-- columns, and explains them): leases, a named role held by at most one replica at a time.
CREATE TABLE leases (
    name         VARCHAR(190) NOT NULL PRIMARY KEY,
    holder       VARCHAR(255) NOT NULL,
    expires_ms   BIGINT       NOT NULL,
    term         BIGINT       NOT NULL,
    acquired_ms  BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
