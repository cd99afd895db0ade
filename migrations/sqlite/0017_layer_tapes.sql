-- Layer runs record tapes too (issue 22): a tape is an agent execution's or a pipeline
-- layer run's. For a layer run, `execution_id` is the layer run's id, `agent` and
-- `agent_version` its plugin, `input` the run context and trigger event as JSON
-- ({run_id, container, dry_run, topic, payload}), `output` {output, events}.
ALTER TABLE execution_tapes ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';
