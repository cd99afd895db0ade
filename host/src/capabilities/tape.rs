//! Execution tapes: the brokered calls one agent execution or layer run made (`llm`,
//! `mcp`, `state`, `crm` reads and `events`),
//! each with the request as the plugin sent it and the response as it received it.
//!
//! Recording is opt-in per plugin (`[grants.<plugin>] record_executions = true`): the call
//! appends to [`TapeMode::Record`]; the caller stores the tape with the execution. A
//! replay runs a version with [`TapeMode::Replay`]: each call is answered from the tape
//! when it is the next recorded call (same capability, operation, target and request),
//! else it is a [`Divergence`] and the plugin gets an error; nothing reaches a broker or
//! the database. Requests and responses are redacted of the configured secrets like audit
//! details and logs ([`crate::secrets`]).

use super::{CallState, Capability};
use crate::wit::since_v0_1_0::{events, llm, mcp, types::CapabilityError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One brokered call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapeEntry {
    #[serde(flatten)]
    pub call: TapeCall,
    /// What the plugin received: `{"ok": …}` or `{"err": {"kind", "message"}}`.
    pub response: TapeResponse,
}

/// What a plugin asked: the key a replayed call is matched on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapeCall {
    pub capability: String,
    pub operation: String,
    pub target: String,
    pub request: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TapeResponse {
    Ok(Value),
    Err { kind: String, message: String },
}

/// A replayed call that is not the next one on the tape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The position of the call in the replayed execution (0-based).
    pub index: usize,
    /// The next call on the tape (`None`: the tape was used up).
    pub expected: Option<TapeCall>,
    pub actual: TapeCall,
}

/// What a replay observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayLog {
    /// Calls answered from the tape.
    pub matched: usize,
    /// Recorded calls the replay never made (from the first one not consumed).
    pub unconsumed: usize,
    pub divergences: Vec<Divergence>,
    /// `state` writes the replay asked for (answered from the tape or refused; never
    /// written).
    pub writes_swallowed: usize,
}

/// Whether (and how) a call's brokered calls are taped.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum TapeMode {
    #[default]
    Off,
    Record(Vec<TapeEntry>),
    Replay {
        entries: Vec<TapeEntry>,
        next: usize,
        calls: usize,
        log: ReplayLog,
    },
}

impl TapeMode {
    pub fn replay(entries: Vec<TapeEntry>) -> Self {
        TapeMode::Replay {
            entries,
            next: 0,
            calls: 0,
            log: ReplayLog::default(),
        }
    }

    /// The replay's log, with the recorded calls it never made counted.
    pub fn into_replay_log(self) -> Option<ReplayLog> {
        match self {
            TapeMode::Replay {
                entries, next, log, ..
            } => Some(ReplayLog {
                unconsumed: entries.len() - next,
                ..log
            }),
            _ => None,
        }
    }
}

/// A response type a tape can hold.
pub(crate) trait Taped: Sized {
    fn encode(&self) -> Value;
    fn decode(v: &Value) -> Option<Self>;
}

/// An error type a tape can hold, and the one a diverging replayed call gets.
pub(crate) trait TapedError: Sized {
    fn encode(&self) -> (String, String);
    fn decode(kind: &str, message: String) -> Self;
    fn not_on_tape(message: String) -> Self;
}

impl CallState {
    /// Runs one brokered call under the tape: recorded after `live` when recording,
    /// answered from the tape instead of `live` when replaying, `live` alone otherwise.
    pub(crate) fn taped<T: Taped, E: TapedError>(
        &mut self,
        capability: Capability,
        operation: &str,
        target: &str,
        request: Value,
        live: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        if matches!(self.tape, TapeMode::Off) {
            return live(self);
        }
        let mut request = request;
        self.services.secrets.redact_json(&mut request);
        let call = TapeCall {
            capability: capability.interface().to_string(),
            operation: operation.to_string(),
            target: self.services.secrets.redact_string(target.to_string()),
            request,
        };
        if let TapeMode::Replay { .. } = self.tape {
            return self.replayed(call);
        }
        let r = live(self);
        let response = match &r {
            Ok(v) => {
                let mut v = v.encode();
                self.services.secrets.redact_json(&mut v);
                TapeResponse::Ok(v)
            }
            Err(e) => {
                let (kind, message) = e.encode();
                TapeResponse::Err {
                    kind,
                    message: self.services.secrets.redact_string(message),
                }
            }
        };
        if let TapeMode::Record(tape) = &mut self.tape {
            tape.push(TapeEntry { call, response });
        }
        r
    }

