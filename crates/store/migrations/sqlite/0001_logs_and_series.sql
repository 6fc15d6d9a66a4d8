-- recserve store schema 1 (SQLite dialect; migrations/mysql holds the same tables and columns).
-- Request log: one row per served request. `user_hash` is the keyed pseudonym; `raw_user` is
-- only filled when the server is explicitly configured to keep raw ids. `stages` is a JSON array
-- of [stage, milliseconds] pairs.
CREATE TABLE request_log (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT    NOT NULL,
    time_ms     INTEGER NOT NULL,
    replica     TEXT,
    model       TEXT,
    version     TEXT,
    arm         TEXT,
    pipeline    TEXT,
    user_hash   TEXT,
    raw_user    TEXT,
    input       TEXT,
    output      TEXT,
    stages      TEXT    NOT NULL,
    latency_ms  REAL    NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX request_log_time ON request_log (time_ms, id);
CREATE INDEX request_log_request_id ON request_log (request_id);
CREATE INDEX request_log_user_time ON request_log (user_hash, time_ms);
CREATE INDEX request_log_model_time ON request_log (model, time_ms);

-- Service log: tracing events. `level_num` orders levels (TRACE 1 … ERROR 5) for "at least".
CREATE TABLE service_log (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    replica     TEXT,
    level       TEXT    NOT NULL,
    level_num   INTEGER NOT NULL,
    target      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    fields      TEXT    NOT NULL,
    request_id  TEXT
);
CREATE INDEX service_log_time ON service_log (time_ms, id);
CREATE INDEX service_log_level_time ON service_log (level_num, time_ms);
CREATE INDEX service_log_request_id ON service_log (request_id);

-- Series snapshots (the telemetry series store's persistence). `labels` is the JSON array of
-- [name, value] pairs and `labels_hash` its SHA-256 (hex), the unique key; values are stored as
-- the f64 bit pattern so NaN staleness markers survive.
CREATE TABLE series (
    id          INTEGER PRIMARY KEY,
    labels_hash TEXT NOT NULL UNIQUE,
    labels      TEXT NOT NULL
);
CREATE TABLE series_samples (
    id          INTEGER PRIMARY KEY,
    series_id   INTEGER NOT NULL,
    t_ms        INTEGER NOT NULL,
    value_bits  INTEGER NOT NULL
);
CREATE INDEX series_samples_series_time ON series_samples (series_id, t_ms);
