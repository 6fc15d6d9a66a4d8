-- recserve store schema 2 (MySQL/MariaDB dialect; migrations/sqlite holds the same tables and
-- columns, and explains them). Binary collation: names, actors and actions compare exactly.
CREATE TABLE state_documents (
    name        VARCHAR(190) NOT NULL PRIMARY KEY,
    body        LONGTEXT     NOT NULL,
    version     BIGINT       NOT NULL,
    updated_ms  BIGINT       NOT NULL,
    revision    BIGINT       NOT NULL,
    INDEX state_documents_revision (revision)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE state_revision (
    id          INT    NOT NULL PRIMARY KEY,
    revision    BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO state_revision (id, revision) VALUES (1, 0);

CREATE TABLE notifications (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    time_ms     BIGINT       NOT NULL,
    receiver    VARCHAR(255) NOT NULL,
    group_key   LONGTEXT     NOT NULL,
    status      VARCHAR(64)  NOT NULL,
    alerts      INT          NOT NULL,
    attempt     INT          NOT NULL,
    error       LONGTEXT     NULL,
    payload     LONGTEXT     NULL,
    replica     VARCHAR(255) NULL,
    INDEX notifications_time (time_ms, id),
    INDEX notifications_receiver_time (receiver, time_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE audit (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    time_ms     BIGINT       NOT NULL,
    actor       VARCHAR(190) NOT NULL,
    role        VARCHAR(190) NULL,
    action      VARCHAR(190) NOT NULL,
    target      VARCHAR(255) NULL,
    outcome     VARCHAR(16)  NOT NULL,
    reason      LONGTEXT     NULL,
    details     LONGTEXT     NULL,
    request_id  VARCHAR(255) NULL,
    replica     VARCHAR(255) NULL,
    INDEX audit_time (time_ms, id),
    INDEX audit_actor_time (actor, time_ms),
    INDEX audit_action_time (action, time_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
