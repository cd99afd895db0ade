//! Carrying a run out ([`Orchestrator::execute`]): on which thread, then step by step —
//! read its progress, start it, run its deliveries round by round until none can make
//! progress, and finish it with its status and Φ_sync.

use super::delivery::Ran;
use super::{Orchestrator, PipelineError, RunSummary};
use crate::db::{ContainerCounts, PendingDelivery, RunRecord, RunStatus};
use crate::pipelines::phi::phi_sync;
use crate::pipelines::settings::PipelineDef;
use std::collections::HashSet;
use std::sync::Arc;

/// What carrying out a run has done so far, and what is left.
struct Tally {
    /// Layer runs of the run (those of earlier executions included), and the failed ones.
    layer_runs: i64,
    failed: i64,
    /// Deliveries that cannot progress now (layer not loaded or disabled): event id and
    /// subscriber.
    parked: HashSet<(String, String)>,
    /// Why the run stopped before its deliveries ran out.
    error: Option<String>,
    /// Whether the last look at the database found pending deliveries.
    remaining: bool,
}

impl Tally {
    /// Counts what became of delivery `d`; what it leaves to run goes to `next` (the
    /// deliveries its commit created, or itself for a retry).
    fn count(&mut self, ran: Ran, d: PendingDelivery, next: &mut Vec<PendingDelivery>) {
        match ran {
            Ran::Succeeded(deliveries) => {
                self.layer_runs += 1;
                next.extend(deliveries);
            }
            Ran::Failed { retry } => {
                self.layer_runs += 1;
                self.failed += 1;
                if retry {
                    next.push(PendingDelivery {
                        attempts: d.attempts + 1,
                        ..d
                    });
                }
            }
            Ran::Duplicate => {}
        }
    }

    /// How the run ended, given its container counts; a run left with pending deliveries
    /// gets an error saying so (unless it already has one).
    fn status(&mut self, counts: &[ContainerCounts]) -> RunStatus {
        if self.error.is_some() || self.remaining {
            if self.error.is_none() {
                self.error = Some(format!(
                    "{} deliveries could not be made (layer not loaded or disabled)",
                    self.parked.len()
                ));
            }
            RunStatus::Incomplete
        } else if counts
            .iter()
            .any(|c| c.events_fully_acked < c.events_emitted)
        {
            // No delivery is pending: an event not acknowledged by all its subscribers
            // has a failed delivery.
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }
    }
}

