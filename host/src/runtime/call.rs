//! One call: a fresh `Store` and instance from the version's `InstancePre`, the limits of
//! that version, the call, classification of any failure, validation of the output. The
//! instance is dropped afterwards whatever happened — a trapped instance is never reused.

use super::plugin::WorldPre;
use super::{CallError, LoadedPlugin};
use crate::capabilities::call_state::{LayerCallContext, PublishedEvent};
use crate::capabilities::tape::TapeMode;
use crate::capabilities::wasi::MemoryLimitExceeded;
use crate::capabilities::{CallState, CallUsage};
use crate::domain::{Lead, Score};
use crate::wit::since_v0_1_0::{layer, types as wit};
use std::sync::Arc;
use wasmtime::{Store, Trap};

/// Milliseconds per epoch tick; must match `RuntimeSettings::epoch_tick`.
fn deadline_ticks(deadline_ms: u64, tick_ms: u64) -> u64 {
    deadline_ms.div_ceil(tick_ms.max(1)).max(1)
}

/// A layer run's context and outcome, in host types.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerInput {
    pub run_id: String,
    pub container: String,
    pub dry_run: bool,
    pub topic: String,
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerOutput {
    pub output: String,
    pub events: Vec<(String, String)>,
}

/// A layer run's checked outcome: output and events, all valid against its schemas.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerResult {
    pub output: serde_json::Value,
    /// The JSON text `output` was parsed from (stored as is).
    pub output_json: String,
    /// Events published during the call (with the id `events.publish` returned) first,
    /// then the outcome's events, in order.
    pub events: Vec<LayerEvent>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerEvent {
    pub id: Option<String>,
    pub topic: String,
    pub payload: serde_json::Value,
    /// The JSON text `payload` was parsed from (stored as is).
    #[serde(skip)]
    pub json: Arc<str>,
}

