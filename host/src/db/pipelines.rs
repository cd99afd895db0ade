//! Pipeline runs and their layer runs, and the idempotency of inbound webhooks.
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

use crate::domain::now_ms;

use std::sync::LazyLock;

use rusqlite::OptionalExtension;

use super::direct::{sqlite, WriteTx};
use super::error::q;
use super::events::{
    insert_event, non_empty, with_deliveries, DeliveryRow, EventRecord, EventRow,
    EventWithDeliveries, NewEvent, PreparedEvent, Subscriber, DELIVERY_COLUMNS, EVENT_COLUMNS,
};
use super::jobs::{insert_job_row, insert_job_sqlite, new_job_record, truncate_error};
use super::{clamp_limit, new_id, Db, DbError, JobRecord, NewJob, Pool};

/// Where a pipeline run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, waiting for its worker.
    Queued,
    /// Being executed.
    Running,
    /// Every layer run succeeded and every delivery was acknowledged.
    Succeeded,
    /// The run could not be carried out.
    Failed,
    /// The run ended with failed layer runs or unacknowledged deliveries.
    Incomplete,
}

impl RunStatus {
    pub const ALL: &'static [RunStatus] = &[
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Incomplete => "incomplete",
        }
    }

    /// True for `succeeded`, `failed` and `incomplete`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Incomplete
        )
    }
}

super::text_enum!(RunStatus, "unknown run status", "");

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

super::text_enum!(LayerRunStatus, "unknown layer run status", "");

/// A stored pipeline run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub trigger_event_id: String,
    /// Coherence of the finished run, 0–1.
    pub phi_sync: Option<f64>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    /// The job executing the run, if it was created with one.
    pub job_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

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

/// A run with its layer runs (by `seq`) and its events (by `seq`, with deliveries).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRecord,
    pub layer_runs: Vec<LayerRunRecord>,
    pub events: Vec<EventWithDeliveries>,
}

/// A run to create ([`Db::create_run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub pipeline: String,
    pub dry_run: bool,
    /// The trigger event; its `run_id` is set to the new run's id, and it is marked
    /// dry-run when the run is.
    pub trigger: NewEvent,
    /// The layers that get the trigger.
    pub subscribers: Vec<Subscriber>,
    pub request_id: Option<String>,
    /// A job enqueued in the same transaction (its payload gets `"run_id"`; its request
    /// id defaults to the run's).
    pub job: Option<NewJob>,
}

/// What [`Db::create_run`] stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CreatedRun {
    pub run: RunRecord,
    pub trigger: EventRecord,
    pub job: Option<JobRecord>,
}

/// What [`Db::create_webhook_run`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
// Returned by value once per call, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum WebhookOutcome {
    /// First delivery of this id: the run was created.
    Created(CreatedRun),
    /// The delivery id was seen before: nothing was written; the run and trigger event it
    /// created then, and when it was received.
    Duplicate {
        run_id: String,
        event_id: String,
        received_at: i64,
    },
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

/// A run and how many layer runs it has so far ([`Db::run_progress`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunProgress {
    pub run: RunRecord,
    pub layer_runs: i64,
    pub failed_layer_runs: i64,
}

/// What one run did in one container ([`Db::run_container_counts`]), the terms of Φ_sync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerCounts {
    pub container: String,
    /// Layer runs of the run in this container, and how many succeeded.
    pub layer_runs: i64,
    pub layer_runs_succeeded: i64,
    /// Events of the run emitted in this container, and how many have every delivery
    /// acknowledged (an event without subscribers counts as acknowledged).
    pub events_emitted: i64,
    pub events_fully_acked: i64,
}

const RUN_COLUMNS: &str = "id, pipeline, status, dry_run, trigger_event_id, phi_sync, error, \
    request_id, job_id, created_at, started_at, finished_at";

