-- Releases across a fleet (issue 21), PostgreSQL dialect. Keep in step with
-- ../sqlite/0012_releases.sql: same tables, columns, constraints and indexes.

-- A published component, content-addressed: the key is the hex SHA-256 of `bytes`.
CREATE TABLE plugin_artifacts (
    sha256      TEXT PRIMARY KEY NOT NULL,
    bytes       BYTEA NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    created_at  BIGINT NOT NULL
);

-- A published version: one name@version names one component for ever.
CREATE TABLE plugin_releases_versions (
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    sha256        TEXT NOT NULL REFERENCES plugin_artifacts (sha256),
    -- The plugin.toml text as published.
    manifest      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('awaiting-approval', 'approved', 'rejected')),
    -- JSON: the capability surface diff against the version it was compared with.
    diff          TEXT,
    -- API key ids.
    published_by  TEXT,
    published_at  BIGINT,
    reviewed_by   TEXT,
    reviewed_at   BIGINT,
    review_note   TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX plugin_releases_versions_sha_idx ON plugin_releases_versions (sha256);

-- Which version of each plugin is live on every replica; `generation` grows on every change.
CREATE TABLE plugin_release_state (
    name        TEXT PRIMARY KEY NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    pinned      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT,
    generation  BIGINT NOT NULL
);

-- What each replica serves: `serving` is JSON {name: {version, sha256}}.
CREATE TABLE replica_heartbeats (
    replica_id  TEXT PRIMARY KEY NOT NULL,
    host        TEXT,
    started_at  BIGINT,
    seen_at     BIGINT NOT NULL,
    serving     TEXT NOT NULL
);