    fn replayed<T: Taped, E: TapedError>(&mut self, call: TapeCall) -> Result<T, E> {
        let TapeMode::Replay {
            entries,
            next,
            calls,
            log,
        } = &mut self.tape
        else {
            unreachable!("replay mode checked by the caller")
        };
        let index = *calls;
        *calls += 1;
        if call.capability == "state" && call.operation != "get" {
            log.writes_swallowed += 1;
        }
        let expected = entries.get(*next);
        if let Some(e) = expected.filter(|e| e.call == call) {
            *next += 1;
            log.matched += 1;
            return match &e.response {
                TapeResponse::Ok(v) => T::decode(v).ok_or_else(|| {
                    E::not_on_tape(format!(
                        "replay: the recorded response of call {index} cannot be read"
                    ))
                }),
                TapeResponse::Err { kind, message } => Err(E::decode(kind, message.clone())),
            };
        }
        log.divergences.push(Divergence {
            index,
            expected: expected.map(|e| e.call.clone()),
            actual: call,
        });
        Err(E::not_on_tape(format!(
            "replay: call {index} is not on the tape"
        )))
    }
}

impl TapedError for CapabilityError {
    fn encode(&self) -> (String, String) {
        let (k, m) = match self {
            CapabilityError::Denied(m) => ("denied", m),
            CapabilityError::Invalid(m) => ("invalid", m),
            CapabilityError::Unavailable(m) => ("unavailable", m),
        };
        (k.into(), m.clone())
    }
    fn decode(kind: &str, m: String) -> Self {
        match kind {
            "denied" => CapabilityError::Denied(m),
            "invalid" => CapabilityError::Invalid(m),
            _ => CapabilityError::Unavailable(m),
        }
    }
    fn not_on_tape(m: String) -> Self {
        CapabilityError::Unavailable(m)
    }
}

impl TapedError for llm::LlmError {
    fn encode(&self) -> (String, String) {
        use llm::LlmError as L;
        let (k, m) = match self {
            L::Denied(m) => ("denied", m),
            L::OverBudget(m) => ("over-budget", m),
            L::Unavailable(m) => ("unavailable", m),
            L::RateLimited(m) => ("rate-limited", m),
            L::Timeout(m) => ("timeout", m),
            L::InvalidOutput(m) => ("invalid-output", m),
            L::InvalidRequest(m) => ("invalid-request", m),
        };
        (k.into(), m.clone())
    }
    fn decode(kind: &str, m: String) -> Self {
        use llm::LlmError as L;
        match kind {
            "denied" => L::Denied(m),
            "over-budget" => L::OverBudget(m),
            "rate-limited" => L::RateLimited(m),
            "timeout" => L::Timeout(m),
            "invalid-output" => L::InvalidOutput(m),
            "invalid-request" => L::InvalidRequest(m),
            _ => L::Unavailable(m),
        }
    }
    fn not_on_tape(m: String) -> Self {
        llm::LlmError::Unavailable(m)
    }
}

/// The request of an `llm.complete` call, as a tape holds it.
pub(crate) fn completion_request(r: &llm::CompletionRequest) -> Value {
    json!({
        "model": r.model,
        "system": r.system,
        "messages": r.messages.iter().map(|m| json!({
            "role": match m.role { llm::Role::User => "user", llm::Role::Assistant => "assistant" },
            "content": m.content,
        })).collect::<Vec<_>>(),
        "max_tokens": r.max_tokens,
        "json_schema": r.json_schema,
    })
}

impl Taped for llm::Completion {
    fn encode(&self) -> Value {
        json!({
            "text": self.text,
            "json": self.json,
            "model": self.model,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cost_usd": self.usage.cost_usd,
            },
            "latency_ms": self.latency_ms,
        })
    }
    fn decode(v: &Value) -> Option<Self> {
        let u = &v["usage"];
        Some(llm::Completion {
            text: v["text"].as_str()?.to_string(),
            json: v["json"].as_str().map(str::to_string),
            model: v["model"].as_str()?.to_string(),
            usage: llm::Usage {
                input_tokens: u["input_tokens"].as_u64()? as u32,
                output_tokens: u["output_tokens"].as_u64()? as u32,
                cost_usd: u["cost_usd"].as_f64()?,
            },
            latency_ms: v["latency_ms"].as_u64()? as u32,
        })
    }
}

impl Taped for mcp::ToolResult {
    fn encode(&self) -> Value {
        json!({ "is_error": self.is_error, "text": self.text, "structured": self.structured })
    }
    fn decode(v: &Value) -> Option<Self> {
        Some(mcp::ToolResult {
            is_error: v["is_error"].as_bool()?,
            text: v["text"].as_str()?.to_string(),
            structured: v["structured"].as_str().map(str::to_string),
        })
    }
}