const LAYER_RUN_COLUMNS: &str = "id, run_id, seq, layer, plugin, container, event_id, topic, \
    status, attempt, duration_ms, output, error, held_back, started_at, finished_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    pipeline: String,
    status: String,
    dry_run: bool,
    trigger_event_id: String,
    phi_sync: Option<f64>,
    error: Option<String>,
    request_id: Option<String>,
    job_id: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl RunRow {
    /// `RUN_COLUMNS` (from column 0) of a row read through a direct SQLite connection.
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            pipeline: r.get(1)?,
            status: r.get(2)?,
            dry_run: r.get(3)?,
            trigger_event_id: r.get(4)?,
            phi_sync: r.get(5)?,
            error: r.get(6)?,
            request_id: r.get(7)?,
            job_id: r.get(8)?,
            created_at: r.get(9)?,
            started_at: r.get(10)?,
            finished_at: r.get(11)?,
        })
    }

    fn into_record(self, op: &'static str) -> Result<RunRecord, DbError> {
        let status = self.status.parse().map_err(|reason| DbError::Corrupt {
            op,
            reason: format!("run {}: {reason}", self.id),
        })?;
        Ok(RunRecord {
            id: self.id,
            pipeline: self.pipeline,
            status,
            dry_run: self.dry_run,
            trigger_event_id: self.trigger_event_id,
            phi_sync: self.phi_sync,
            error: self.error,
            request_id: self.request_id,
            job_id: self.job_id,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LayerRunRow {
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
    fn into_record(self, op: &'static str) -> Result<LayerRunRecord, DbError> {
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

/// Everything [`Db::create_run`] writes, checked and with ids fixed.
struct PreparedRun {
    run: RunRecord,
    trigger: PreparedEvent,
    job: Option<JobRecord>,
}

fn prepare_run(op: &'static str, new: &NewRun, now: i64) -> Result<PreparedRun, DbError> {
    non_empty(op, "pipeline name", &new.pipeline)?;
    let run_id = new_id();
    let mut trigger_ev = new.trigger.clone();
    trigger_ev.run_id = Some(run_id.clone());
    let trigger = PreparedEvent::new(
        op,
        &trigger_ev,
        &new.subscribers,
        None,
        None,
        new.dry_run,
        now,
    )?;
    let job = match &new.job {
        None => None,
        Some(job) => {
            let mut job = job.clone();
            match &mut job.payload {
                serde_json::Value::Object(map) => {
                    map.insert("run_id".into(), run_id.clone().into());
                }
                serde_json::Value::Null => {
                    job.payload = serde_json::json!({ "run_id": run_id });
                }
                other => {
                    return Err(DbError::InvalidInput {
                        op,
                        reason: format!(
                            "the payload of a run's job must be a JSON object, got {other}"
                        ),
                    })
                }
            }
            if job.request_id.is_none() {
                job.request_id = new.request_id.clone();
            }
            Some(new_job_record(op, &job, now)?)
        }
    };
    let run = RunRecord {
        id: run_id,
        pipeline: new.pipeline.clone(),
        status: RunStatus::Queued,
        dry_run: new.dry_run,
        trigger_event_id: trigger.rec.id.clone(),
        phi_sync: None,
        error: None,
        request_id: new.request_id.clone(),
        job_id: job.as_ref().map(|j| j.id.clone()),
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    Ok(PreparedRun { run, trigger, job })
}

/// Insert the run, its trigger and deliveries, and its job, inside transaction `$tx` of
/// `$pool` (the run first: events reference it).
macro_rules! insert_run {
    ($pool:ident, $tx:ident, $p:expr, $op:expr) => {{
        let p: &mut PreparedRun = $p;
        sqlx::query($crate::db::pipelines::INSERT_RUN)
            .bind(p.run.id.as_str())
            .bind(p.run.pipeline.as_str())
            .bind(p.run.status.as_str())
            .bind(p.run.dry_run)
            .bind(p.run.trigger_event_id.as_str())
            .bind(p.run.request_id.as_deref())
            .bind(p.run.job_id.as_deref())
            .bind(p.run.created_at)
            .execute(&mut *$tx)
            .await
            .map_err(q($op))?;
        insert_event!($pool, $tx, &mut p.trigger, $op);
        if let Some(job) = &p.job {
            insert_job_row!(&mut *$tx, job, $op);
        }
    }};
}

/// Inserts a new run (binds: id, pipeline, status, dry_run, trigger_event_id, request_id,
/// job_id, created_at).
pub(super) const INSERT_RUN: &str = "INSERT INTO pipeline_runs (id, pipeline, status, dry_run, \
     trigger_event_id, request_id, job_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

impl PreparedRun {
    /// [`insert_run`] inside the transaction on direct SQLite connection `tx`.
    fn insert_sqlite(
        &mut self,
        tx: &rusqlite::Connection,
        op: &'static str,
    ) -> Result<(), DbError> {
        let r = &self.run;
        tx.prepare_cached(INSERT_RUN)
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    r.id,
                    r.pipeline,
                    r.status.as_str(),
                    r.dry_run,
                    r.trigger_event_id,
                    r.request_id,
                    r.job_id,
                    r.created_at,
                ])
            })
            .map_err(sqlite(op))?;
        self.trigger.insert_sqlite(tx, op)?;
        if let Some(job) = &self.job {
            insert_job_sqlite(tx, job, op)?;
        }
        Ok(())
    }

    fn into_created(self) -> CreatedRun {
        CreatedRun {
            run: self.run,
            trigger: self.trigger.rec,
            job: self.job,
        }
    }
}

impl Db {
    /// Create a run in one transaction: the run (`queued`), its trigger event (run id set)
    /// with a `pending` delivery to each subscriber, and, when `new.job` is set, the job
    /// (payload with `"run_id"` added; a `null` payload becomes `{"run_id": …}`; the
    /// run's `job_id` names it). [`DbError::InvalidInput`] for an empty pipeline, event
    /// field or subscriber, a job payload that is not an object, or a bad job;
    /// [`DbError::Constraint`] if the trigger's caller-chosen id is already stored.
    pub async fn create_run(&self, new: &NewRun) -> Result<CreatedRun, DbError> {
        const OP: &str = "create_run";
        let mut p = prepare_run(OP, new, now_ms())?;
        match &self.pool {
            Pool::Sqlite(_, direct) => {
                p = direct
                    .write(OP, move |c| {
                        let tx = WriteTx::begin(c).map_err(sqlite(OP))?;
                        p.insert_sqlite(&tx, OP)?;
                        tx.commit().map_err(sqlite(OP))?;
                        Ok(p)
                    })
                    .await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(q(OP))?;
                insert_run!(pool, tx, &mut p, OP);
                tx.commit().await.map_err(q(OP))?;
            }
        }
        Ok(p.into_created())
    }

    /// [`Db::create_run`] for delivery `delivery_id` of webhook `webhook`, at most once
    /// per delivery id: in one transaction, the delivery is recorded in
    /// `webhook_deliveries` (`ON CONFLICT DO NOTHING`) and, only if it was new, the run is
    /// created. A delivery id seen before writes nothing and returns
    /// [`WebhookOutcome::Duplicate`] with the run and trigger event it created then; of
    /// concurrent deliveries of one id exactly one is `Created`.
    pub async fn create_webhook_run(
        &self,
        webhook: &str,
        delivery_id: &str,
        body_sha256: &str,
        run: &NewRun,
    ) -> Result<WebhookOutcome, DbError> {
        const OP: &str = "create_webhook_run";
        non_empty(OP, "webhook name", webhook)?;
        non_empty(OP, "delivery id", delivery_id)?;
        non_empty(OP, "body sha256", body_sha256)?;
        let now = now_ms();
        let mut p = prepare_run(OP, run, now)?;
        let duplicate: Option<(String, String, i64)> = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(q(OP))?;
            // On PostgreSQL a concurrent insert of the same key waits here until the other
            // transaction ends, then does nothing (it committed) or inserts (rolled back).
            let inserted = sqlx::query(
                "INSERT INTO webhook_deliveries (webhook, delivery_id, received_at, \
                 body_sha256, run_id, event_id) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (webhook, delivery_id) DO NOTHING",
            )
            .bind(webhook)
            .bind(delivery_id)
            .bind(now)
            .bind(body_sha256)
            .bind(p.run.id.as_str())
            .bind(p.trigger.rec.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?
            .rows_affected();
            if inserted == 0 {
                let stored: (String, String, i64) = sqlx::query_as(
                    "SELECT run_id, event_id, received_at FROM webhook_deliveries \
                     WHERE webhook = $1 AND delivery_id = $2",
                )
                .bind(webhook)
                .bind(delivery_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(q(OP))?;
                tx.rollback().await.map_err(q(OP))?;
                Some(stored)
            } else {
                insert_run!(pool, tx, &mut p, OP);
                tx.commit().await.map_err(q(OP))?;
                None
            }
        });
        Ok(match duplicate {
            Some((run_id, event_id, received_at)) => WebhookOutcome::Duplicate {
                run_id,
                event_id,
                received_at,
            },
            None => WebhookOutcome::Created(p.into_created()),
        })
    }

    /// Mark a `queued` (or already `running`) run `running`; `started_at` is set the first
    /// time. False if the run is unknown or finished.
    pub async fn start_run(&self, run_id: &str) -> Result<bool, DbError> {
        const OP: &str = "start_run";
        const SQL: &str = "UPDATE pipeline_runs SET status = 'running', \
             started_at = COALESCE(started_at, $1) WHERE id = $2 AND status IN ('queued', 'running')";
        let now = now_ms();
        let n = match &self.pool {
            Pool::Sqlite(_, direct) => {
                let run_id = run_id.to_string();
                direct
                    .write(OP, move |c| {
                        c.prepare_cached(SQL)
                            .and_then(|mut st| st.execute((now, run_id)))
                            .map_err(sqlite(OP))
                    })
                    .await? as u64
            }
            Pool::Postgres(pool) => sqlx::query(SQL)
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Finish a `queued` or `running` run with a final `status`, its Φ_sync and error
    /// (cut to 8 KiB); `finished_at` = now. False if the run is unknown or already
    /// finished. [`DbError::InvalidInput`] for a status that is not final or a Φ_sync
    /// outside 0–1.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        phi_sync: Option<f64>,
        error: Option<&str>,
    ) -> Result<bool, DbError> {
        const OP: &str = "finish_run";
        if !status.is_final() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: format!("a run cannot finish as {status}"),
            });
        }
        if let Some(phi) = phi_sync {
            if !(phi.is_finite() && (0.0..=1.0).contains(&phi)) {
                return Err(DbError::InvalidInput {
                    op: OP,
                    reason: format!("phi_sync {phi} is not within 0–1"),
                });
            }
        }
        const SQL: &str = "UPDATE pipeline_runs SET status = $1, phi_sync = $2, error = $3, \
             finished_at = $4 WHERE id = $5 AND status IN ('queued', 'running')";
        let error = error.map(truncate_error);
        let now = now_ms();
        let n = match &self.pool {
            Pool::Sqlite(_, direct) => {
                let (run_id, error) = (run_id.to_string(), error.map(str::to_string));
                direct
                    .write(OP, move |c| {
                        c.prepare_cached(SQL)
                            .and_then(|mut st| {
                                st.execute((status.as_str(), phi_sync, error, now, run_id))
                            })
                            .map_err(sqlite(OP))
                    })
                    .await? as u64
            }
            Pool::Postgres(pool) => sqlx::query(SQL)
                .bind(status.as_str())
                .bind(phi_sync)
                .bind(error)
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Deliveries of the run still `pending`, by event `seq` then subscriber, at most
    /// `limit` (0 = 100, at most 10 000).
    pub async fn pending_deliveries(
        &self,
        run_id: &str,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>, DbError> {
        const OP: &str = "pending_deliveries";
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            event: EventRow,
            d_subscriber: String,
            d_container: String,
            d_attempts: i64,
        }
        // Built once: it runs twice per pipeline run.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, d.subscriber AS d_subscriber, d.container AS d_container, \
                 d.attempts AS d_attempts FROM events e \
                 JOIN event_deliveries d ON d.event_id = e.id WHERE e.run_id = $1 \
                 AND d.status = 'pending' ORDER BY e.seq, d.subscriber LIMIT $2",
                qualified("e", EVENT_COLUMNS)
            )
        });
        let sql = SQL.as_str();
        let rows: Vec<Row> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                let mut st = c.prepare_cached(sql).map_err(sqlite(OP))?;
                let rows = st
                    .query_map((run_id, clamp_limit(limit)), |r| {
                        Ok(Row {
                            event: EventRow::from_sqlite(r, 0)?,
                            d_subscriber: r.get(10)?,
                            d_container: r.get(11)?,
                            d_attempts: r.get(12)?,
                        })
                    })
                    .map_err(sqlite(OP))?;
                rows.collect::<Result<Vec<Row>, _>>().map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(sql)
                .bind(run_id)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?,
        };
        rows.into_iter()
            .map(|r| {
                Ok(PendingDelivery {
                    payload_json: Some(r.event.payload.as_str().into()),
                    event: r.event.into_record(OP)?,
                    subscriber: r.d_subscriber,
                    container: r.d_container,
                    attempts: r.d_attempts,
                })
            })
            .collect()
    }

    /// A run with its layer runs (by `seq`) and its events (by `seq`, each with its
    /// deliveries by subscriber).
    pub async fn get_run(&self, id: &str) -> Result<Option<RunDetail>, DbError> {
        const OP: &str = "get_run";
        let run_sql = format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = $1");
        let lr_sql =
            format!("SELECT {LAYER_RUN_COLUMNS} FROM layer_runs WHERE run_id = $1 ORDER BY seq");
        let ev_sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE run_id = $1 ORDER BY seq");
        let del_sql = format!(
            "SELECT {} FROM event_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE e.run_id = $1 ORDER BY e.seq, d.subscriber",
            qualified("d", DELIVERY_COLUMNS)
        );
        type Rows = (Vec<LayerRunRow>, Vec<EventRow>, Vec<DeliveryRow>);
        let (run, rows): (Option<RunRow>, Option<Rows>) = on_pool!(self, |pool| {
            let run: Option<RunRow> = sqlx::query_as(&run_sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?;
            if run.is_none() {
                (None, None)
            } else {
                let lr = sqlx::query_as(&lr_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                let ev = sqlx::query_as(&ev_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                let del = sqlx::query_as(&del_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                (run, Some((lr, ev, del)))
            }
        });
        let (Some(run), Some((lr, ev, del))) = (run, rows) else {
            return Ok(None);
        };
        Ok(Some(RunDetail {
            run: run.into_record(OP)?,
            layer_runs: lr
                .into_iter()
                .map(|r| r.into_record(OP))
                .collect::<Result<_, _>>()?,
            events: with_deliveries(OP, ev, del)?,
        }))
    }

    /// A run and the number of its layer runs, and of the failed ones, in one query
    /// (what an executor needs to start or resume it); `None` for an unknown run.
    pub async fn run_progress(&self, id: &str) -> Result<Option<RunProgress>, DbError> {
        const OP: &str = "run_progress";
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            run: RunRow,
            lr: i64,
            lr_failed: i64,
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {RUN_COLUMNS}, \
                 CAST((SELECT COUNT(*) FROM layer_runs WHERE run_id = $1) AS BIGINT) AS lr, \
                 CAST((SELECT COUNT(*) FROM layer_runs WHERE run_id = $1 AND status = 'failed') \
                 AS BIGINT) AS lr_failed FROM pipeline_runs WHERE id = $1"
            )
        });
        let sql = SQL.as_str();
        let row: Option<Row> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                c.prepare_cached(sql)
                    .and_then(|mut st| {
                        st.query_row([id], |r| {
                            Ok(Row {
                                run: RunRow::from_sqlite(r)?,
                                lr: r.get(12)?,
                                lr_failed: r.get(13)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?,
        };
        row.map(|r| {
            Ok(RunProgress {
                run: r.run.into_record(OP)?,
                layer_runs: r.lr,
                failed_layer_runs: r.lr_failed,
            })
        })
        .transpose()
    }

    /// Runs (of `pipeline` if given), newest first; `limit` 0 = 100, at most 10 000.
    pub async fn list_runs(
        &self,
        pipeline: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, DbError> {
        const OP: &str = "list_runs";
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE ($1 IS NULL OR pipeline = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<RunRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(pipeline)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Per container the run touched (in its layer runs or its events), sorted by name:
    /// its layer runs there (`layer_runs.container`) and how many succeeded, and the
    /// run's events emitted there (`events.container`) and how many have no delivery
    /// that is not `acked` (an event without subscribers counts as acknowledged). The
    /// terms of Φ_sync; empty for an unknown run.
    pub async fn run_container_counts(
        &self,
        run_id: &str,
    ) -> Result<Vec<ContainerCounts>, DbError> {
        const OP: &str = "run_container_counts";
        const SQL: &str = "SELECT container, CAST(SUM(lr) AS BIGINT), CAST(SUM(lrs) AS BIGINT), \
             CAST(SUM(ev) AS BIGINT), CAST(SUM(eva) AS BIGINT) FROM ( \
               SELECT container, 1 AS lr, \
                      CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END AS lrs, 0 AS ev, 0 AS eva \
                 FROM layer_runs WHERE run_id = $1 \
               UNION ALL \
               SELECT e.container, 0, 0, 1, \
                      CASE WHEN EXISTS (SELECT 1 FROM event_deliveries d \
                                        WHERE d.event_id = e.id AND d.status <> 'acked') \
                           THEN 0 ELSE 1 END \
                 FROM events e WHERE e.run_id = $1 \
             ) t GROUP BY container ORDER BY container";
        let rows: Vec<(String, i64, i64, i64, i64)> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                let mut st = c.prepare_cached(SQL).map_err(sqlite(OP))?;
                let rows = st
                    .query_map([run_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(sqlite(OP))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(SQL)
                .bind(run_id)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(
                    container,
                    layer_runs,
                    layer_runs_succeeded,
                    events_emitted,
                    events_fully_acked,
                )| {
                    ContainerCounts {
                        container,
                        layer_runs,
                        layer_runs_succeeded,
                        events_emitted,
                        events_fully_acked,
                    }
                },
            )
            .collect())
    }

    /// Φ_sync of the newest finished runs of `pipeline` that have one, newest first, at
    /// most `limit` (0 = 100, at most 10 000).
    pub async fn recent_phi(&self, pipeline: &str, limit: i64) -> Result<Vec<f64>, DbError> {
        const OP: &str = "recent_phi";
        let rows: Vec<f64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT phi_sync FROM pipeline_runs WHERE pipeline = $1 AND phi_sync IS NOT NULL \
                 AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT $2",
            )
            .bind(pipeline)
            .bind(clamp_limit(limit))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(rows)
    }
}

/// `"a, b"` → `"t.a, t.b"`.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
