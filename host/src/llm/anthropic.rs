//! Anthropic Messages API: `POST {base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version`. Body `{model, max_tokens, system?, messages}`; sampling parameters
//! (`temperature`, `top_p`, `top_k`) are never sent: newer API versions reject them.
//!
//! Structured output (`tool` dialect, the default): one tool named [`TOOL_NAME`] whose
//! `input_schema` is the caller's schema, forced with `tool_choice: {type: "tool"}`; the
//! answer is the `tool_use` block's `input`. Tool inputs must be objects, so a schema whose
//! root is not `{"type": "object"}` is sent wrapped as `{value: <schema>}` and the answer
//! unwrapped. With the `prompt` dialect the schema goes into the system prompt instead.
//! Either way the broker validates the answer.

use super::provider::Answer;
use super::request::CompletionRequest;
use super::schema::{instruction, OutputSchema};
use super::settings::StructuredOutput;
use super::transport::Target;
use super::LlmError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Name of the forced tool of the `tool` dialect.
pub const TOOL_NAME: &str = "respond";
/// Property a non-object schema is wrapped in.
const WRAP_KEY: &str = "value";

pub(crate) fn path() -> &'static str {
    "/v1/messages"
}

/// The request body.
pub(crate) fn body(
    model: &str,
    req: &CompletionRequest,
    schema: Option<&OutputSchema>,
    dialect: StructuredOutput,
) -> Value {
    let mut system = req.system.clone().filter(|s| !s.trim().is_empty());
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    if let Some(schema) = schema {
        if dialect == StructuredOutput::Tool {
            let input_schema = if schema.is_object_root() {
                schema.schema().clone()
            } else {
                json!({
                    "type": "object",
                    "properties": {WRAP_KEY: schema.schema()},
                    "required": [WRAP_KEY]
                })
            };
            body.insert(
                "tools".into(),
                json!([{
                    "name": TOOL_NAME,
                    "description": "Give your answer as this tool's input. It must be valid against the input schema.",
                    "input_schema": input_schema
                }]),
            );
            body.insert(
                "tool_choice".into(),
                json!({"type": "tool", "name": TOOL_NAME}),
            );
        } else {
            let inst = instruction(schema.schema());
            system = Some(match system {
                Some(s) => format!("{s}\n\n{inst}"),
                None => inst,
            });
        }
    }
    if let Some(system) = system {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    Value::Object(body)
}

#[derive(Deserialize)]
struct MessagesResponse {
    content: Vec<Block>,
    #[serde(default)]
    usage: Usage,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Block {
    #[serde(rename = "text")]
    Text { text: String },
    #[serde(rename = "tool_use")]
    ToolUse { name: String, input: Value },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

/// The answer out of a 2xx body.
pub(crate) fn parse(
    value: Value,
    schema: Option<&OutputSchema>,
    dialect: StructuredOutput,
    target: Target<'_>,
) -> Result<Answer, LlmError> {
    let resp: MessagesResponse = serde_json::from_value(value)
        .map_err(|e| target.malformed(format!("not a Messages API answer: {e}")))?;
    let mut text = String::new();
    let mut tool_input = None;
    for block in resp.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { name, input } if name == TOOL_NAME && tool_input.is_none() => {
                tool_input = Some(input)
            }
            Block::ToolUse { .. } | Block::Other => {}
        }
    }
    let stop = resp.stop_reason.as_deref().unwrap_or("");
    if stop == "refusal" {
        return Err(target.malformed("the model refused to answer (stop_reason: refusal)"));
    }
    let structured = match (schema, dialect, tool_input) {
        (Some(schema), StructuredOutput::Tool, Some(input)) => Some(if schema.is_object_root() {
            input
        } else {
            match input {
                Value::Object(mut m) if m.contains_key(WRAP_KEY) => {
                    m.remove(WRAP_KEY).unwrap_or(Value::Null)
                }
                other => other,
            }
        }),
        _ => None,
    };
    if let Some(v) = &structured {
        text = v.to_string();
    }
    Ok(Answer {
        text,
        structured,
        input_tokens: resp.usage.input_tokens,
        output_tokens: resp.usage.output_tokens,
        truncated: stop == "max_tokens",
    })
}
