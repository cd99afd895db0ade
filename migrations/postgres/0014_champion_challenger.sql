-- Champion and challenger (issue 22). Keep in step with ../sqlite/0014_champion_challenger.sql.
--
-- strategy_challengers: at most one challenger per strategy (the champion plugin's name),
-- attached by an operator in 'shadow' (scores a sample off the response path) or 'canary'
-- (serves a sticky share of leads) mode, with the canary's guard rails. A guard rail that
-- trips sets status 'rolled-back' (the champion serves everything again); 'generation'
-- grows with every change, so results and a replica's rollback name the attachment.
CREATE TABLE strategy_challengers (
    strategy            TEXT PRIMARY KEY NOT NULL,
    challenger          TEXT NOT NULL,
    challenger_version  TEXT,
    mode                TEXT NOT NULL CHECK (mode IN ('shadow', 'canary')),
    share               DOUBLE PRECISION NOT NULL CHECK (share > 0 AND share <= 1),
    max_error_rate      DOUBLE PRECISION NOT NULL CHECK (max_error_rate >= 0 AND max_error_rate <= 1),
    max_psi             DOUBLE PRECISION NOT NULL CHECK (max_psi > 0),
    guard_window        BIGINT NOT NULL CHECK (guard_window > 0),
    guard_min_samples   BIGINT NOT NULL CHECK (guard_min_samples > 0),
    status              TEXT NOT NULL CHECK (status IN ('active', 'rolled-back')),
    status_reason       TEXT,
    generation          BIGINT NOT NULL,
    created_by          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- One row per scoring call observed under an attachment: both sides' results (the
-- champion's, the challenger's) where they ran, which one served the caller, and the
-- exact input (its sha256 and the lead as the plugins saw it) for replay. A shadow
-- result is only ever here: never in lead_scores, never returned, never written to a CRM.
-- lead_id has no foreign key: inline leads of POST /api/v1/score need not be stored.
CREATE TABLE challenger_results (
    id                   TEXT PRIMARY KEY NOT NULL,
    strategy             TEXT NOT NULL,
    generation           BIGINT NOT NULL,
    mode                 TEXT NOT NULL CHECK (mode IN ('shadow', 'canary')),
    source               TEXT NOT NULL CHECK (source IN ('api', 'job')),
    served_by            TEXT NOT NULL CHECK (served_by IN ('champion', 'challenger')),
    lead_id              TEXT NOT NULL,
    input_sha256         TEXT NOT NULL,
    lead_snapshot        TEXT NOT NULL,
    champion             TEXT,
    champion_sha256      TEXT,
    champion_score       DOUBLE PRECISION,
    champion_priority    TEXT,
    champion_us          BIGINT,
    challenger           TEXT NOT NULL,
    challenger_sha256    TEXT,
    challenger_outcome   TEXT NOT NULL CHECK (challenger_outcome IN ('ok', 'error', 'timeout', 'not-run')),
    challenger_score     DOUBLE PRECISION,
    challenger_priority  TEXT,
    challenger_us        BIGINT,
    challenger_error     TEXT,
    request_id           TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX challenger_results_strategy_idx ON challenger_results (strategy, created_at);

-- What happened to a strategy's challenger: attached, detached, rolled-back (a guard
-- rail), promoted; with who (a key id, or 'guard-rail') and why.
CREATE TABLE strategy_events (
    id          TEXT PRIMARY KEY NOT NULL,
    strategy    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    detail      TEXT NOT NULL,
    actor       TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX strategy_events_strategy_idx ON strategy_events (strategy, at);

-- Replay: a stored score keeps the exact input its plugin saw (the lead as JSON) and its
-- sha256. NULL for scores stored before this migration.
ALTER TABLE lead_scores ADD COLUMN input_sha256 TEXT;
ALTER TABLE lead_scores ADD COLUMN lead_snapshot TEXT;
