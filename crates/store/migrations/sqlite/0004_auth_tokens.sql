-- recserve store schema 4 (SQLite dialect; migrations/mysql holds the same table and columns).

-- API tokens: one row per bearer token. The secret itself is never stored, only its SHA-256
-- (hex, `token_hash`), which is what a presented token is looked up by. `role` is admin,
-- operator, viewer or inference (checked by the server, not here). A token is refused once
-- `revoked_ms` is set or `expires_ms` is past; rows are never deleted, so the audit trail's
-- `token:<name>` actors keep a row that says what they were. `last_used_ms` is written lazily
-- (the server batches it with its periodic reload, never per request).
CREATE TABLE auth_tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL UNIQUE,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER,
    last_used_ms  INTEGER,
    revoked_ms    INTEGER
);
CREATE INDEX auth_tokens_name ON auth_tokens (name);
