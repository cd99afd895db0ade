-- A run's pending deliveries are found through its events (`events_run_idx`, then the
-- deliveries' primary key, which starts with `event_id`); a delivery's `run_id` is always
-- its event's. The index on (run_id, status) was one more page written by every commit
-- that creates or acknowledges a delivery (its status changes) and served nothing else.
DROP INDEX event_deliveries_run_status_idx;
