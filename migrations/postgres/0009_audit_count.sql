-- A capability_audit row may summarise identical calls of one plugin call past its audit
-- cap (`runtime.audit_max_records_per_call`): `count` is how many calls the row stands
-- for (1 for a single call); its duration, tokens and cost are sums.
ALTER TABLE capability_audit ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
