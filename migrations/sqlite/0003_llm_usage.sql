-- LLM usage per plugin per UTC day: the ledger the daily token and cost budgets of the
-- `llm` capability are checked against. Incremented atomically after every call.
CREATE TABLE llm_usage (
    plugin      TEXT NOT NULL,
    day         TEXT NOT NULL,
    calls       INTEGER NOT NULL DEFAULT 0,
    tokens_in   INTEGER NOT NULL DEFAULT 0,
    tokens_out  INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (plugin, day)
);
