-- Execution tapes (issue 22): the brokered calls an agent execution made (`llm`, `mcp`,
-- `state`), each with its request and the response the plugin received, redacted of the
-- configured secrets; stored only for plugins granted `record_executions = true`.
-- `strata replay execution ID` re-runs the execution from it, offline.
CREATE TABLE execution_tapes (
    execution_id  TEXT PRIMARY KEY,
    agent         TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    input         TEXT NOT NULL,
    -- The output the agent returned (NULL: the run failed), as its JSON text.
    output        TEXT,
    -- JSON array of {capability, operation, target, request, response}.
    tape          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
