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
//!
//! The parts: creating a run from an API request or a webhook delivery (`trigger`),
//! carrying it out step by step (`execute`), one delivery to its layer and the commit of
//! its result (`delivery`, the blocking side in `layer_job`), and the Φ_sync gauges
//! (`phi_window`).

mod delivery;
mod execute;
mod layer_job;
mod phi_window;
mod trigger;

use super::settings::{PipelineDef, RunSettings, WebhookDef};
use crate::db::{Db, DbError, RunStatus};
use crate::plugins::Registry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Job kind of a pipeline run.
pub const PIPELINE_JOB: &str = crate::db::jobs::kinds::PIPELINE_RUN;
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
}
