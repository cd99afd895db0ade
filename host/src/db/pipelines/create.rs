//! Creating a run ([`Db::create_run`]): in one transaction its row, its trigger event with
//! a delivery per subscriber, and optionally its job; and the same at most once per
//! delivery id of an inbound webhook ([`Db::create_webhook_run`]).

use super::runs::{RunRecord, RunStatus};
use crate::db::direct::{sqlite, WriteTx};
use crate::db::error::q;
use crate::db::events::{
    insert_event, non_empty, EventRecord, NewEvent, PreparedEvent, Subscriber,
};
use crate::db::jobs::{insert_job_row, insert_job_sqlite, new_job_record};
use crate::db::{new_id, Db, DbError, JobRecord, NewJob, Pool};
use crate::domain::now_ms;

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
        sqlx::query(INSERT_RUN)
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
const INSERT_RUN: &str = "INSERT INTO pipeline_runs (id, pipeline, status, dry_run, \
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
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
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
}
