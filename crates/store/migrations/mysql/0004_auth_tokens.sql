-- recserve store schema 4 (MySQL/MariaDB dialect; migrations/sqlite holds the same table and
-- columns, and explains them): API tokens, stored as SHA-256 hashes only.
CREATE TABLE auth_tokens (
    id            VARCHAR(64)  NOT NULL PRIMARY KEY,
    name          VARCHAR(190) NOT NULL,
    role          VARCHAR(32)  NOT NULL,
    token_hash    CHAR(64)     NOT NULL,
    created_ms    BIGINT       NOT NULL,
    expires_ms    BIGINT       NULL,
    last_used_ms  BIGINT       NULL,
    revoked_ms    BIGINT       NULL,
    UNIQUE INDEX auth_tokens_hash (token_hash),
    INDEX auth_tokens_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
