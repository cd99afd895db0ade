//! Replay of a recorded agent execution or pipeline layer run: the same task (or the same
//! run context and trigger event), a version (the recorded one or another), and the tape
//! instead of the brokers. Each `llm`, `mcp`, `state` and `events` call and each `crm`
//! read is answered from the tape when it is the next recorded call, else it is a
//! divergence and the plugin gets `unavailable`; nothing reaches the network or the
//! database (`state` writes are swallowed and counted). A replayed layer's
//! `events.publish` is answered from the tape too (the recorded event id) and the event
//! stays in the sandbox's output, compared with the recorded one, never stored. `scoring` calls are not taped: they run the scorer plugin in its own
//! sandbox, as live. Calls answered from a tape are not audited (nothing happened).

use crate::capabilities::tape::{Divergence, ReplayLog, TapeMode};
use crate::db::{Db, DbError, TapeKind};
use crate::manifest::PluginKind;
use crate::runtime::call::LayerInput;
use crate::runtime::LoadedPlugin;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ExecutionReplayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "execution {0} has no tape: its agent's grant did not set `record_executions = true` \
         when it ran (or the execution does not exist)"
    )]
    NoTape(String),
    #[error("{plugin} is a {actual}, but execution {id} was recorded by a {recorded}")]
    WrongKind {
        id: String,
        plugin: String,
        actual: &'static str,
        recorded: &'static str,
    },
    #[error("the recorded input of layer run {id} cannot be read: {reason}")]
    BadInput { id: String, reason: String },
    #[error("replaying execution {id} with {plugin}: the blocking task failed: {message}")]
    Join {
        id: String,
        plugin: String,
        message: String,
    },
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReplay {
    pub execution_id: String,
    /// `agent` or `layer`.
    pub kind: TapeKind,
    /// `name@version` that ran the recorded execution.
    pub recorded: String,
    /// `name@version` replayed.
    pub replayed: String,
    /// No divergence, every recorded call made, and the same output.
    pub same: bool,
    pub calls_recorded: usize,
    pub calls_matched: usize,
    /// Replayed calls not on the tape.
    pub calls_unmatched: usize,
    /// Recorded calls the replay did not make.
    pub calls_not_made: usize,
    pub first_divergence: Option<Divergence>,
    pub divergences: Vec<Divergence>,
    pub state_writes_swallowed: usize,
    /// The recorded output equals the replayed one (as JSON when both are JSON).
    pub output_equal: bool,
    /// JSON paths where the outputs differ (at most [`MAX_DIFFS`]).
    pub output_diff: Vec<String>,
    /// The replay's error, when it failed.
    pub error: Option<String>,
}

pub const MAX_DIFFS: usize = 20;

/// Replays execution `id` with `plugin` (an agent) from its stored tape.
pub async fn replay_execution(
    db: &Db,
    id: &str,
    plugin: Arc<LoadedPlugin>,
) -> Result<ExecutionReplay, ExecutionReplayError> {
    let tape = db
        .get_execution_tape(id)
        .await?
        .ok_or_else(|| ExecutionReplayError::NoTape(id.to_string()))?;
    let (wanted, recorded) = match tape.kind {
        TapeKind::Agent => (PluginKind::Agent, "agent"),
        TapeKind::Layer => (PluginKind::Layer, "layer"),
    };
    if plugin.kind() != wanted {
        return Err(ExecutionReplayError::WrongKind {
            id: id.to_string(),
            plugin: plugin.id().to_string(),
            actual: plugin.kind().as_str(),
            recorded,
        });
    }
    let recorded_calls = tape.tape.len();
    let (p, kind) = (plugin.clone(), tape.kind);
    let input = tape.input.clone();
    let replay = TapeMode::replay(tape.tape);
    let layer_input = match kind {
        TapeKind::Agent => None,
        TapeKind::Layer => Some(parse_layer_input(id, &input)?),
    };
    let (result, usage) = tokio::task::spawn_blocking(move || match layer_input {
        None => p.run_agent_taped(&input, None, replay),
        Some((input, payload)) => {
            let (r, usage) = p.run_pipeline_layer_taped(&input, &payload, None, replay);
            (r.map(|r| r.tape_output().to_string()), usage)
        }
    })
    .await
    .map_err(|e| ExecutionReplayError::Join {
        id: id.to_string(),
        plugin: plugin.id().to_string(),
        message: e.to_string(),
    })?;
    let log: ReplayLog = usage.tape.into_replay_log().unwrap_or_default();
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let output_diff = diff_outputs(tape.output.as_deref(), output.as_deref());
    let output_equal = output_diff.is_empty();
    let same = log.divergences.is_empty() && log.unconsumed == 0 && output_equal;
    Ok(ExecutionReplay {
        execution_id: id.to_string(),
        kind,
        recorded: format!("{}@{}", tape.agent, tape.agent_version),
        replayed: plugin.id().to_string(),
        same,
        calls_recorded: recorded_calls,
        calls_matched: log.matched,
        calls_unmatched: log.divergences.len(),
        calls_not_made: log.unconsumed,
        first_divergence: log.divergences.first().cloned(),
        divergences: log.divergences,
        state_writes_swallowed: log.writes_swallowed,
        output_equal,
        output_diff,
        error,
    })
}

/// A layer run's recorded input and its payload parsed (the replay checks it against the
/// layer's input schema as the live run did).
fn parse_layer_input(id: &str, input: &str) -> Result<(LayerInput, Value), ExecutionReplayError> {
    let bad = |reason: String| ExecutionReplayError::BadInput {
        id: id.to_string(),
        reason,
    };
    let input: LayerInput = serde_json::from_str(input).map_err(|e| bad(e.to_string()))?;
    let payload = serde_json::from_str(&input.payload).map_err(|e| bad(e.to_string()))?;
    Ok((input, payload))
}

/// Where two outputs differ: JSON paths when both are JSON, else `$` when the texts differ.
pub fn diff_outputs(recorded: Option<&str>, replayed: Option<&str>) -> Vec<String> {
    let parse = |s: Option<&str>| s.and_then(|s| serde_json::from_str::<Value>(s).ok());
    match (parse(recorded), parse(replayed)) {
        (Some(a), Some(b)) => {
            let mut out = Vec::new();
            diff("$", &a, &b, &mut out);
            out
        }
        _ if recorded == replayed => Vec::new(),
        _ => vec!["$".into()],
    }
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFFS || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(a), Some(b)) => diff(&p, a, b, out),
                    _ if out.len() < MAX_DIFFS => out.push(p),
                    _ => return,
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (a, b)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), a, b, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_diff_names_the_paths_that_differ() {
        let a = r#"{"score": {"value": 80, "priority": "high"}, "fallback_used": false}"#;
        let b =
            r#"{"score": {"value": 50, "priority": "high"}, "extra": 1, "fallback_used": false}"#;
        assert_eq!(
            diff_outputs(Some(a), Some(b)),
            vec!["$.extra".to_string(), "$.score.value".to_string()]
        );
        assert!(diff_outputs(Some(a), Some(a)).is_empty());
        assert_eq!(diff_outputs(Some(a), None), vec!["$".to_string()]);
        assert!(diff_outputs(None, None).is_empty());
    }
}
