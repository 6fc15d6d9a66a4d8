-- recserve store schema 2 (SQLite dialect; migrations/mysql holds the same tables and columns).

-- Control-plane state shared by replicas (alert states, silences, deployments, traffic splits):
-- one JSON document per name. `version` counts the writes of that document (1 = created);
-- `revision` is the value of the global `state_revision` counter taken by the write, so a
-- replica polls one row (`state_revision`) and, when it moved, reads the documents whose
-- revision is newer than the last one it saw. Names are at most 190 characters.
CREATE TABLE state_documents (
    name        TEXT    NOT NULL PRIMARY KEY,
    body        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    revision    INTEGER NOT NULL
);
CREATE INDEX state_documents_revision ON state_documents (revision);

-- The global state revision: one row (id 1), incremented by every document write in the same
-- transaction.
CREATE TABLE state_revision (
    id          INTEGER NOT NULL PRIMARY KEY,
    revision    INTEGER NOT NULL
);
INSERT INTO state_revision (id, revision) VALUES (1, 0);

-- Notification log: one row per notification attempt (sent, failed, dropped …).
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    receiver    TEXT    NOT NULL,
    group_key   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    alerts      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    error       TEXT,
    payload     TEXT,
    replica     TEXT
);
CREATE INDEX notifications_time ON notifications (time_ms, id);
CREATE INDEX notifications_receiver_time ON notifications (receiver, time_ms);

-- Audit trail: every control-plane action and sign-in. Retention never deletes these rows.
-- `outcome` is ok, denied or failed; `details` is a JSON value.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    role        TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    outcome     TEXT    NOT NULL,
    reason      TEXT,
    details     TEXT,
    request_id  TEXT,
    replica     TEXT
);
CREATE INDEX audit_time ON audit (time_ms, id);
CREATE INDEX audit_actor_time ON audit (actor, time_ms);
CREATE INDEX audit_action_time ON audit (action, time_ms);
