-- A version's identity is name + version + the sha256 of its component: a stored score
-- names the component that produced it beside `strategy` (`plugin@version`). NULL for
-- scores stored before this migration and for scores not produced by a plugin.
ALTER TABLE lead_scores ADD COLUMN strategy_sha256 TEXT;