impl Taped for Vec<mcp::Tool> {
    fn encode(&self) -> Value {
        self.iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.input_schema }))
            .collect()
    }
    fn decode(v: &Value) -> Option<Self> {
        v.as_array()?
            .iter()
            .map(|t| {
                Some(mcp::Tool {
                    name: t["name"].as_str()?.to_string(),
                    description: t["description"].as_str().map(str::to_string),
                    input_schema: t["input_schema"].as_str()?.to_string(),
                })
            })
            .collect()
    }
}

/// Responses that are host types with serde: taped as their JSON.
macro_rules! taped_as_json {
    ($($t:ty),*) => {$(
        impl Taped for $t {
            fn encode(&self) -> Value {
                serde_json::to_value(self).expect("a host type serializes")
            }
            fn decode(v: &Value) -> Option<Self> {
                serde_json::from_value(v.clone()).ok()
            }
        }
    )*};
}

taped_as_json!(Option<crate::domain::Lead>, Vec<crate::domain::StoredScore>);

impl Taped for Vec<events::Event> {
    fn encode(&self) -> Value {
        self.iter()
            .map(|e| {
                json!({
                    "id": e.id, "container": e.container, "topic": e.topic,
                    "payload": e.payload, "emitted_at": e.emitted_at,
                    "producer": e.producer, "run_id": e.run_id,
                })
            })
            .collect()
    }
    fn decode(v: &Value) -> Option<Self> {
        v.as_array()?
            .iter()
            .map(|e| {
                let text = |k: &str| e[k].as_str().map(str::to_string);
                Some(events::Event {
                    id: text("id")?,
                    container: text("container")?,
                    topic: text("topic")?,
                    payload: text("payload")?,
                    emitted_at: e["emitted_at"].as_i64()?,
                    producer: text("producer")?,
                    run_id: text("run_id"),
                })
            })
            .collect()
    }
}

/// A `state` value: UTF-8 text as a string, other bytes as an array of numbers.
pub(crate) fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!({ "text": s }),
        Err(_) => json!({ "bytes": b }),
    }
}

fn unbytes(v: &Value) -> Option<Vec<u8>> {
    if let Some(s) = v["text"].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    v["bytes"]
        .as_array()?
        .iter()
        .map(|n| n.as_u64().map(|n| n as u8))
        .collect()
}

impl Taped for Option<Vec<u8>> {
    fn encode(&self) -> Value {
        self.as_deref().map_or(Value::Null, bytes)
    }
    fn decode(v: &Value) -> Option<Self> {
        if v.is_null() {
            return Some(None);
        }
        unbytes(v).map(Some)
    }
}

impl Taped for () {
    fn encode(&self) -> Value {
        Value::Null
    }
    fn decode(_: &Value) -> Option<Self> {
        Some(())
    }
}

impl Taped for String {
    fn encode(&self) -> Value {
        Value::String(self.clone())
    }
    fn decode(v: &Value) -> Option<Self> {
        v.as_str().map(str::to_string)
    }
}

impl Taped for bool {
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
    fn decode(v: &Value) -> Option<Self> {
        v.as_bool()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip_through_the_tape() {
        let c = llm::Completion {
            text: "hi".into(),
            json: Some("{}".into()),
            model: "m".into(),
            usage: llm::Usage {
                input_tokens: 3,
                output_tokens: 4,
                cost_usd: 0.5,
            },
            latency_ms: 7,
        };
        let back = llm::Completion::decode(&c.encode()).unwrap();
        assert_eq!(back.text, "hi");
        assert_eq!(back.usage.output_tokens, 4);
        let v: Option<Vec<u8>> = Some(vec![0xff, 1]);
        assert_eq!(Option::<Vec<u8>>::decode(&v.encode()), Some(v));
        let t: Option<Vec<u8>> = Some(b"abc".to_vec());
        assert_eq!(Option::<Vec<u8>>::decode(&t.encode()), Some(t));
        assert_eq!(Option::<Vec<u8>>::decode(&Value::Null), Some(None));
    }

    #[test]
    fn an_entry_serializes_flat_with_its_response() {
        let e = TapeEntry {
            call: TapeCall {
                capability: "mcp".into(),
                operation: "call-tool".into(),
                target: "mcp:crm/get_lead".into(),
                request: json!({"arguments": {"id": "L-1"}}),
            },
            response: TapeResponse::Err {
                kind: "unavailable".into(),
                message: "down".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["capability"], "mcp");
        assert_eq!(v["response"]["err"]["kind"], "unavailable");
        let back: TapeEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