impl Orchestrator {
    /// Runs (or resumes) a stored run until no delivery can make progress; stores and
    /// returns how it ended.
    ///
    /// The deliveries to run come from the database once at the start (resuming) and
    /// then from each commit (the deliveries it created, and a failed attempt to retry);
    /// when none is left in hand the database is asked again, so deliveries made by
    /// another executor of the same run are not missed and what is left is known.
    ///
    /// On SQLite the whole run is carried out on one blocking thread (its statements are
    /// synchronous there, and each layer runs on that thread instead of hopping to
    /// another one per delivery).
    pub async fn execute(
        self: &Arc<Self>,
        run_id: &str,
        request_id: Option<Arc<str>>,
    ) -> Result<RunSummary, PipelineError> {
        if self.db.direct().is_none() || crate::db::may_block() {
            return self.execute_here(run_id, request_id).await;
        }
        let (this, run) = (self.clone(), run_id.to_string());
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            crate::db::blocking_scope(|| handle.block_on(this.execute_here(&run, request_id)))
        })
        .await
        .map_err(|e| PipelineError::Executor(format!("run {run_id}: {e}")))?
    }

    /// [`Self::execute`] on this thread.
    async fn execute_here(
        &self,
        run_id: &str,
        request_id: Option<Arc<str>>,
    ) -> Result<RunSummary, PipelineError> {
        let progress = self
            .db
            .run_progress(run_id)
            .await?
            .ok_or_else(|| PipelineError::UnknownRun(run_id.to_string()))?;
        let run = progress.run;
        let Some(def) = self.pipelines.get(&run.pipeline).cloned().map(Arc::new) else {
            return self.fail_unconfigured(run_id, &run).await;
        };
        self.db.start_run(run_id).await?;
        let mut tally = Tally {
            layer_runs: progress.layer_runs,
            failed: progress.failed_layer_runs,
            parked: HashSet::new(),
            error: None,
            remaining: false,
        };
        self.run_deliveries(&def, run_id, run.dry_run, request_id, &mut tally)
            .await?;
        self.finish(run_id, run, tally).await
    }

    /// Finishes a run whose pipeline is no longer configured as failed, running nothing.
    async fn fail_unconfigured(
        &self,
        run_id: &str,
        run: &RunRecord,
    ) -> Result<RunSummary, PipelineError> {
        let pipeline = run.pipeline.clone();
        let error = format!("pipeline {pipeline:?} is no longer configured");
        self.db
            .finish_run(run_id, RunStatus::Failed, None, Some(&error))
            .await?;
        Ok(RunSummary {
            run_id: run_id.to_string(),
            pipeline,
            status: RunStatus::Failed,
            dry_run: run.dry_run,
            phi_sync: None,
            layer_runs: 0,
            failed_layer_runs: 0,
            error: Some(error),
        })
    }

    /// Runs the run's deliveries, round by round, until none is left that can make
    /// progress or the run reaches `max_layer_runs`: the deliveries in hand (what the last
    /// round's commits left to run), else those pending in the database.
    async fn run_deliveries(
        &self,
        def: &Arc<PipelineDef>,
        run_id: &str,
        dry_run: bool,
        request_id: Option<Arc<str>>,
        tally: &mut Tally,
    ) -> Result<(), PipelineError> {
        // Deliveries in hand, in the database's order (event `seq`, then subscriber).
        let mut queue: Vec<PendingDelivery> = Vec::new();
        loop {
            if queue.is_empty() {
                queue = self.pending(run_id, tally).await?;
                if queue.is_empty() {
                    return Ok(());
                }
            }
            let round = std::mem::take(&mut queue);
            match self
                .run_round(def, run_id, dry_run, round, &request_id, tally)
                .await?
            {
                Some(next) => queue = next,
                None => return Ok(()),
            }
        }
    }

    /// The run's pending deliveries in the database, but the parked ones; notes whether
    /// any is pending at all.
    async fn pending(
        &self,
        run_id: &str,
        tally: &mut Tally,
    ) -> Result<Vec<PendingDelivery>, PipelineError> {
        let pending = self
            .db
            .pending_deliveries(
                run_id,
                self.settings.max_layer_runs + tally.parked.len() as i64 + 1,
            )
            .await?;
        tally.remaining = !pending.is_empty();
        Ok(pending
            .into_iter()
            .filter(|d| {
                !tally
                    .parked
                    .contains(&(d.event.id.clone(), d.subscriber.clone()))
            })
            .collect())
    }

    /// Runs each delivery of `queue` on its layer (parking those whose layer is not
    /// loaded or disabled); returns the deliveries to run next, by event `seq` then
    /// subscriber, or `None` when the run reached `max_layer_runs`.
    async fn run_round(
        &self,
        def: &Arc<PipelineDef>,
        run_id: &str,
        dry_run: bool,
        queue: Vec<PendingDelivery>,
        request_id: &Option<Arc<str>>,
        tally: &mut Tally,
    ) -> Result<Option<Vec<PendingDelivery>>, PipelineError> {
        let mut next: Vec<PendingDelivery> = Vec::new();
        for d in queue {
            if tally.layer_runs >= self.settings.max_layer_runs {
                tally.error = Some(format!(
                    "stopped after {} layer runs (pipeline.max_layer_runs): an event loop?",
                    tally.layer_runs
                ));
                return Ok(None);
            }
            let plugin = match self.registry.get(&d.subscriber) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(run = %run_id, layer = %d.subscriber, "delivery parked: {e}");
                    tally
                        .parked
                        .insert((d.event.id.clone(), d.subscriber.clone()));
                    continue;
                }
            };
            let ran = self
                .run_delivery(def, run_id, dry_run, &d, plugin, request_id.clone())
                .await?;
            tally.count(ran, d, &mut next);
        }
        next.sort_by(|a, b| (a.event.seq, &a.subscriber).cmp(&(b.event.seq, &b.subscriber)));
        Ok(Some(next))
    }

    /// Stores how the run ended (status and Φ_sync from its container counts, error),
    /// records its metrics, and returns its summary.
    async fn finish(
        &self,
        run_id: &str,
        run: RunRecord,
        mut tally: Tally,
    ) -> Result<RunSummary, PipelineError> {
        let counts = self.db.run_container_counts(run_id).await?;
        let status = tally.status(&counts);
        let phi = phi_sync(&counts);
        self.db
            .finish_run(run_id, status, phi, tally.error.as_deref())
            .await?;
        self.record_metrics(&run.pipeline, status, phi).await;
        Ok(RunSummary {
            run_id: run_id.to_string(),
            pipeline: run.pipeline,
            status,
            dry_run: run.dry_run,
            phi_sync: phi,
            layer_runs: tally.layer_runs,
            failed_layer_runs: tally.failed,
            error: tally.error,
        })
    }
}
