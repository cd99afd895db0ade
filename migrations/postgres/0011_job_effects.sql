-- A qualify job's effects are keyed by the job (issue 19, item 5): a job run again after
-- a lost completion or a killed worker finds its score instead of storing a second one,
-- and closes the execution rows of its earlier attempts that were left `running`.
-- Numbered 0011: 0010 is taken by the LLM budget reservations on another branch.
-- NULL for rows not written by a job (the CLI, the score API) and for older rows.
ALTER TABLE lead_scores ADD COLUMN job_id TEXT;
-- At most one score per job (NULLs are distinct on both engines).
CREATE UNIQUE INDEX lead_scores_job_idx ON lead_scores (job_id);
ALTER TABLE agent_executions ADD COLUMN job_id TEXT;
-- At most one `running` execution per job: a new attempt closes the earlier one first.
CREATE UNIQUE INDEX agent_executions_running_job_idx ON agent_executions (job_id)
    WHERE status = 'running';
CREATE INDEX agent_executions_job_idx ON agent_executions (job_id);
