//! Layer runs: the stored record of one attempt of a layer on a delivered event, and
//! what committing one carries ([`LayerRunCommit`], written by `db/layer_commit.rs`) and
//! returns ([`CommitOutcome`], with the [`PendingDelivery`]s it created).

use crate::db::events::{EventRecord, NewEvent, Subscriber};
#[cfg(doc)]
use crate::db::Db;
use crate::db::DbError;

/// How one layer run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerRunStatus {
    Succeeded,
    Failed,
}

impl LayerRunStatus {
    pub const ALL: &'static [LayerRunStatus] = &[LayerRunStatus::Succeeded, LayerRunStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            LayerRunStatus::Succeeded => "succeeded",
            LayerRunStatus::Failed => "failed",
        }
    }
}

crate::db::text_enum!(LayerRunStatus, "unknown layer run status", "");

/// One attempt of a layer on a delivered event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRunRecord {
    pub id: String,
    pub run_id: String,
    /// Order within the run, from 1.
    pub seq: i64,
    /// The layer (plugin name).
    pub layer: String,
    /// `plugin@version` that ran; `None` if none was loaded.
    pub plugin: Option<String>,
    pub container: String,
    /// The event the layer handled, and its topic.
    pub event_id: String,
    pub topic: String,
    pub status: LayerRunStatus,
    /// 1 for the first attempt on this delivery.
    pub attempt: i64,
    pub duration_ms: f64,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Dry-run: the actions that were recorded and not executed (a JSON array).
    pub held_back: Option<serde_json::Value>,
    pub started_at: i64,
    pub finished_at: i64,
}

/// The outcome of one layer run on one delivery ([`Db::commit_layer_run`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRunCommit {
    pub run_id: String,
    /// The layer (plugin name): the delivery's subscriber.
    pub layer: String,
    pub plugin: Option<String>,
    pub container: String,
    /// The delivered event and its topic.
    pub event_id: String,
    pub topic: String,
    /// At least 1.
    pub attempt: i64,
    pub duration_ms: f64,
    pub started_at: i64,
    pub finished_at: i64,
    pub held_back: Option<serde_json::Value>,
    pub result: LayerRunResult,
    /// The layer's `state` writes during the run, applied in the same transaction when it
    /// succeeded (a failed or duplicate run writes none).
    pub state_writes: Vec<StateEntry>,
    /// What the layer read from the database's `state` during the run (the first value
    /// seen of each key, `None`: absent). A succeeded commit with writes checks them
    /// first: if any key holds something else now (a concurrent run wrote it), the layer
    /// decided on stale data, so the commit stores a failed layer run instead ("state
    /// conflict"), its delivery stays pending and is retried with fresh reads. This is
    /// optimistic concurrency control: two runs cannot both read a day's free slot and
    /// both book it.
    pub state_reads: Vec<StateEntry>,
}

/// One key of a plugin's `state` (`plugin_state`) with a value. As a write (buffered
/// during a layer run, stored with its commit): `Some` sets the key, `None` deletes it.
/// As a read: the value the layer saw, `None` if the key was absent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StateEntry {
    /// The plugin's name (state is scoped by it).
    pub plugin: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Success with output and emitted events, or failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum LayerRunResult {
    /// The delivery is acknowledged; each emitted event is stored (run id and causation
    /// default to the commit's run and event) with a pending delivery per subscriber.
    Succeeded {
        output: serde_json::Value,
        /// The JSON text of `output` if the caller has it (a layer's own text): stored as
        /// is instead of serialising `output` again.
        #[serde(skip)]
        output_json: Option<String>,
        emitted: Vec<(NewEvent, Vec<Subscriber>)>,
    },
    /// The attempt is counted; the delivery goes `failed` when `final_attempt`, else stays
    /// `pending` for a retry.
    Failed { error: String, final_attempt: bool },
}

/// What [`Db::commit_layer_run`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
// Returned by value once per call, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum CommitOutcome {
    Committed {
        layer_run: LayerRunRecord,
        emitted: Vec<EventRecord>,
        /// The `pending` deliveries this commit created (of the emitted events, in their
        /// order, then by subscriber): what the executor runs next, without re-reading.
        deliveries: Vec<PendingDelivery>,
    },
    /// The delivery was no longer pending (handled already): nothing was written.
    Duplicate,
}

/// A delivery waiting for its subscriber ([`Db::pending_deliveries`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingDelivery {
    pub event: EventRecord,
    /// The event's payload as stored (JSON text), when at hand: what the layer is given
    /// instead of serialising `event.payload` again.
    #[serde(skip)]
    pub payload_json: Option<std::sync::Arc<str>>,
    /// The subscribing layer, and its container.
    pub subscriber: String,
    pub container: String,
    /// Failed attempts so far.
    pub attempts: i64,
}

pub(super) const LAYER_RUN_COLUMNS: &str =
    "id, run_id, seq, layer, plugin, container, event_id, topic, \
    status, attempt, duration_ms, output, error, held_back, started_at, finished_at";

#[derive(sqlx::FromRow)]
pub(super) struct LayerRunRow {
    id: String,
    run_id: String,
    seq: i64,
    layer: String,
    plugin: Option<String>,
    container: String,
    event_id: String,
    topic: String,
    status: String,
    attempt: i64,
    duration_ms: f64,
    output: Option<String>,
    error: Option<String>,
    held_back: Option<String>,
    started_at: i64,
    finished_at: i64,
}

impl LayerRunRow {
    pub(super) fn into_record(self, op: &'static str) -> Result<LayerRunRecord, DbError> {
        let corrupt = |reason: String| DbError::Corrupt {
            op,
            reason: format!("layer run {}: {reason}", self.id),
        };
        let json = |what: &str, v: &Option<String>| -> Result<Option<serde_json::Value>, DbError> {
            v.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(format!("{what}: {e}")))
        };
        let status = self.status.parse().map_err(corrupt)?;
        let output = json("output", &self.output)?;
        let held_back = json("held_back", &self.held_back)?;
        Ok(LayerRunRecord {
            id: self.id,
            run_id: self.run_id,
            seq: self.seq,
            layer: self.layer,
            plugin: self.plugin,
            container: self.container,
            event_id: self.event_id,
            topic: self.topic,
            status,
            attempt: self.attempt,
            duration_ms: self.duration_ms,
            output,
            error: self.error,
            held_back,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}
