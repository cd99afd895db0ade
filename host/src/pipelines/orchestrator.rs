//! Runs pipelines: a run starts from one trigger event (API request or webhook delivery)
//! stored with its deliveries; the orchestrator then hands each pending delivery to its
//! layer (in its own sandbox, on a blocking thread), and commits the layer run, the
//! events it emitted (with deliveries to their subscribers in this pipeline) and the
//! acknowledgement in one transaction. A failed attempt leaves the delivery pending until
//! `max_attempts`; a layer that is not loaded (or disabled) leaves it pending. When no
//! delivery can make progress the run ends with its Φ_sync.
//!
//! At least once: if the process dies mid-run, the job is reclaimed and `execute` resumes
//! from the pending deliveries; a layer whose commit lost the race (the delivery was
//! acknowledged meanwhile) is recognised by the event id and its result discarded.

use super::phi::phi_sync;
use super::settings::{PipelineDef, RunSettings, WebhookDef};
use crate::db::{
    CommitOutcome, CreatedRun, Db, DbError, LayerRunCommit, LayerRunResult, LayerRunStatus,
    NewEvent, NewJob, NewRun, PendingDelivery, RunStatus, Subscriber, WebhookOutcome,
};
use crate::plugins::Registry;
use crate::runtime::call::{LayerInput, LayerResult};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Job kind of a pipeline run.
pub const PIPELINE_JOB: &str = "pipeline_run";
/// Producer name of trigger events posted through the API.
pub const API_PRODUCER: &str = "api";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("no pipeline {0:?} is configured (see [pipelines] in strata.toml)")]
    UnknownPipeline(String),
    #[error("no webhook {0:?} is configured (see [webhooks] in strata.toml)")]
    UnknownWebhook(String),
    #[error("no pipeline run {0:?}")]
    UnknownRun(String),
    #[error("invalid trigger: {0}")]
    BadTrigger(String),
    #[error("the executor of a run failed: {0}")]
    Executor(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub phi_sync: Option<f64>,
    pub layer_runs: i64,
    pub failed_layer_runs: i64,
    pub error: Option<String>,
}

/// What became of one delivery ([`Orchestrator::run_delivery`]).
enum Ran {
    /// Committed: the deliveries of the events it emitted.
    Succeeded(Vec<PendingDelivery>),
    /// Committed as failed; `retry` while the delivery stays pending.
    Failed { retry: bool },
    /// Another executor acknowledged the delivery first; nothing was stored.
    Duplicate,
}

pub struct Orchestrator {
    db: Db,
    registry: Arc<Registry>,
    settings: RunSettings,
    pipelines: BTreeMap<String, PipelineDef>,
    webhooks: BTreeMap<String, WebhookDef>,
    /// Φ_sync of the newest finished runs per pipeline, oldest first, at most
    /// `phi_window`: seeded from the database on a pipeline's first finished run here,
    /// then kept by this process (runs finished by other processes afterwards are not
    /// in it).
    phi_windows: Mutex<HashMap<String, VecDeque<f64>>>,
}

