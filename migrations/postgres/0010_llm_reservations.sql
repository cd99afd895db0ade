-- LLM budget reservations: before an `llm` call the host reserves its estimate (prompt
-- upper bound + capped max_tokens, and their price) here, with a conditional insert that
-- refuses when spent + live reservations + estimate would pass a daily budget; the call
-- then settles (adds its actual usage to `llm_usage`, deletes the reservation) or
-- releases it. A reservation left behind by a crash counts only until `expires_at`
-- (ms since the epoch) and is deleted by the next reservation of its plugin and day.
CREATE TABLE llm_reservations (
    id          TEXT PRIMARY KEY,
    plugin      TEXT NOT NULL,
    day         TEXT NOT NULL,
    tokens      BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX llm_reservations_plugin_day ON llm_reservations (plugin, day, expires_at);
