-- SQLite only: ../sqlite/0006_fewer_pages_per_commit.sql changes how SQLite lays out
-- `event_deliveries` and `events` on disk (fewer pages per layer-run commit); tables,
-- columns and meaning are unchanged, and PostgreSQL needs nothing. This file keeps both
-- engines' migration versions in step.
SELECT 1;
