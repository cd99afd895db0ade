-- Fewer pages written per layer-run commit (SQLite only: a storage layout, no change of
-- tables, columns or meaning; ../postgres/0006_fewer_pages_per_commit.sql keeps the
-- versions in step). Every page a transaction dirties is one WAL frame written at
-- COMMIT and copied again by the checkpoint; a layer run's commit dirtied ~14.
--
-- * event_deliveries: small rows always reached by their key (event_id, subscriber), so
--   WITHOUT ROWID: the table is its primary-key index, one B-tree instead of two.
-- * events: `seq` stays the rowid (ascending; events are never deleted, so never reused)
--   but without AUTOINCREMENT, whose `sqlite_sequence` row was one more page per commit.
--
-- event_deliveries references events (id): with foreign keys on, dropping events counts
-- a violation per delivery and re-inserting the same ids cancels them; deferred, so they
-- are checked at the end of the migration's transaction.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE event_deliveries_new (
    event_id    TEXT NOT NULL REFERENCES events (id),
    -- The subscribing layer (plugin name).
    subscriber  TEXT NOT NULL,
    -- The subscriber's container.
    container   TEXT NOT NULL,
    run_id      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'acked', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    acked_at    INTEGER,
    PRIMARY KEY (event_id, subscriber)
) WITHOUT ROWID;
INSERT INTO event_deliveries_new (event_id, subscriber, container, run_id, status, attempts,
                                  last_error, created_at, acked_at)
    SELECT event_id, subscriber, container, run_id, status, attempts, last_error, created_at,
           acked_at
    FROM event_deliveries;
DROP TABLE event_deliveries;
ALTER TABLE event_deliveries_new RENAME TO event_deliveries;
CREATE INDEX event_deliveries_run_status_idx ON event_deliveries (run_id, status);

CREATE TEMP TABLE events_copy AS SELECT * FROM events;
DROP TABLE events;
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    container     TEXT NOT NULL,
    topic         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    emitted_at    INTEGER NOT NULL,
    -- plugin@version, or "api", "webhook:<name>".
    producer      TEXT NOT NULL,
    run_id        TEXT REFERENCES pipeline_runs (id),
    dry_run       BOOLEAN NOT NULL,
    -- The event whose handling produced this one.
    causation_id  TEXT
);
INSERT INTO events (seq, id, container, topic, payload, emitted_at, producer, run_id, dry_run,
                    causation_id)
    SELECT seq, id, container, topic, payload, emitted_at, producer, run_id, dry_run,
           causation_id
    FROM events_copy ORDER BY seq;
DROP TABLE events_copy;
CREATE INDEX events_topic_seq_idx ON events (topic, seq);
CREATE INDEX events_container_seq_idx ON events (container, seq);
CREATE INDEX events_run_idx ON events (run_id);