impl LoadedPlugin {
    pub(super) fn new_store(
        &self,
        request_id: Option<Arc<str>>,
    ) -> Result<Store<CallState>, CallError> {
        let state = CallState::new(
            self.identity.clone(),
            self.grants.clone(),
            self.services.clone(),
            request_id,
            self.limits.memory_bytes,
            self.audit_max_records,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        self.arm(&mut store)?;
        Ok(store)
    }

    /// Sets one call's deadline (from now) and fuel on `store`.
    pub(super) fn arm(&self, store: &mut Store<CallState>) -> Result<(), CallError> {
        let tick_ms = self.services_tick_ms();
        store.set_epoch_deadline(deadline_ticks(self.limits.deadline_ms, tick_ms));
        if self.fuel_metering {
            store
                .set_fuel(self.limits.fuel.unwrap_or(u64::MAX))
                .map_err(|e| CallError::Instantiate {
                    plugin: self.id().into(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn services_tick_ms(&self) -> u64 {
        super::settings::EPOCH_TICK_MS
    }

    /// Maps a wasmtime error of this call to a typed `CallError`.
    pub(super) fn classify(&self, err: wasmtime::Error, store: &Store<CallState>) -> CallError {
        let plugin = self.id().to_string();
        if store.data().limiter.memory_exceeded
            || err.downcast_ref::<MemoryLimitExceeded>().is_some()
        {
            return CallError::MemoryLimit {
                plugin,
                limit_mb: self.limits.memory_bytes >> 20,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Deadline {
                plugin,
                ms: self.limits.deadline_ms,
            },
            Some(Trap::OutOfFuel) => CallError::Fuel {
                plugin,
                fuel: self.limits.fuel.unwrap_or(u64::MAX),
            },
            Some(Trap::StackOverflow) => CallError::StackOverflow { plugin },
            Some(Trap::UnreachableCodeReached) => {
                let (stderr, _) = store.data().stderr.take();
                match panic_message(&stderr) {
                    Some(message) => CallError::Panic { plugin, message },
                    None => CallError::Trap {
                        plugin,
                        message: "unreachable code reached (abort)".into(),
                    },
                }
            }
            Some(Trap::MemoryOutOfBounds) => CallError::Trap {
                plugin,
                message: "out of bounds memory access (guest stack overflow or bad pointer)".into(),
            },
            Some(t) => CallError::Trap {
                plugin,
                message: t.to_string(),
            },
            None => {
                let message = format!("{err:#}");
                if message.contains("discriminant")
                    || message.contains("utf-8")
                    || message.contains("out of bounds")
                {
                    CallError::InvalidOutput {
                        plugin,
                        reason: message,
                    }
                } else {
                    CallError::Trap { plugin, message }
                }
            }
        }
    }

    fn plugin_error(&self, e: wit::PluginError) -> CallError {
        let plugin = self.id().to_string();
        match e {
            wit::PluginError::InvalidInput(m) => CallError::InvalidInput {
                plugin,
                message: crate::capabilities::log::sanitize(&m, 1024),
            },
            wit::PluginError::Failed(m) => CallError::Failed {
                plugin,
                message: crate::capabilities::log::sanitize(&m, 1024),
            },
        }
    }

    /// Runs `f` on a fresh instance; classifies failures; always ends the call (stdio to
    /// the log, audit summaries sent).
    fn with_store<R>(
        &self,
        request_id: Option<Arc<str>>,
        f: impl FnOnce(&mut Store<CallState>, &WorldPre) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let mut store = self.new_store(request_id)?;
        let out = f(&mut store, &self.pre);
        let result = out.map_err(|e| self.classify(e, &store));
        store.data().finish_call();
        result
    }

    pub(super) fn wrong_kind(&self, needed: &str) -> CallError {
        CallError::WrongKind {
            plugin: self.id().into(),
            kind: self.kind().to_string(),
            needed: needed.into(),
        }
    }

    /// Scores one lead on a fresh instance. Blocking; run on a blocking thread (or a
    /// dedicated worker thread).
    pub fn score(&self, lead: &Lead, request_id: Option<Arc<str>>) -> Result<Score, CallError> {
        self.score_on(lead, request_id, false)
    }

    /// Scores one lead for the inline lane: on this thread's warm instance of the version
    /// when its grant allows reuse (`reuse_calls`, see `runtime::warm`), else like
    /// [`Self::score`].
    pub fn score_inline(
        &self,
        lead: &Lead,
        request_id: Option<Arc<str>>,
    ) -> Result<Score, CallError> {
        self.score_on(lead, request_id, self.reuse_calls > 0)
    }

    fn score_on(
        &self,
        lead: &Lead,
        request_id: Option<Arc<str>>,
        warm: bool,
    ) -> Result<Score, CallError> {
        let size = lead_size(lead);
        if size > self.limits.max_input_bytes {
            return Err(CallError::InputTooLarge {
                plugin: self.id().into(),
                size,
                limit: self.limits.max_input_bytes,
            });
        }
        if !matches!(self.pre, WorldPre::Scorer(_)) {
            return Err(self.wrong_kind("a scorer"));
        }
        let input = wit::Lead::from(lead);
        let out = if warm {
            self.call_score_warm(&input, request_id)?
        } else {
            self.with_store(request_id, |store, pre| {
                let WorldPre::Scorer(pre) = pre else {
                    unreachable!("kind checked above")
                };
                let bindings = pre.instantiate(&mut *store)?;
                bindings.call_score(&mut *store, &input)
            })?
        };
        let score = out.map_err(|e| self.plugin_error(e))?;
        let score: Score = score.into();
        self.validate_score(&score)?;
        Ok(score)
    }

    /// Checks a score's ranges and size against this plugin's limits: nothing invalid
    /// leaves the runtime (also applied to the score an agent returns).
    pub fn validate_score(&self, s: &Score) -> Result<(), CallError> {
        let plugin = self.id().to_string();
        let size = s.reasoning.len()
            + s.recommended_action.len()
            + s.factors.iter().map(|f| f.name.len() + 8).sum::<usize>();
        if size > self.limits.max_output_bytes {
            return Err(CallError::OutputTooLarge {
                plugin,
                size,
                limit: self.limits.max_output_bytes,
            });
        }
        let bad = |reason: String| {
            Err(CallError::InvalidOutput {
                plugin: plugin.clone(),
                reason,
            })
        };
        if !s.value.is_finite() || !(0.0..=100.0).contains(&s.value) {
            return bad(format!("score value {} is outside 0-100", s.value));
        }
        if !s.confidence.is_finite() || !(0.0..=1.0).contains(&s.confidence) {
            return bad(format!("confidence {} is outside 0-1", s.confidence));
        }
        if s.factors.len() > 32 {
            return bad(format!("{} factors; at most 32", s.factors.len()));
        }
        for f in &s.factors {
            if f.name.is_empty() || f.name.len() > 64 {
                return bad(format!("factor name {:?} must be 1-64 bytes", f.name));
            }
            if !f.score.is_finite() || !(0.0..=100.0).contains(&f.score) {
                return bad(format!("factor {} = {} is outside 0-100", f.name, f.score));
            }
        }
        Ok(())
    }

    /// Runs one layer step without a pipeline (no schema checks, `events.publish`
    /// unavailable). Blocking.
    pub fn run_layer(
        &self,
        input: &LayerInput,
        request_id: Option<Arc<str>>,
    ) -> Result<LayerOutput, CallError> {
        let (out, _usage, _published) = self.call_layer(input, None, request_id, TapeMode::Off);
        out
    }

    /// Runs one layer step of a pipeline run: the trigger payload is checked against the
    /// manifest's `[schemas.inputs]` before the call, the output and every event (from the
    /// outcome and from `events.publish`) after it; dry-run holds back side effects.
    /// `payload` is `input.payload` parsed (the stored event's, not parsed again here).
    /// Reports what the call consumed and held back, also when it failed; with the
    /// plugin's grant `record_executions`, the usage carries the run's tape. Blocking.
    pub fn run_pipeline_layer(
        &self,
        input: &LayerInput,
        payload: &serde_json::Value,
        request_id: Option<Arc<str>>,
    ) -> (Result<LayerResult, CallError>, CallUsage) {
        self.run_pipeline_layer_taped(input, payload, request_id, self.recording_tape())
    }

    /// [`Self::run_pipeline_layer`] with `tape`: recording, replaying a recorded run (no
    /// broker, no database: the usage carries the replay's log), or off.
    pub fn run_pipeline_layer_taped(
        &self,
        input: &LayerInput,
        payload: &serde_json::Value,
        request_id: Option<Arc<str>>,
        tape: TapeMode,
    ) -> (Result<LayerResult, CallError>, CallUsage) {
        let plugin = self.id().to_string();
        let Some(schemas) = self.manifest.layer_schemas.clone() else {
            let e = CallError::InvalidInput {
                plugin,
                message: "the layer's [schemas] were not loaded (load it from its directory)"
                    .into(),
            };
            return (Err(e), CallUsage::default());
        };
        if let Err(message) = schemas.check_input(&input.topic, payload) {
            return (
                Err(CallError::InvalidInput { plugin, message }),
                CallUsage::default(),
            );
        }
        let ctx = LayerCallContext {
            run_id: input.run_id.clone(),
            container: input.container.clone(),
            dry_run: input.dry_run,
            schemas: Some(schemas.clone()),
        };
        let (out, usage, published) = self.call_layer(input, Some(ctx), request_id, tape);
        let invalid = |reason: String| CallError::InvalidOutput {
            plugin: plugin.clone(),
            reason,
        };
        let result = out.and_then(|o| {
            let output: serde_json::Value = serde_json::from_str(&o.output)
                .map_err(|e| invalid(format!("output is not JSON: {e}")))?;
            schemas.check_output(&output).map_err(invalid)?;
            let mut events: Vec<LayerEvent> = published
                .into_iter()
                .map(|p| LayerEvent {
                    id: Some(p.id),
                    topic: p.topic,
                    payload: p.payload,
                    json: p.json,
                })
                .collect();
            for (topic, json) in o.events {
                let payload: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|e| invalid(format!("event {topic:?}: payload is not JSON: {e}")))?;
                schemas.check_event(&topic, &payload).map_err(invalid)?;
                events.push(LayerEvent {
                    id: None,
                    topic,
                    payload,
                    json: json.into(),
                });
            }
            Ok(LayerResult {
                output,
                output_json: o.output,
                events,
            })
        });
        (result, usage)
    }

    /// One `run-layer` call on a fresh instance, with the pipeline context set when given.
    fn call_layer(
        &self,
        input: &LayerInput,
        ctx: Option<LayerCallContext>,
        request_id: Option<Arc<str>>,
        tape: TapeMode,
    ) -> (
        Result<LayerOutput, CallError>,
        CallUsage,
        Vec<PublishedEvent>,
    ) {
        let size =
            input.payload.len() + input.topic.len() + input.container.len() + input.run_id.len();
        if size > self.limits.max_input_bytes {
            let e = CallError::InputTooLarge {
                plugin: self.id().into(),
                size,
                limit: self.limits.max_input_bytes,
            };
            return (Err(e), CallUsage::default(), Vec::new());
        }
        let WorldPre::Layer(pre) = &self.pre else {
            return (
                Err(self.wrong_kind("a layer")),
                CallUsage::default(),
                Vec::new(),
            );
        };
        let wit_ctx = layer::RunContext {
            run_id: input.run_id.clone(),
            container: input.container.clone(),
            dry_run: input.dry_run,
            topic: input.topic.clone(),
            payload: input.payload.clone(),
        };
        let mut store = match self.new_store(request_id) {
            Ok(s) => s,
            Err(e) => return (Err(e), CallUsage::default(), Vec::new()),
        };
        store.data_mut().layer = ctx;
        store.data_mut().tape = tape;
        let out = (|| {
            pre.instantiate(&mut store)?
                .call_run_layer(&mut store, &wit_ctx)
        })();
        let result = out.map_err(|e| self.classify(e, &store));
        store.data().finish_call();
        let mut usage = store.data().usage().clone();
        usage.tape = std::mem::take(&mut store.data_mut().tape);
        let published = std::mem::take(&mut store.data_mut().published);
        super::reaper::drop_later(store);
        let result = result.and_then(|o| {
            let o = o.map_err(|e| self.plugin_error(e))?;
            let size = o.output.len()
                + o.events
                    .iter()
                    .map(|e| e.topic.len() + e.payload.len())
                    .sum::<usize>()
                + published
                    .iter()
                    .map(|p| p.topic.len() + p.json.len())
                    .sum::<usize>();
            if size > self.limits.max_output_bytes {
                return Err(CallError::OutputTooLarge {
                    plugin: self.id().into(),
                    size,
                    limit: self.limits.max_output_bytes,
                });
            }
            Ok(LayerOutput {
                output: o.output,
                events: o.events.into_iter().map(|e| (e.topic, e.payload)).collect(),
            })
        });
        (result, usage, published)
    }

    /// Runs an agent task. Blocking.
    pub fn run_agent(
        &self,
        input: &str,
        request_id: Option<Arc<str>>,
    ) -> Result<String, CallError> {
        self.run_agent_with_usage(input, request_id).0
    }

    /// Runs an agent task and reports what it consumed through its capabilities (LLM
    /// tokens and cost, MCP tools, scorers) — also when it failed. Blocking.
    pub fn run_agent_with_usage(
        &self,
        input: &str,
        request_id: Option<Arc<str>>,
    ) -> (Result<String, CallError>, CallUsage) {
        self.run_agent_taped(input, request_id, self.recording_tape())
    }

    /// A recording tape when the plugin's grant asks for it (`record_executions`), else off.
    fn recording_tape(&self) -> TapeMode {
        if self.grants.record_executions {
            TapeMode::Record(Vec::new())
        } else {
            TapeMode::Off
        }
    }

    /// Runs the agent with `tape`: recording (the tape comes back in the usage), replaying
    /// a recorded one (no broker, no database: the usage carries the replay's log), or off.
    pub fn run_agent_taped(
        &self,
        input: &str,
        request_id: Option<Arc<str>>,
        tape: TapeMode,
    ) -> (Result<String, CallError>, CallUsage) {
        if input.len() > self.limits.max_input_bytes {
            let e = CallError::InputTooLarge {
                plugin: self.id().into(),
                size: input.len(),
                limit: self.limits.max_input_bytes,
            };
            return (Err(e), CallUsage::default());
        }
        if !matches!(self.pre, WorldPre::Agent(_)) {
            return (Err(self.wrong_kind("an agent")), CallUsage::default());
        }
        let mut store = match self.new_store(request_id) {
            Ok(s) => s,
            Err(e) => return (Err(e), CallUsage::default()),
        };
        store.data_mut().tape = tape;
        let out = (|| {
            let WorldPre::Agent(pre) = &self.pre else {
                unreachable!("kind checked above")
            };
            pre.instantiate(&mut store)?.call_run(&mut store, input)
        })();
        let result = out.map_err(|e| self.classify(e, &store));
        store.data().finish_call();
        let mut usage = store.data().usage().clone();
        usage.tape = std::mem::take(&mut store.data_mut().tape);
        let result = result.and_then(|o| {
            let o = o.map_err(|e| self.plugin_error(e))?;
            if o.len() > self.limits.max_output_bytes {
                return Err(CallError::OutputTooLarge {
                    plugin: self.id().into(),
                    size: o.len(),
                    limit: self.limits.max_output_bytes,
                });
            }
            Ok(o)
        });
        (result, usage)
    }
}

impl LayerResult {
    /// What the run produced, as a tape stores it and a replay compares it: the output and
    /// the events emitted (published and returned), in order.
    pub fn tape_output(&self) -> serde_json::Value {
        let events: Vec<serde_json::Value> = self
            .events
            .iter()
            .map(|e| serde_json::json!({"topic": e.topic, "payload": e.payload}))
            .collect();
        serde_json::json!({"output": self.output, "events": events})
    }
}

/// Approximate encoded size of a lead (what the guest must receive).
pub fn lead_size(l: &Lead) -> usize {
    let s = |o: &Option<String>| o.as_ref().map_or(0, |x| x.len());
    l.id.len()
        + s(&l.name)
        + s(&l.email)
        + s(&l.company)
        + s(&l.title)
        + s(&l.industry)
        + s(&l.timeline)
        + s(&l.source)
        + s(&l.notes)
        + l.attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
        + 64
}

/// The panic message a Rust guest printed to stderr before aborting.
fn panic_message(stderr: &str) -> Option<String> {
    if let Some(exception) = python_exception(stderr) {
        return Some(crate::capabilities::log::sanitize(&exception, 512));
    }
    let start = stderr.find("panicked at")?;
    let text = &stderr[start..];
    // "panicked at src/lib.rs:10:5:\nboom: ..." → take the message lines after the location.
    let msg = text.split_once(":\n").map(|(_, m)| m).unwrap_or(text);
    let msg: String = msg
        .lines()
        .take_while(|l| !l.starts_with("note:"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Some(crate::capabilities::log::sanitize(msg.trim(), 512))
}

/// A Python guest's uncaught exception: componentize-py prints the traceback, then its
/// runtime panics with "Python function threw an unexpected exception". The exception
/// line and the innermost frame name the cause: "ValueError: boom (File "/0/app.py",
/// line 20, in score)".
fn python_exception(stderr: &str) -> Option<String> {
    let start = stderr.rfind("Traceback (most recent call last):")?;
    let text = &stderr[start..];
    let end = text.find("\nthread '").unwrap_or(text.len());
    let lines: Vec<&str> = text[..end].lines().skip(1).collect();
    let exception = lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with(char::is_whitespace))?;
    let frame = lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with("File \""));
    Some(match frame {
        Some(frame) => format!("{} ({frame})", exception.trim()),
        None => exception.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(100, 1), 100);
        assert_eq!(deadline_ticks(5, 2), 3);
        assert_eq!(deadline_ticks(0, 1), 1);
    }

    #[test]
    fn panic_message_is_extracted_from_rust_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom: deliberate\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).unwrap(), "boom: deliberate");
    }

    #[test]
    fn python_exception_is_extracted_from_componentize_py_stderr() {
        let stderr = "Traceback (most recent call last):\n  File \"/0/app.py\", line 20, in score\n    raise ValueError(\"boom \" + lead.id)\nValueError: boom x\nthread '<unnamed>' panicked at runtime/src/lib.rs:499:25:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "ValueError: boom x (File \"/0/app.py\", line 20, in score)"
        );
    }
}
