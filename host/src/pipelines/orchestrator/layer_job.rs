//! The blocking side of one delivery: running its layer in the sandbox and building the
//! commit of the layer run from the result (emitted events addressed to their
//! subscribers, `state` reads and writes, held-back actions).

use crate::capabilities::tape::{TapeEntry, TapeMode};
use crate::db::{LayerRunCommit, LayerRunResult, NewEvent, PendingDelivery};
use crate::pipelines::settings::PipelineDef;
use crate::runtime::call::{LayerInput, LayerResult};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// One delivery to run on its layer: what the blocking thread needs to run the layer and
/// build its commit (shared with the async side, which commits a panicked run itself).
pub(super) struct LayerJob {
    pub(super) def: Arc<PipelineDef>,
    pub(super) run_id: String,
    pub(super) dry_run: bool,
    pub(super) delivery: PendingDelivery,
    pub(super) plugin: Arc<crate::runtime::LoadedPlugin>,
    /// This attempt, from 1.
    pub(super) attempt: i64,
    pub(super) final_attempt: bool,
}

/// A layer run's recording (its plugin's grant has `record_executions`): stored under the
/// layer run's id once its commit gives one.
pub(super) struct LayerTape {
    /// The [`LayerInput`] as JSON, its payload redacted of the configured secrets.
    pub(super) input: String,
    /// `{output, events: [{topic, payload}]}`; `None`: the run failed.
    pub(super) output: Option<String>,
    pub(super) entries: Vec<TapeEntry>,
}

impl LayerJob {
    /// Runs the layer (blocking); whether it succeeded, its commit, and its tape when the
    /// layer records its runs.
    pub(super) fn run(
        &self,
        request_id: Option<Arc<str>>,
    ) -> (bool, LayerRunCommit, Option<LayerTape>) {
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
        let (result, mut usage) =
            self.plugin
                .run_pipeline_layer(&input, &d.event.payload, request_id);
        let elapsed = started.elapsed();
        let tape = match std::mem::take(&mut usage.tape) {
            TapeMode::Record(entries) => Some(self.tape(input, result.as_ref().ok(), entries)),
            _ => None,
        };
        let (ok, commit) = self.commit(
            result.map_err(|e| e.to_string()),
            usage,
            started_at,
            elapsed,
        );
        (ok, commit, tape)
    }

    /// The recording of a run: its input and output, redacted like its calls.
    fn tape(
        &self,
        mut input: LayerInput,
        result: Option<&LayerResult>,
        entries: Vec<TapeEntry>,
    ) -> LayerTape {
        let secrets = &self.plugin.services.secrets;
        let mut payload: serde_json::Value =
            serde_json::from_str(&input.payload).unwrap_or(serde_json::Value::Null);
        secrets.redact_json(&mut payload);
        input.payload = payload.to_string();
        let output = result.map(|r| {
            let mut v = r.tape_output();
            secrets.redact_json(&mut v);
            v.to_string()
        });
        LayerTape {
            input: serde_json::to_string(&input).expect("a layer input serializes"),
            output,
            entries,
        }
    }

    /// The commit of a layer run that ended with `result`; whether it succeeded.
    pub(super) fn commit(
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
