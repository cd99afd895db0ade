//! Pipeline runs and the statements on them: their records (`runs`), the records of their
//! layer runs and what a layer run's commit carries (`layer_runs`), creating a run
//! (`create`, which also keeps inbound webhooks idempotent), the statements of an executor
//! carrying a run out (`execution`) and reading runs back (`queries`).
//!
//! A run starts with [`Db::create_run`] (or [`Db::create_webhook_run`]): in one
//! transaction its row (`queued`), its trigger event with one `pending` delivery per
//! subscribing layer, and optionally the job that will execute it. The orchestrator then
//! [`Db::start_run`]s it, repeatedly takes [`Db::pending_deliveries`], runs each layer on
//! its event and records the outcome with [`Db::commit_layer_run`], which in one
//! transaction acknowledges the delivery (or counts the failed attempt), stores the layer
//! run and the events the layer emitted with their deliveries. Committing is guarded on
//! the delivery still being `pending`, so a delivery handled twice (a crashed worker's
//! retry, two workers racing) is stored once; the loser gets [`CommitOutcome::Duplicate`].
//! Finally [`Db::finish_run`] stores the status and Φ_sync, computed from
//! [`Db::run_container_counts`].
//!
//! Run statuses: `queued` → `running` → `succeeded` | `failed` | `incomplete`; the last
//! three are final (a finished run is never started or finished again).

#[cfg(doc)]
use crate::db::Db;

mod create;
mod execution;
mod layer_runs;
mod queries;
mod runs;

pub use create::{CreatedRun, NewRun, WebhookOutcome};
pub use execution::{ContainerCounts, RunProgress};
pub use layer_runs::{
    CommitOutcome, LayerRunCommit, LayerRunRecord, LayerRunResult, LayerRunStatus, PendingDelivery,
    StateEntry,
};
pub use queries::RunDetail;
pub use runs::{RunRecord, RunStatus};

/// `"a, b"` → `"t.a, t.b"`.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
