//! One delivery to its layer ([`Orchestrator::run_delivery`]): the layer and the commit of
//! its result on one blocking thread, a panic committed as a failed layer run, and what
//! became of the delivery ([`Ran`]) counted in the layer metrics.

use super::layer_job::{LayerJob, LayerTape};
use super::{Orchestrator, PipelineError};
use crate::db::{CommitOutcome, LayerRunStatus, PendingDelivery};
use crate::pipelines::settings::PipelineDef;
use std::sync::Arc;
use std::time::Instant;

/// What became of one delivery ([`Orchestrator::run_delivery`]).
pub(super) enum Ran {
    /// Committed: the deliveries of the events it emitted.
    Succeeded(Vec<PendingDelivery>),
    /// Committed as failed; `retry` while the delivery stays pending.
    Failed { retry: bool },
    /// Another executor acknowledged the delivery first; nothing was stored.
    Duplicate,
}

impl Orchestrator {
    /// One delivery to one layer, its layer run committed (with the layer's `state`
    /// writes) unless another executor acknowledged the delivery first. The layer and its
    /// commit run on one blocking thread (on SQLite the commit is synchronous there).
    pub(super) async fn run_delivery(
        &self,
        def: &Arc<PipelineDef>,
        run_id: &str,
        dry_run: bool,
        d: &PendingDelivery,
        plugin: Arc<crate::runtime::LoadedPlugin>,
        request_id: Option<Arc<str>>,
    ) -> Result<Ran, PipelineError> {
        let attempt = d.attempts + 1;
        let job = Arc::new(LayerJob {
            def: def.clone(),
            run_id: run_id.to_string(),
            dry_run,
            delivery: d.clone(),
            plugin,
            attempt,
            final_attempt: attempt >= self.settings.max_attempts,
        });
        let started = Instant::now();
        let (db, task) = (self.db.clone(), job.clone());
        // On a blocking thread: the layer's in-process CRM writes may run on it.
        let work = move || {
            crate::db::blocking_scope(|| {
                let (ok, commit, tape) = task.run(request_id);
                let outcome = db.commit_layer_run_blocking(&commit);
                (ok, commit, outcome, tape)
            })
        };
        let done = if crate::db::may_block() {
            // Already on one (a SQLite run's thread, see `execute`).
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into())
            })
        } else {
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| e.to_string())
        };
        let (ok, commit, outcome, tape) = match done {
            Ok(done) => done,
            // A panic in the layer's task is that layer run failing, not a bad request.
            Err(e) => {
                let (ok, commit) = job.commit(
                    Err(format!("layer task panicked: {e}")),
                    crate::capabilities::CallUsage::default(),
                    crate::domain::now_ms() - started.elapsed().as_millis() as i64,
                    started.elapsed(),
                );
                let outcome = self.db.commit_layer_run(&commit).await;
                (ok, commit, outcome, None)
            }
        };
        let ran = match outcome? {
            CommitOutcome::Committed {
                layer_run,
                deliveries,
                ..
            } => {
                if let Some(tape) = tape {
                    self.store_layer_tape(&layer_run.id, &job.plugin, tape)
                        .await;
                }
                match layer_run.status {
                    LayerRunStatus::Succeeded => Ran::Succeeded(deliveries),
                    // The layer succeeded but the commit found its state reads stale: always
                    // retried (with fresh reads); `max_layer_runs` bounds a run's retries.
                    LayerRunStatus::Failed if ok => {
                        tracing::warn!(run = %run_id, layer = %d.subscriber, attempt,
                        "layer run not stored: {}", layer_run.error.as_deref().unwrap_or(""));
                        Ran::Failed { retry: true }
                    }
                    LayerRunStatus::Failed => Ran::Failed {
                        retry: !job.final_attempt,
                    },
                }
            }
            CommitOutcome::Duplicate => {
                tracing::info!(run = %run_id, event = %d.event.id, layer = %d.subscriber,
                    "delivery already acknowledged by another executor; result discarded");
                Ran::Duplicate
            }
        };
        let label = match &ran {
            Ran::Succeeded(_) => "succeeded",
            Ran::Failed { .. } => "failed",
            Ran::Duplicate => "duplicate",
        };
        metrics::counter!("layer_runs_total", "layer" => d.subscriber.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("layer_run_duration_seconds", "layer" => d.subscriber.clone())
            .record(commit.duration_ms / 1000.0);
        Ok(ran)
    }

    /// Stores a layer run's tape under its id (best effort: a replay is not worth failing
    /// the run over; logged if it cannot).
    async fn store_layer_tape(
        &self,
        layer_run_id: &str,
        plugin: &crate::runtime::LoadedPlugin,
        tape: LayerTape,
    ) {
        let t = crate::db::ExecutionTape::new(
            layer_run_id,
            crate::db::TapeKind::Layer,
            plugin.name(),
            plugin.version(),
            &tape.input,
            tape.output.as_deref(),
            tape.entries,
        );
        if let Err(e) = self.db.insert_execution_tape(&t).await {
            tracing::warn!(layer_run = %layer_run_id, error = %e, "cannot store the layer run's tape");
        }
    }
}
