-- Pipelines, events and webhooks (SQLite dialect). Keep in step with
-- ../postgres/0004_pipelines.sql: same tables, columns, constraints and indexes; only the
-- type names differ. Timestamps are INTEGER milliseconds since the Unix epoch; ids are
-- TEXT (uuid v7); JSON documents are TEXT.

-- One run of a configured pipeline, started by its trigger event.
CREATE TABLE pipeline_runs (
    id                TEXT PRIMARY KEY NOT NULL,
    pipeline          TEXT NOT NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'incomplete')),
    dry_run           BOOLEAN NOT NULL,
    trigger_event_id  TEXT NOT NULL,
    -- Coherence of the finished run, 0–1.
    phi_sync          REAL CHECK (phi_sync IS NULL OR (phi_sync >= 0 AND phi_sync <= 1)),
    error             TEXT,
    request_id        TEXT,
    -- The job that executes the run, if it was started as one.
    job_id            TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX pipeline_runs_pipeline_created_idx ON pipeline_runs (pipeline, created_at);

-- Durable events; seq is the global order (paging, per-topic reads).
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX events_topic_seq_idx ON events (topic, seq);
CREATE INDEX events_container_seq_idx ON events (container, seq);
CREATE INDEX events_run_idx ON events (run_id);

-- One row per (event, subscribing layer): at-least-once delivery and acknowledgement.
CREATE TABLE event_deliveries (
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
);
CREATE INDEX event_deliveries_run_status_idx ON event_deliveries (run_id, status);

-- One row per attempt of a layer on a delivered event.
CREATE TABLE layer_runs (
    id           TEXT PRIMARY KEY NOT NULL,
    run_id       TEXT NOT NULL REFERENCES pipeline_runs (id),
    -- Order within the run, 1..
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    -- The layer (plugin name).
    layer        TEXT NOT NULL,
    -- plugin@version that ran; NULL if none was loaded.
    plugin       TEXT,
    container    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    duration_ms  REAL NOT NULL,
    output       TEXT,
    error        TEXT,
    -- JSON array: the dry-run actions that were not executed.
    held_back    TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    -- Also the index of a run's layer runs in order.
    UNIQUE (run_id, seq)
);

-- Idempotency of inbound webhooks: one row per (webhook, delivery id) ever accepted.
CREATE TABLE webhook_deliveries (
    webhook      TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    body_sha256  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    PRIMARY KEY (webhook, delivery_id)
);
