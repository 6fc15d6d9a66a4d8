-- recserve store schema 5 (SQLite dialect; migrations/mysql holds the same table and columns).

-- Leases: a named role that at most one replica holds at a time (the alert evaluator). The row
-- is created on first use. A replica takes the lease when it is free or expired
-- (`expires_ms` <= now) and keeps it by renewing before `expires_ms`; `term` counts hand-overs
-- (a fencing number: it grows each time the holder changes), `acquired_ms` is when the current
-- holder took it. Times are the writing replica's clock (replicas are expected to run NTP; the
-- lease's time to live is many times any sane skew).
CREATE TABLE leases (
    name         TEXT    NOT NULL PRIMARY KEY,
    holder       TEXT    NOT NULL,
    expires_ms   INTEGER NOT NULL,
    term         INTEGER NOT NULL,
    acquired_ms  INTEGER NOT NULL
);