impl Orchestrator {
    pub fn new(
        db: Db,
        registry: Arc<Registry>,
        settings: RunSettings,
        pipelines: BTreeMap<String, PipelineDef>,
        webhooks: BTreeMap<String, WebhookDef>,
    ) -> Self {
        Orchestrator {
            db,
            registry,
            settings,
            pipelines,
            webhooks,
            phi_windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn pipelines(&self) -> &BTreeMap<String, PipelineDef> {
        &self.pipelines
    }

    pub fn webhook(&self, name: &str) -> Option<&WebhookDef> {
        self.webhooks.get(name)
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    fn pipeline(&self, name: &str) -> Result<&PipelineDef, PipelineError> {
        self.pipelines
            .get(name)
            .ok_or_else(|| PipelineError::UnknownPipeline(name.to_string()))
    }

    fn new_run(
        &self,
        pipeline: &str,
        topic: &str,
        subscribers: Vec<Subscriber>,
        payload: Value,
        producer: String,
        dry_run: bool,
        request_id: Option<String>,
        as_job: bool,
    ) -> Result<NewRun, PipelineError> {
        if !payload.is_object() {
            return Err(PipelineError::BadTrigger(
                "the trigger payload must be a JSON object".into(),
            ));
        }
        let dry_run = dry_run || self.settings.dry_run;
        let container = subscribers
            .first()
            .map(|s| s.container.clone())
            .unwrap_or_default();
        let job = as_job.then(|| {
            let mut job = NewJob::new(PIPELINE_JOB, json!({ "pipeline": pipeline }));
            job.request_id = request_id.clone();
            job.max_attempts = 3;
            job
        });
        Ok(NewRun {
            pipeline: pipeline.to_string(),
            dry_run,
            trigger: NewEvent {
                container,
                topic: topic.to_string(),
                payload,
                producer,
                run_id: None,
                dry_run,
                causation_id: None,
                id: None,
                payload_json: None,
            },
            subscribers,
            request_id,
            job,
        })
    }

    /// Stores a new run of `pipeline` started by `payload` on its start topic; with
    /// `as_job` a durable job runs it (a worker calls [`Self::execute`]).
    pub async fn create_run(
        &self,
        pipeline: &str,
        payload: Value,
        dry_run: bool,
        request_id: Option<String>,
        as_job: bool,
    ) -> Result<CreatedRun, PipelineError> {
        let def = self.pipeline(pipeline)?;
        let subscribers = def
            .subscribers(&def.start_topic)
            .into_iter()
            .map(|b| b.subscriber())
            .collect();
        let run = self.new_run(
            pipeline,
            &def.start_topic,
            subscribers,
            payload,
            API_PRODUCER.into(),
            dry_run,
            request_id,
            as_job,
        )?;
        Ok(self.db.create_run(&run).await?)
    }

    /// Stores a verified webhook delivery as a run whose trigger goes to the webhook's
    /// layer only, unless this delivery id was seen before (then nothing is written).
    pub async fn create_webhook_run(
        &self,
        webhook: &str,
        delivery_id: &str,
        body_sha256: &str,
        payload: Value,
        request_id: Option<String>,
    ) -> Result<WebhookOutcome, PipelineError> {
        let w = self
            .webhooks
            .get(webhook)
            .ok_or_else(|| PipelineError::UnknownWebhook(webhook.to_string()))?;
        let def = self.pipeline(&w.pipeline)?;
        let binding = def.binding(&w.layer).ok_or_else(|| {
            PipelineError::BadTrigger(format!(
                "layer {:?} is not in pipeline {:?}",
                w.layer, w.pipeline
            ))
        })?;
        let run = self.new_run(
            &w.pipeline,
            &w.topic,
            vec![binding.subscriber()],
            payload,
            format!("webhook:{webhook}"),
            false,
            request_id,
            true,
        )?;
        Ok(self
            .db
            .create_webhook_run(webhook, delivery_id, body_sha256, &run)
            .await?)
    }

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
        let pipeline = run.pipeline.clone();
        let Some(def) = self.pipelines.get(&pipeline).cloned().map(Arc::new) else {
            let error = format!("pipeline {pipeline:?} is no longer configured");
            self.db
                .finish_run(run_id, RunStatus::Failed, None, Some(&error))
                .await?;
            return Ok(RunSummary {
                run_id: run_id.to_string(),
                pipeline,
                status: RunStatus::Failed,
                dry_run: run.dry_run,
                phi_sync: None,
                layer_runs: 0,
                failed_layer_runs: 0,
                error: Some(error),
            });
        };
        self.db.start_run(run_id).await?;
        let mut layer_runs = progress.layer_runs;
        let mut failed = progress.failed_layer_runs;
        // Deliveries that cannot progress now (layer not loaded or disabled).
        let mut parked: HashSet<(String, String)> = HashSet::new();
        let mut error: Option<String> = None;
        // Deliveries in hand, in the database's order (event `seq`, then subscriber).
        let mut queue: Vec<PendingDelivery> = Vec::new();
        // Whether the last look at the database found pending deliveries.
        let mut remaining = false;
        'outer: loop {
            if queue.is_empty() {
                let pending = self
                    .db
                    .pending_deliveries(
                        run_id,
                        self.settings.max_layer_runs + parked.len() as i64 + 1,
                    )
                    .await?;
                remaining = !pending.is_empty();
                queue = pending
                    .into_iter()
                    .filter(|d| !parked.contains(&(d.event.id.clone(), d.subscriber.clone())))
                    .collect();
                if queue.is_empty() {
                    break;
                }
            }
            let mut next: Vec<PendingDelivery> = Vec::new();
            for d in std::mem::take(&mut queue) {
                if layer_runs >= self.settings.max_layer_runs {
                    error = Some(format!(
                        "stopped after {layer_runs} layer runs (pipeline.max_layer_runs): an event loop?"
                    ));
                    break 'outer;
                }
                let plugin = match self.registry.get(&d.subscriber) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(run = %run_id, layer = %d.subscriber, "delivery parked: {e}");
                        parked.insert((d.event.id.clone(), d.subscriber.clone()));
                        continue;
                    }
                };
                let ran = self
                    .run_delivery(&def, run_id, run.dry_run, &d, plugin, request_id.clone())
                    .await?;
                match ran {
                    Ran::Succeeded(deliveries) => {
                        layer_runs += 1;
                        next.extend(deliveries);
                    }
                    Ran::Failed { retry } => {
                        layer_runs += 1;
                        failed += 1;
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
            next.sort_by(|a, b| (a.event.seq, &a.subscriber).cmp(&(b.event.seq, &b.subscriber)));
            queue = next;
        }
        let counts = self.db.run_container_counts(run_id).await?;
        let status = if error.is_some() || remaining {
            if error.is_none() {
                error = Some(format!(
                    "{} deliveries could not be made (layer not loaded or disabled)",
                    parked.len()
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
        };
        let phi = phi_sync(&counts);
        self.db
            .finish_run(run_id, status, phi, error.as_deref())
            .await?;
        self.record_metrics(&pipeline, status, phi).await;
        Ok(RunSummary {
            run_id: run_id.to_string(),
            pipeline,
            status,
            dry_run: run.dry_run,
            phi_sync: phi,
            layer_runs,
            failed_layer_runs: failed,
            error,
        })
    }

    /// One delivery to one layer, its layer run committed (with the layer's `state`
    /// writes) unless another executor acknowledged the delivery first. The layer and its
    /// commit run on one blocking thread (on SQLite the commit is synchronous there).
    async fn run_delivery(
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
                let (ok, commit) = task.run(request_id);
                let outcome = db.commit_layer_run_blocking(&commit);
                (ok, commit, outcome)
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
        let (ok, commit, outcome) = match done {
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
                (ok, commit, outcome)
            }
        };
        let ran = match outcome? {
            CommitOutcome::Committed {
                layer_run,
                deliveries,
                ..
            } => match layer_run.status {
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
            },
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

    async fn record_metrics(&self, pipeline: &str, status: RunStatus, phi: Option<f64>) {
        metrics::counter!("pipeline_runs_total", "pipeline" => pipeline.to_string(), "status" => status.as_str())
            .increment(1);
        if let Some(phi) = phi {
            metrics::gauge!("phi_sync_last", "pipeline" => pipeline.to_string()).set(phi);
        }
        if let Some(mean) = self.rolling_phi(pipeline, phi).await {
            metrics::gauge!("phi_sync_rolling_mean", "pipeline" => pipeline.to_string()).set(mean);
        }
    }

    /// Adds a finished run's Φ_sync to its pipeline's window and returns the window's
    /// mean; the first time, the window is read from the database (this run included).
    async fn rolling_phi(&self, pipeline: &str, phi: Option<f64>) -> Option<f64> {
        let window = usize::try_from(self.settings.phi_window.max(1)).unwrap_or(usize::MAX);
        let mean =
            |w: &VecDeque<f64>| (!w.is_empty()).then(|| w.iter().sum::<f64>() / w.len() as f64);
        {
            let mut windows = self.phi_windows.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = windows.get_mut(pipeline) {
                if let Some(phi) = phi {
                    w.push_back(phi);
                    while w.len() > window {
                        w.pop_front();
                    }
                }
                return mean(w);
            }
        }
        match self.db.recent_phi(pipeline, self.settings.phi_window).await {
            Ok(newest_first) => {
                let mut windows = self.phi_windows.lock().unwrap_or_else(|e| e.into_inner());
                // Another run of the pipeline may have seeded it meanwhile: keep that one.
                let w = windows
                    .entry(pipeline.to_string())
                    .or_insert_with(|| newest_first.into_iter().rev().collect());
                mean(w)
            }
            Err(e) => {
                tracing::warn!(pipeline, "cannot compute the rolling Φ_sync: {e}");
                None
            }
        }
    }
}

/// One delivery to run on its layer: what the blocking thread needs to run the layer and
/// build its commit (shared with the async side, which commits a panicked run itself).
struct LayerJob {
    def: Arc<PipelineDef>,
    run_id: String,
    dry_run: bool,
    delivery: PendingDelivery,
    plugin: Arc<crate::runtime::LoadedPlugin>,
    /// This attempt, from 1.
    attempt: i64,
    final_attempt: bool,
}

impl LayerJob {
    /// Runs the layer (blocking); whether it succeeded, and its commit.
    fn run(&self, request_id: Option<Arc<str>>) -> (bool, LayerRunCommit) {
        let d = &self.delivery;
        let input = LayerInput {
            run_id: self.run_id.clone(),
            container: d.container.clone(),
            dry_run: self.dry_run,
            topic: d.event.topic.clone(),
            payload: match &d.payload_json {
                Some(text) => text.to_string(),
                None => d.event.payload.to_string(),
            },
        };
        let started_at = crate::domain::now_ms();
        let started = Instant::now();
        let (result, usage) = self
            .plugin
            .run_pipeline_layer(&input, &d.event.payload, request_id);
        self.commit(
            result.map_err(|e| e.to_string()),
            usage,
            started_at,
            started.elapsed(),
        )
    }

    /// The commit of a layer run that ended with `result`; whether it succeeded.
    fn commit(
        &self,
        result: Result<LayerResult, String>,
        usage: crate::capabilities::CallUsage,
        started_at: i64,
        duration: std::time::Duration,
    ) -> (bool, LayerRunCommit) {
        let d = &self.delivery;
        let plugin = &self.plugin;
        let held_back = (!usage.held_back.is_empty()).then(|| json!(usage.held_back));
        let (ok, result, (state_writes, state_reads)) = match result {
            Ok(r) => {
                let emitted = r
                    .events
                    .into_iter()
                    .map(|e| {
                        let subs = self
                            .def
                            .subscribers(&e.topic)
                            .into_iter()
                            .map(|b| b.subscriber())
                            .collect();
                        let event = NewEvent {
                            container: d.container.clone(),
                            topic: e.topic,
                            payload: e.payload,
                            producer: plugin.id().to_string(),
                            run_id: Some(self.run_id.clone()),
                            dry_run: self.dry_run,
                            causation_id: Some(d.event.id.clone()),
                            id: e.id,
                            payload_json: Some(e.json),
                        };
                        (event, subs)
                    })
                    .collect();
                (
                    true,
                    LayerRunResult::Succeeded {
                        output: r.output,
                        output_json: Some(r.output_json),
                        emitted,
                    },
                    usage.state.into_entries(plugin.name()),
                )
            }
            Err(e) => {
                tracing::warn!(run = %self.run_id, layer = %plugin.id(), attempt = self.attempt,
                    "layer run failed: {e}");
                (
                    false,
                    LayerRunResult::Failed {
                        error: e,
                        final_attempt: self.final_attempt,
                    },
                    (Vec::new(), Vec::new()),
                )
            }
        };
        let commit = LayerRunCommit {
            run_id: self.run_id.clone(),
            layer: d.subscriber.clone(),
            plugin: Some(plugin.id().to_string()),
            container: d.container.clone(),
            event_id: d.event.id.clone(),
            topic: d.event.topic.clone(),
            attempt: self.attempt,
            duration_ms: duration.as_secs_f64() * 1000.0,
            started_at,
            finished_at: crate::domain::now_ms(),
            held_back,
            result,
            state_writes,
            state_reads,
        };
        (ok, commit)
    }
}
