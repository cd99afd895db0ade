-- HTTP service tables (SQLite dialect): API keys and the durable job queue. Keep in step
-- with ../postgres/0002_service.sql: same tables, columns, constraints and indexes.

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('reader', 'operator', 'admin')),
    -- Hex SHA-256 of the secret; the secret itself is never stored.
    key_hash      TEXT NOT NULL UNIQUE,
    -- First characters of the secret, for display and revocation by prefix.
    prefix        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL DEFAULT 'null',
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at            INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    last_error        TEXT,
    result            TEXT,
    request_id        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER
);
-- Claiming: queued jobs due by run_at, running jobs whose lease expired.
CREATE INDEX jobs_claim_idx ON jobs (status, run_at);
CREATE INDEX jobs_kind_created_idx ON jobs (kind, created_at);
CREATE INDEX jobs_request_idx ON jobs (request_id);
