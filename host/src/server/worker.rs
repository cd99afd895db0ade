//! Job workers: claim durable jobs from the queue (leases; a job whose claimer died is
//! reclaimed after its lease), run them, record the outcome; retries with exponential
//! backoff, `dead` with the last error after the last attempt. On shutdown a worker hands
//! its running job back to the queue.

use super::AppState;
use crate::db::jobs::kinds;
use crate::db::JobRecord;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const IDLE_POLL: Duration = Duration::from_millis(500);

/// Starts `server.workers` workers; they stop when `stop` turns true.
pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let host = format!("{}-{}", hostname(), std::process::id());
    (0..state.config.server.workers)
        .map(|i| {
            let owner = format!("{host}-w{i}-{}", uuid::Uuid::new_v4().simple());
            tokio::spawn(run(state.clone(), owner, stop.clone()))
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

async fn run(st: AppState, owner: String, mut stop: watch::Receiver<bool>) {
    let lease = st.config.server.job_lease_ms;
    while !*stop.borrow() {
        let job = match st.db.claim_job(&owner, lease, kinds::ALL).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tokio::select! {
                    _ = st.worker_wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let started = Instant::now();
        let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, request_id = job.request_id.as_deref().unwrap_or(""));
        let work = tracing::Instrument::instrument(execute(&st, &job), span);
        tokio::pin!(work);
        let outcome = tokio::select! {
            r = &mut work => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        match outcome {
            None => {
                // Shutting down mid-job: give it back untouched (not counted as an attempt).
                match st.db.release_job(&job.id, &owner).await {
                    Ok(_) => {
                        tracing::info!(job_id = %job.id, "job returned to the queue on shutdown")
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "cannot release job; its lease will expire")
                    }
                }
                break;
            }
            Some(Ok(result)) => {
                metrics::counter!("jobs_total", "kind" => job.kind.clone(), "outcome" => "succeeded").increment(1);
                metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone())
                    .record(started.elapsed().as_secs_f64());
                if let Ok(false) | Err(_) = st.db.complete_job(&job.id, &owner, &result).await {
                    tracing::warn!(job_id = %job.id, "job finished after its lease was lost; result not recorded");
                }
            }
            Some(Err(error)) => {
                let error = error.to_string();
                let delay = 500i64 << job.attempts.clamp(0, 10);
                match st.db.fail_job(&job.id, &owner, &error, delay).await {
                    Ok(Some(j)) => {
                        let outcome = if j.status.as_str() == "dead" {
                            "dead"
                        } else {
                            "retry"
                        };
                        metrics::counter!("jobs_total", "kind" => job.kind.clone(), "outcome" => outcome).increment(1);
                        tracing::warn!(job_id = %job.id, attempt = job.attempts, %error, outcome, "job failed");
                    }
                    _ => {
                        tracing::warn!(job_id = %job.id, %error, "job failed after its lease was lost")
                    }
                }
            }
        }
    }
}

/// Why a job attempt failed; its message is the job's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error("payload has no {0}")]
    Payload(&'static str),
    #[error("lead {0:?} no longer exists")]
    LeadGone(String),
    #[error("scoring task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Slot(#[from] crate::plugins::SlotError),
    #[error(transparent)]
    Call(#[from] crate::runtime::CallError),
    #[error(transparent)]
    Qualify(#[from] crate::qualify::QualifyError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipelines::PipelineError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("cannot encode the result: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Runs one job; `Err` is the error to record.
async fn execute(st: &AppState, job: &JobRecord) -> Result<serde_json::Value, JobError> {
    match job.kind.as_str() {
        kinds::QUALIFY => qualify(st, job).await,
        kinds::PIPELINE_RUN => pipeline_run(st, job).await,
        other => Err(JobError::UnknownKind(other.to_string())),
    }
}

/// Runs (or resumes, after a lost lease) a pipeline run to its end.
async fn pipeline_run(st: &AppState, job: &JobRecord) -> Result<serde_json::Value, JobError> {
    let run_id = job.payload["run_id"]
        .as_str()
        .ok_or(JobError::Payload("run_id"))?;
    let rid = job.request_id.as_deref().map(Arc::from);
    let summary = st.pipelines.execute(run_id, rid).await?;
    Ok(serde_json::to_value(summary)?)
}

async fn qualify(st: &AppState, job: &JobRecord) -> Result<serde_json::Value, JobError> {
    let lead_id = job.payload["lead_id"]
        .as_str()
        .ok_or(JobError::Payload("lead_id"))?
        .to_string();
    let strategy = st.config.qualify_strategy(job.payload["strategy"].as_str());
    let plugin = st.manager.registry().get(&strategy)?;
    let started = Instant::now();
    let r = st
        .qualify
        .run_for_job(plugin, &lead_id, job.request_id.clone(), Some(&job.id))
        .await;
    if matches!(r, Err(crate::qualify::QualifyError::NoLead(_))) {
        return Err(JobError::LeadGone(lead_id));
    }
    metrics::histogram!("qualify_duration_seconds", "strategy" => strategy)
        .record(started.elapsed().as_secs_f64());
    Ok(r?)
}
