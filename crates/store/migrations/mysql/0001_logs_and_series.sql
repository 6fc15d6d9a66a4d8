-- recserve store schema 1 (MySQL/MariaDB dialect; migrations/sqlite holds the same tables and
-- columns). Indexed text columns are VARCHAR(255); the writer cuts longer values to 255 characters
-- on both backends so they behave the same. Binary collation: filters compare exactly.
CREATE TABLE request_log (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    request_id  VARCHAR(255) NOT NULL,
    time_ms     BIGINT       NOT NULL,
    replica     VARCHAR(255) NULL,
    model       VARCHAR(255) NULL,
    version     VARCHAR(255) NULL,
    arm         VARCHAR(255) NULL,
    pipeline    VARCHAR(255) NULL,
    user_hash   VARCHAR(255) NULL,
    raw_user    VARCHAR(255) NULL,
    input       LONGTEXT     NULL,
    output      LONGTEXT     NULL,
    stages      TEXT         NOT NULL,
    latency_ms  DOUBLE       NOT NULL,
    status      INT          NOT NULL,
    error       LONGTEXT     NULL,
    INDEX request_log_time (time_ms, id),
    INDEX request_log_request_id (request_id),
    INDEX request_log_user_time (user_hash, time_ms),
    INDEX request_log_model_time (model, time_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE service_log (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    time_ms     BIGINT       NOT NULL,
    replica     VARCHAR(255) NULL,
    level       VARCHAR(16)  NOT NULL,
    level_num   INT          NOT NULL,
    target      VARCHAR(255) NOT NULL,
    message     LONGTEXT     NOT NULL,
    fields      LONGTEXT     NOT NULL,
    request_id  VARCHAR(255) NULL,
    INDEX service_log_time (time_ms, id),
    INDEX service_log_level_time (level_num, time_ms),
    INDEX service_log_request_id (request_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE series (
    id          BIGINT   NOT NULL AUTO_INCREMENT PRIMARY KEY,
    labels_hash CHAR(64) NOT NULL,
    labels      LONGTEXT NOT NULL,
    UNIQUE INDEX series_labels_hash (labels_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE series_samples (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    series_id   BIGINT NOT NULL,
    t_ms        BIGINT NOT NULL,
    value_bits  BIGINT NOT NULL,
    INDEX series_samples_series_time (series_id, t_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
